"""`bot slow-models` and `bot run-slow`: the `run-slow` rules and runs on a local checkout.

`slow-models` answers "what would `run-slow: bert, gpt2` run here, and what would it drop?"
with the same planner the server uses. `run-slow` runs those jobs on this checkout's HEAD
through the same local runner the server uses (a clean checkout, `RUN_SLOW=yes`, the GPU pool),
so a maintainer sees the bot's answer before pushing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from bot.clients.git import GitError, diff, rev_parse, run_git
from bot.config import CONFIG_PATH
from bot.jobs.runners import EnvCache, EnvConfig, GpuPool, JobOutcome, LocalRunner, RunRequest
from bot.jobs.runners.local import LocalRunnerConfig
from bot.kit.checkout import UsageError, local_config
from handlers.slow_ci.plan import (
    COMMENT_PREFIXES,
    JobSpec,
    Selection,
    Trigger,
    models_added,
    parse_trigger,
    plan_jobs,
    select_folders,
)

#: Where `bot run-slow` keeps its last results, for `--failed`.
LAST_RUN = Path("var") / "run-slow-last.json"


def register_cli(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds this feature's commands to `bot`'s subparsers."""
    text = "the test folders a run-slow comment would run on this checkout, and what it drops"
    models = sub.add_parser("slow-models", help=text, description=text)
    models.set_defaults(func=cmd_slow_models)
    asked = models.add_mutually_exclusive_group(required=True)
    asked.add_argument(
        "comment",
        nargs="?",
        help='the whole comment, read as the server reads it, e.g. "run-slow: bert, gpt2"',
    )
    asked.add_argument(
        "--names", nargs="+", metavar="NAME", help="models or test folders, without a comment"
    )
    models.add_argument("--base", default="main", help="for models the branch adds (main)")
    models.add_argument("--head", default="HEAD")
    models.add_argument("--config", help=f"default: ./{CONFIG_PATH} when present")
    models.add_argument("--json", action="store_true")

    text = "run the slow test jobs of these models on this checkout's HEAD, as the bot would"
    run = sub.add_parser("run-slow", help=text, description=text)
    run.set_defaults(func=cmd_run_slow)
    run.add_argument("names", nargs="*", metavar="NAME", help="models or test folders")
    run.add_argument("--failed", action="store_true", help="only what failed in the last run")
    run.add_argument("--base", default="main", help="for models the branch adds (main)")
    run.add_argument("--config", help=f"default: ./{CONFIG_PATH} when present")
    run.add_argument(
        "--python",
        default=sys.executable,
        help="interpreter with the test dependencies (default: this one)",
    )
    run.add_argument("--timeout", type=float, default=None, help="seconds per job")


def _existing_test_dirs(head: str) -> frozenset[str]:
    """Test folders at `head` (not in the working tree: the bot checks the pinned commit)."""
    listed = run_git(["ls-tree", "-d", "-r", "--name-only", head, "--", "tests"])
    return frozenset(line for line in listed.splitlines() if line)


def _select(trigger: Trigger, base: str, head: str, models_dir: str) -> Selection:
    try:
        head_sha = rev_parse(head)
        files = [{"filename": c.path, "status": c.status} for c in diff(base, head_sha)]
        existing = _existing_test_dirs(head_sha)
    except GitError as exc:
        raise UsageError(str(exc)) from None
    return select_folders(
        models_added(files, models_dir), trigger.names, existing, at=head_sha[:12]
    )


#: Why the server leaves a comment alone, in its own terms.
NOT_A_TRIGGER = (
    "the server starts a run only for a comment whose first line starts with "
    + ", ".join(f"`{p}`" for p in COMMENT_PREFIXES[:-1])
    + f" or `{COMMENT_PREFIXES[-1]}`"
    + " (not quoted, not indented as code)"
)


def cmd_slow_models(args: argparse.Namespace) -> int:
    """Answers as the server would for this comment: a comment it would ignore is said to be
    ignored, never rewritten into one it would act on."""
    config = local_config(args.config).slow_ci
    if args.names is not None:
        trigger: Trigger | None = Trigger(tuple(args.names), False)
    else:
        trigger = parse_trigger(args.comment)
    if trigger is None or not config.enabled:
        reason = NOT_A_TRIGGER if trigger is None else "`[slow_ci] enabled = false` in the config"
        _answer(args.json, f"This comment would not start a run: {reason}.", reason=reason)
        return 1
    if trigger.failed_only:
        text = (
            "`--failed` re-runs only the jobs and tests that failed in the pull request's previous"
            " run, which only the server knows; names beside it are not read."
            " (`bot run-slow --failed` re-runs what failed in this checkout's last local run.)"
        )
        _answer(args.json, text, failed_only=True)
        return 0
    selection = _select(trigger, args.base, trigger.sha or args.head, config.models_dir)
    lines = [f"pinned to {trigger.sha}"] if trigger.sha else []
    lines += [selection.summary()] if selection.summary() else []
    lines += ["Nothing would run."] if selection.empty else []
    _answer(
        args.json,
        "\n".join(lines),
        sha=trigger.sha,
        folders=list(selection.paths),
        dropped=[{"name": d.name, "reason": d.reason} for d in selection.dropped],
    )
    return 1 if selection.empty else 0


