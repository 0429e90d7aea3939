"""`bot bisect` and `bot scheduled-ci show`: what a scheduled run would decide, on a checkout.

`bisect` answers "which commit broke these tests?" on this repository's history with the same
verdicts and the same bisect the server uses: re-runs at the bad commit (flaky?), a run at the
good one (failing there too?), then a bisect of the first-parent commits between them, tests
that break together probed together. Each commit is tested in a `git worktree` of its own,
removed after, so the checkout is never touched; pytest runs with `RUN_SLOW=yes` and a minimal
environment, the interpreter being `BOT_TEST_PYTHON` or the one running `bot`.

`scheduled-ci show` lists the schedules of the local `bot.toml` with their next fire times.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from bot.clients.git import GitError, rev_parse, run_git
from bot.config import CONFIG_PATH
from bot.jobs.runners.junit import read_junit
from bot.jobs.runners.pytest_command import PYTEST_ENV, pytest_argv
from bot.kit.checkout import UsageError, local_config, local_python
from handlers.scheduled_ci.bisect import Bisect
from handlers.scheduled_ci.plan import FAILING, select_folders

#: What a test run may see of the caller's environment: where things are and which GPUs, so
#: model tests find their caches, and never a token.
PASSED_ENV = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "CUDA_VISIBLE_DEVICES",
    "HF_HOME",
    "HF_HUB_CACHE",
    "HF_HUB_OFFLINE",
    "TORCH_HOME",
    "XDG_CACHE_HOME",
)
#: Node ids on the command line: enough for any real selection, a cap on a pasted log.
MAX_TESTS = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_NODE_ID_SHAPE = (
    "a node id is a relative path under tests/, like tests/models/bert/test_x.py::test_y"
)
#: Runs node ids at one commit and answers each one's outcome.
_Run = Callable[[Sequence[str]], dict[str, str]]


def register_cli(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds this feature's commands to `bot`'s subparsers."""
    text = "find the commit that broke these tests, as a scheduled run would"
    bisect = sub.add_parser("bisect", help=text, description=text)
    bisect.set_defaults(func=cmd_bisect)
    bisect.add_argument(
        "tests", nargs="+", metavar="TEST", help="pytest node ids under tests/, from the root"
    )
    bisect.add_argument("--good", required=True, metavar="REV", help="a commit where they pass")
    bisect.add_argument("--bad", required=True, metavar="REV", help="a commit where they fail")
    bisect.add_argument(
        "--reruns", type=int, default=3, metavar="N", help="runs at the bad commit (3)"
    )
    bisect.add_argument(
        "--timeout", type=float, default=3600.0, metavar="SECONDS", help="per pytest run (3600)"
    )
    bisect.add_argument("--json", action="store_true", help="one object per test")

    text = "the schedules of the local bot.toml"
    scheduled = sub.add_parser("scheduled-ci", help=text, description=text)
    actions = scheduled.add_subparsers(dest="scheduled_ci_command", required=True, metavar="ACTION")
    text = "each schedule with its next fire time (UTC) and the folders it selects here"
    show = actions.add_parser("show", help=text, description=text)
    show.set_defaults(func=cmd_show)
    show.add_argument("--config", help=f"default: ./{CONFIG_PATH} when present")
    show.add_argument(
        "--after",
        metavar="TIME",
        help="fire times after this moment, ISO 8601 (default: now); UTC unless it says",
    )


# --------------------------------------------------------------------------- bot bisect


@dataclass
class _Answer:
    """One test's verdict as `--json` prints it, with every run that led to it."""

    test: str
    verdict: str = ""
    first_bad: str | None = None
    reason: str = ""
    evidence: list[dict[str, str]] = field(default_factory=list)

    def add(self, sha: str, outcome: str, step: str) -> None:
        self.evidence.append({"sha": sha, "outcome": outcome, "step": step})

    def as_json(self) -> dict[str, Any]:
        return {
            "test": self.test,
            "verdict": self.verdict,
            "first_bad": self.first_bad,
            "runs": len(self.evidence),
            "reason": self.reason,
            "evidence": self.evidence,
        }


