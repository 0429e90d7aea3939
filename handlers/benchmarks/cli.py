"""`bot benchmark`: the comparison a `run-benchmark` label would post, measured on this machine.

The local `bot.toml`'s `[benchmarks] command` runs at both commits, each checked out in a `git
worktree` of its own (removed after, hooks off), so the checkout is never touched. The runs
take turns, base, head, base, head, ...: a machine that gets busier halfway through slows both
sides alike instead of deciding the verdict. The command gets an explicit argv, a minimal
environment (where things are and which GPUs, never a token) and, for a first word `python`,
`BOT_TEST_PYTHON` or the interpreter running `bot`.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bot.clients.git import GitError, rev_parse, run_git
from bot.config import CONFIG_PATH
from bot.kit.checkout import UsageError, local_config, local_python
from bot.kit.markdown import one_line
from handlers.benchmarks.compare import collect, compare
from handlers.benchmarks.config import MAX_REPEATS, OUTPUT, BenchmarksConfig
from handlers.benchmarks.metrics import DEFAULT_LIMIT, Metric, MetricsError, read_metrics
from handlers.benchmarks.render import text_table, to_json
from handlers.scheduled_ci.cli import PASSED_ENV

#: What a benchmark may see of the caller's environment besides what a test run sees: the
#: thread counts, which change every figure it prints.
BENCHMARK_ENV = (*PASSED_ENV, "OMP_NUM_THREADS", "MKL_NUM_THREADS")
#: Of a failed run's output, the lines the error shows, and the bytes read to find them.
ERROR_LINES = 10
_OUTPUT_READ = 64 * 1024


class BenchmarkError(Exception):
    """A run of the benchmark command gave nothing to compare; the message says which run,
    why, and how its output began."""


def register_cli(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds this feature's command to `bot`'s subparsers."""
    text = "run the [benchmarks] command at two commits and compare, as run-benchmark would"
    bench = sub.add_parser("benchmark", help=text, description=text)
    bench.set_defaults(func=cmd_benchmark)
    bench.add_argument("--base", required=True, metavar="REV", help="the commit to compare with")
    bench.add_argument("--head", required=True, metavar="REV", help="the commit to judge")
    bench.add_argument(
        "--repeats", type=int, metavar="N", help="runs per commit (default: the config's)"
    )
    bench.add_argument("--json", action="store_true", help="one object per metric")
    bench.add_argument("--config", help=f"default: ./{CONFIG_PATH} when present")


def cmd_benchmark(args: argparse.Namespace) -> int:
    config: BenchmarksConfig = local_config(args.config).benchmarks
    if not config.command:
        raise UsageError(
            f"no [benchmarks] command in {args.config or CONFIG_PATH}: name the command that"
            ' writes the metrics, like command = ["python", "bench.py", "--json", "{output}"]'
        )
    repeats = config.repeats if args.repeats is None else args.repeats
    if not 1 <= repeats <= MAX_REPEATS:
        raise UsageError(f"--repeats takes 1 to {MAX_REPEATS}, got {repeats}")
    root, base, head = _commits(args.base, args.head)
    bench = _Bench(Path(root), config, local_python())
    try:
        base_runs, head_runs = bench.run(base, head, repeats)
        rows = compare(collect(base_runs), collect(head_runs), config.threshold)
    except (BenchmarkError, MetricsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(to_json(rows), indent=2, ensure_ascii=False))
    else:
        print(f"base {base[:12]}, head {head[:12]}: {repeats} run(s) each, taking turns")
        print(text_table(rows), end="")
    return 0