def _answer(as_json: bool, text: str, *, reason: str | None = None, **facts: Any) -> None:
    """One answer, as text or as JSON with the same keys whatever the answer is."""
    if not as_json:
        print(text)
        return
    report = {"triggers": reason is None, "failed_only": False, "sha": None}
    report |= {"folders": [], "dropped": [], **facts}
    if reason is not None:
        report["reason"] = reason
    print(json.dumps(report, indent=2))


def cmd_run_slow(args: argparse.Namespace) -> int:
    config = local_config(args.config).slow_ci
    try:
        head = rev_parse("HEAD")
        root = run_git(["rev-parse", "--show-toplevel"]).strip()
    except GitError as exc:
        raise UsageError(str(exc)) from None
    tests: dict[str, tuple[str, ...]] = {}
    if args.failed:
        jobs, tests = _last_failures()
        if not jobs:
            print("nothing failed in the last `bot run-slow`")
            return 0
    else:
        selection = _select(Trigger(tuple(args.names), False), args.base, "HEAD", config.models_dir)
        print(selection.summary())
        if selection.empty:
            return 1
        jobs = plan_jobs(selection, config.machine_types)
    timeout = args.timeout or float(config.job_timeout_seconds)
    outcomes = asyncio.run(_run_jobs(jobs, tests, root, head, args.python, timeout))
    _print_table(outcomes)
    _remember(outcomes)
    return 0 if all(o.ok for _, o in outcomes) else 1


async def _run_jobs(
    jobs: tuple[JobSpec, ...],
    tests: dict[str, tuple[str, ...]],
    root: str,
    head: str,
    python: str,
    job_seconds: float,
) -> list[tuple[JobSpec, JobOutcome]]:
    with tempfile.TemporaryDirectory(prefix="run-slow-") as work:
        runner = LocalRunner(
            EnvCache(EnvConfig(python=python)),
            GpuPool(),
            LocalRunnerConfig(work_dir=Path(work)),
        )
        outcomes = []
        for number, job in enumerate(jobs, 1):
            print(f"[{number}/{len(jobs)}] {job.name} ...", file=sys.stderr, flush=True)
            request = RunRequest(
                job_id=f"local-{number}",
                run_id="local",
                repo="local",
                head_clone_url=root,
                head_sha=head,
                folder=job.folder,
                machine_type=job.machine_type,
                timeout_s=job_seconds,
                tests=tests.get(job.name, ()),
            )
            outcome = await runner.run(request, _progress)
            print(f"    {outcome.state}: {_counts(outcome)}", file=sys.stderr, flush=True)
            outcomes.append((job, outcome))
        return outcomes


def _progress(line: str) -> None:
    # pytest -v prints a line per test: show those, not the whole log.
    if " PASSED" in line or " FAILED" in line or " SKIPPED" in line or " ERROR" in line:
        print(f"    {line.rstrip()}", file=sys.stderr, flush=True)


def _counts(outcome: JobOutcome) -> str:
    return (
        f"{outcome.passed} passed, {outcome.failed + outcome.errors} failed,"
        f" {outcome.skipped} skipped, {outcome.duration_s:.1f} s"
        + (f" ({outcome.reason})" if outcome.reason else "")
    )


def _print_table(outcomes: list[tuple[JobSpec, JobOutcome]]) -> None:
    width = max((len(job.name) for job, _ in outcomes), default=3)
    print(f"{'job':<{width}}  {'result':<9} passed failed skipped  duration")
    for job, outcome in outcomes:
        print(
            f"{job.name:<{width}}  {outcome.state:<9} {outcome.passed:>6}"
            f" {outcome.failed + outcome.errors:>6} {outcome.skipped:>7}"
            f"  {outcome.duration_s:7.1f} s"
        )
        for failure in outcome.failures[:10]:
            print(f"    {failure.node_id}: {failure.headline}")
        if outcome.reason and outcome.state != "passed":
            print(f"    {outcome.reason}")


def _remember(outcomes: list[tuple[JobSpec, JobOutcome]]) -> None:
    failed = {
        job.name: {
            "folder": job.folder,
            "machine_type": job.machine_type,
            "tests": [t.node_id for t in outcome.failures],
        }
        for job, outcome in outcomes
        if not outcome.ok
    }
    LAST_RUN.parent.mkdir(parents=True, exist_ok=True)
    LAST_RUN.write_text(json.dumps(failed, indent=2))


def _last_failures() -> tuple[tuple[JobSpec, ...], dict[str, tuple[str, ...]]]:
    try:
        failed = json.loads(LAST_RUN.read_text())
    except FileNotFoundError:
        raise UsageError("no earlier `bot run-slow` here to re-run the failures of") from None
    except ValueError:
        raise UsageError(f"{LAST_RUN} is not what `bot run-slow` wrote; remove it") from None
    jobs = tuple(JobSpec(entry["folder"], entry["machine_type"]) for entry in failed.values())
    return jobs, {name: tuple(entry["tests"]) for name, entry in failed.items()}