def cmd_bisect(args: argparse.Namespace) -> int:
    tests = list(dict.fromkeys(args.tests))
    if len(tests) > MAX_TESTS:
        raise UsageError(f"at most {MAX_TESTS} tests at once, got {len(tests)}")
    for test in tests:
        problem = node_id_problem(test)
        if problem is not None:
            raise UsageError(f"{test!r} is not a test to bisect: {problem}")
    if not 1 <= args.reruns <= 10:
        raise UsageError(f"--reruns takes 1 to 10, got {args.reruns}")
    if not args.timeout > 0:
        raise UsageError(f"--timeout takes a positive number of seconds, got {args.timeout}")
    root, good, bad, commits = _history(args.good, args.bad)
    tester = _Tester(Path(root), local_python(), args.timeout)
    answers = run_bisect(tester, tests, good, bad, commits, args.reruns)
    if args.json:
        print(json.dumps([a.as_json() for a in answers], indent=2))
    else:
        _print_answers(answers, len(commits))
    return 0


def node_id_problem(test: str) -> str | None:
    """None when `test` is a pytest node id under `tests/` (pytest takes it as a path and
    nothing else), else what is wrong with it."""
    if _CONTROL.search(test):
        return "it holds control characters"
    path = test.split("::", 1)[0]
    if not path or path.startswith(("/", "-", "~")) or "\\" in path:
        return _NODE_ID_SHAPE
    if PurePosixPath(path).parts[0] != "tests" or {".", ".."} & set(path.split("/")):
        return _NODE_ID_SHAPE
    return None


def _history(good_rev: str, bad_rev: str) -> tuple[str, str, str, list[str]]:
    """The checkout's root, the two commits, and the first-parent commits after the good one
    up to the bad one, oldest first; a clear error for anything that makes them meaningless."""
    try:
        root = run_git(["rev-parse", "--show-toplevel"]).strip()
    except GitError as exc:
        raise UsageError(f"not in a git checkout: {exc}") from None
    try:
        good = rev_parse(good_rev, root)
    except GitError:
        raise UsageError(f"--good {good_rev!r} is not a commit here") from None
    try:
        bad = rev_parse(bad_rev, root)
    except GitError:
        raise UsageError(f"--bad {bad_rev!r} is not a commit here") from None
    changed = run_git(["status", "--porcelain", "--untracked-files=no"], root)
    if changed.strip():
        raise UsageError(
            "the working tree has uncommitted changes: commit or stash them, so that what is"
            " tested is what the history holds"
        )
    if good == bad:
        raise UsageError("--good and --bad are the same commit")
    commits = run_git(["rev-list", "--first-parent", "--reverse", f"{good}..{bad}"], root).split()
    parent = ""
    if commits:
        with contextlib.suppress(GitError):  # the oldest is a root commit: no parent
            parent = run_git(["rev-parse", "--verify", f"{commits[0]}^1"], root).strip()
    if parent != good:
        raise UsageError(
            f"--good {good_rev} is not on the first-parent history of --bad {bad_rev}"
            " (the bisect follows the commits the branch itself made, merges as one)"
        )
    return root, good, bad, commits