def _commits(base_rev: str, head_rev: str) -> tuple[str, str, str]:
    try:
        root = run_git(["rev-parse", "--show-toplevel"]).strip()
    except GitError as exc:
        raise UsageError(f"not in a git checkout: {exc}") from None
    shas = []
    for flag, rev in (("--base", base_rev), ("--head", head_rev)):
        if rev.startswith("-"):  # git would read it as an option
            raise UsageError(f"{flag} {rev!r} is not a commit here")
        try:
            shas.append(rev_parse(rev, root))
        except GitError:
            raise UsageError(f"{flag} {rev!r} is not a commit here") from None
    return root, shas[0], shas[1]


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass
class _Bench:
    root: Path
    config: BenchmarksConfig
    python: str

    def run(
        self, base: str, head: str, repeats: int
    ) -> tuple[list[list[Metric]], list[list[Metric]]]:
        """Every run's metrics at each commit, the two commits taking turns."""
        runs: dict[str, list[list[Metric]]] = {"base": [], "head": []}
        with tempfile.TemporaryDirectory(prefix="bot-benchmark-") as tmp:
            work = Path(tmp)
            with (
                self._worktree(base, work / "base") as base_tree,
                self._worktree(head, work / "head") as head_tree,
            ):
                sides = (("base", base, base_tree), ("head", head, head_tree))
                for number in range(1, repeats + 1):
                    for name, sha, tree in sides:
                        where = f"{name} {sha[:12]} (run {number} of {repeats})"
                        _say(f"{where} ...")
                        output = work / f"{name}-{number}.json"
                        runs[name].append(self._once(tree, output, work / "log", where))
        return runs["base"], runs["head"]

    @contextlib.contextmanager
    def _worktree(self, sha: str, tree: Path) -> Iterator[Path]:
        """A checkout of `sha` for as long as the block runs, removed after even on error.
        Hooks are off: checking out a commit to measure it runs none of its scripts."""
        run_git(
            ["-c", "core.hooksPath=/dev/null", "worktree", "add", "--detach", "--quiet",
             str(tree), sha],
            self.root,
        )  # fmt: skip
        try:
            yield tree
        finally:
            with contextlib.suppress(GitError):
                run_git(["worktree", "remove", "--force", str(tree)], self.root)
            with contextlib.suppress(GitError):
                run_git(["worktree", "prune"], self.root)

    def _once(self, tree: Path, output: Path, log: Path, where: str) -> list[Metric]:
        argv = self.config.argv(self.python, str(output))
        env = {name: os.environ[name] for name in BENCHMARK_ENV if name in os.environ}
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        timeout = self.config.timeout_seconds
        with open(log, "wb") as out:
            try:
                process = subprocess.Popen(
                    argv, cwd=tree, env=env, stdout=out, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, start_new_session=True,
                )  # fmt: skip
            except OSError as exc:
                raise BenchmarkError(f"{where}: cannot start {argv[0]!r}: {exc.strerror}") from None
            try:
                code = process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                code = None
            finally:
                # Whatever the benchmark started ends with it.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if code is None:
            raise BenchmarkError(f"{where}: ran past {timeout} s{_output(log)}")
        if code != 0:
            raise BenchmarkError(f"{where}: the command exited with {code}{_output(log)}")
        try:
            return read_metrics(_read_output(output), limit=DEFAULT_LIMIT)
        except FileNotFoundError:
            raise BenchmarkError(
                f"{where}: the command wrote no JSON to the {OUTPUT} path{_output(log)}"
            ) from None
        except MetricsError as exc:
            raise BenchmarkError(f"{where}: {exc}{_output(log)}") from None


def _read_output(path: Path) -> bytes:
    """The metrics file, read up to one byte past the limit (enough for `read_metrics` to say
    it is too large). Only a plain file is read: a FIFO left at the path would block the read
    for ever, and a link would read some other file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise MetricsError("the metrics file is a symbolic link, not a file") from None
        raise
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            raise MetricsError("the metrics file is not a plain file")
        return file.read(DEFAULT_LIMIT + 1)


def _output(log: Path) -> str:
    """How the run's output began, indented under the error; nothing when it printed nothing."""
    with open(log, "rb") as out:
        head = out.read(_OUTPUT_READ).decode("utf-8", "replace")
    # A terminal's escape sequences in it would act on the reader's terminal: flattened.
    lines = [one_line(line) for line in head.splitlines()[:ERROR_LINES]]
    if not any(lines):
        return "; it printed nothing"
    return "; its output began:\n" + "\n".join(f"    {line}" for line in lines)