def run_bisect(
    tester: _Tester,
    tests: Sequence[str],
    good: str,
    bad: str,
    commits: Sequence[str],
    reruns: int,
) -> list[_Answer]:
    """The verdict of each test: re-runs at `bad`, one run at `good`, then the bisect."""
    answers = {test: _Answer(test) for test in tests}
    with tester.at(bad) as run:
        pending = list(tests)
        for number in range(1, reruns + 1):
            if not pending:
                break
            _say(f"{bad[:12]} (bad), run {number} of {reruns}: {len(pending)} test(s)")
            outcomes = run(pending)
            for test in pending:
                answers[test].add(bad, outcomes[test], "bad")
            # A test seen both passing and failing is flaky: no more runs needed to say so.
            pending = [t for t in pending if not _seen_both(answers[t])]
    answered = ("passed", *FAILING)
    not_run = [t for t in tests if not any(e["outcome"] in answered for e in answers[t].evidence)]
    if not_run:
        outcome = answers[not_run[0]].evidence[-1]["outcome"]
        raise UsageError(
            f"pytest did not run {not_run[0]} at --bad {bad[:12]} ({outcome}): is the node id"
            " right, and does it need a GPU or RUN_SLOW here?"
        )
    failing = []
    for test in tests:
        answer = answers[test]
        seen = {e["outcome"] for e in answer.evidence}
        if "passed" in seen and seen & FAILING:
            passes = sum(e["outcome"] == "passed" for e in answer.evidence)
            answer.verdict, answer.reason = "flaky", f"passed {passes} of the runs at bad"
        elif "passed" in seen:
            answer.verdict, answer.reason = "passes", "passed every run at bad"
        else:
            failing.append(test)
    if not failing:
        return list(answers.values())
    with tester.at(good) as run:
        _say(f"{good[:12]} (good): {len(failing)} test(s)")
        outcomes = run(failing)
    suspects = []
    for test in failing:
        answer = answers[test]
        outcome = outcomes[test]
        answer.add(good, outcome, "good")
        if outcome in FAILING:
            answer.verdict, answer.reason = "pre-existing", f"{outcome} at good too"
        elif outcome == "passed":
            suspects.append(test)
        else:
            answer.verdict = "unknown"
            answer.reason = (
                f"not run at good ({outcome}): added since, or it cannot be collected there"
            )
    if suspects:
        symptoms = {t: _symptom(answers[t]) for t in suspects}
        bisect = Bisect.start(commits, suspects, good=good, symptoms=symptoms)
        while not bisect.done:
            for sha, probed in bisect.next_probes():
                with tester.at(sha) as run:
                    _say(f"{sha[:12]} (bisect): {len(probed)} test(s)")
                    results = run(probed)
                for test in probed:
                    answers[test].add(sha, results[test], "bisect")
                bisect.record(sha, results)
        for test, result in bisect.results().items():
            answer = answers[test]
            answer.verdict, answer.first_bad, answer.reason = (
                result.verdict,
                result.first_bad,
                result.reason,
            )
    return list(answers.values())


def _seen_both(answer: _Answer) -> bool:
    seen = {e["outcome"] for e in answer.evidence}
    return "passed" in seen and bool(seen & FAILING)


def _symptom(answer: _Answer) -> str:
    """How the test fails at bad: a test that errors there is bisected for that error."""
    outcomes = [e["outcome"] for e in answer.evidence if e["step"] == "bad"]
    return "error" if outcomes and all(o == "error" for o in outcomes) else "failed"


def _print_answers(answers: Sequence[_Answer], commits: int) -> None:
    print(f"{commits} first-parent commit{'s' if commits != 1 else ''} after good")
    print(f"{'verdict':<13} {'first bad':<12} {'runs':>4}  test")
    for answer in answers:
        first = answer.first_bad[:12] if answer.first_bad else "-"
        print(f"{answer.verdict:<13} {first:<12} {len(answer.evidence):>4}  {answer.test}")
        if answer.reason:
            print(f"{'':<13} {answer.reason}")


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- running pytest


class _Tester:
    """Runs node ids at a commit, in a worktree of its own, and reads each test's outcome."""

    def __init__(self, root: Path, python: str, timeout_s: float) -> None:
        self.root = root
        self.python = python
        self.timeout_s = timeout_s

    @contextlib.contextmanager
    def at(self, sha: str) -> Iterator[_Run]:
        """A worktree of `sha` for as long as the block runs, removed after even on error.
        Hooks are off: checking out a commit to test it runs none of its scripts."""
        with tempfile.TemporaryDirectory(prefix="bot-bisect-") as tmp:
            tree = Path(tmp) / sha[:12]
            run_git(
                ["-c", "core.hooksPath=/dev/null", "worktree", "add", "--detach", "--quiet",
                 str(tree), sha],
                self.root,
            )  # fmt: skip
            try:
                yield lambda tests: self._pytest(tree, tests, Path(tmp))
            finally:
                with contextlib.suppress(GitError):
                    run_git(["worktree", "remove", "--force", str(tree)], self.root)
                with contextlib.suppress(GitError):
                    run_git(["worktree", "prune"], self.root)

    def _pytest(self, tree: Path, tests: Sequence[str], tmp: Path) -> dict[str, str]:
        junit = tmp / f"junit-{time.monotonic_ns()}.xml"
        log = tmp / "pytest.log"
        argv = pytest_argv(self.python, junit, list(tests))
        env = {name: os.environ[name] for name in PASSED_ENV if name in os.environ}
        env |= {**PYTEST_ENV, "PYTHONDONTWRITEBYTECODE": "1"}
        with open(log, "ab") as out:
            process = subprocess.Popen(
                argv, cwd=tree, env=env, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
            try:
                process.wait(timeout=self.timeout_s)
            except subprocess.TimeoutExpired:
                _say(f"    pytest ran past {self.timeout_s:g} s: stopped")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                return dict.fromkeys(tests, "missing")
            finally:
                # Whatever the tests started ends with them.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
        report = read_junit(junit, root=tree)
        return outcomes_for(tests, [(t.node_id, t.outcome) for t in report.tests])


def outcomes_for(tests: Sequence[str], results: Sequence[tuple[str, str]]) -> dict[str, str]:
    """Each requested node id's outcome: a file or a class stands for the tests under it
    (failed if any failed, error if any errored, passed if every one passed); "skipped" when
    every one was skipped, "missing" when the report has none."""
    answers = {}
    for test in tests:
        under = [
            outcome
            for node, outcome in results
            if node == test or node.startswith((f"{test}::", f"{test}["))
        ]
        if not under:
            answers[test] = "missing"
        elif "failed" in under:
            answers[test] = "failed"
        elif "error" in under:
            answers[test] = "error"
        elif "passed" in under:
            answers[test] = "passed"
        else:
            answers[test] = "skipped"
    return answers


# --------------------------------------------------------------------------- scheduled-ci show


def cmd_show(args: argparse.Namespace) -> int:
    schedules = local_config(args.config).scheduled_ci
    after = _moment(args.after)
    if not schedules:
        print(f"no [[scheduled_ci]] in {args.config or CONFIG_PATH}")
        return 0
    folders = _test_folders()
    for schedule in schedules:
        fire = datetime.fromtimestamp(schedule.next_fire(after), UTC)
        print(f"{schedule.name}: {schedule.cron}  next {fire:%Y-%m-%d %H:%M} UTC")
        selected, unmatched = select_folders(schedule.folders, folders)
        patterns = ", ".join(schedule.folders) or "every model folder and quantization/*"
        print(f"  folders: {patterns} ({len(selected)} here)")
        for pattern in unmatched:
            print(f"  warning: {pattern!r} matches no folder under tests/ here")
        print(f"  machine types: {', '.join(schedule.machine_types)}")
        print(f"  report: {'#' + schedule.channel.lstrip('#') if schedule.channel else 'none'}")
        steps = [f"{schedule.reruns} re-runs", "the previous run's commit"]
        steps += ["bisect"] if schedule.bisect else []
        steps += ["a comment on the breaking PR"] if schedule.notify_pr else []
        print(f"  a new failure gets: {', '.join(steps)}")
    return 0


def _moment(text: str | None) -> float:
    if text is None:
        return time.time()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"--after takes an ISO 8601 time (2024-05-01T02:00), got {text!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _test_folders() -> list[str]:
    """The folders under this checkout's `tests/`, relative to it, as the server reads them
    from the default branch; none outside a checkout."""
    tests = Path("tests")
    if not tests.is_dir():
        return []
    return sorted(
        path.relative_to(tests).as_posix()
        for path in tests.rglob("*")
        if path.is_dir() and "__pycache__" not in path.parts
    )
