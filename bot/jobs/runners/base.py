"""The contract between the job system and the places a test job can run.

The job system (`bot/jobs/system.py`) owns durability, ordering and reporting; a runner only
turns one `JobRequest` into one `JobOutcome` and can be told to stop. Keeping that surface to
two coroutines lets the local runner and a GitHub Actions runner be swapped without the job
system knowing how either checks out code or kills processes.

Also here: the pieces every runner needs to run untrusted code without leaking a secret or
hanging the bot — a bounded, redacting log and a subprocess helper that owns a whole process
group and always kills it.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import inspect
import logging
import os
import re
import signal
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from bot.jobs.runners.confine import Limits
from bot.jobs.runners.junit import TestResult
from bot.logs import redact

log = logging.getLogger(__name__)

JobState = Literal["passed", "failed", "error", "skipped", "timed_out", "cancelled"]
MachineType = Literal["single-gpu", "multi-gpu"]
MACHINE_TYPES: tuple[str, ...] = ("single-gpu", "multi-gpu")


def machine_types_problem(values: Sequence[str]) -> str | None:
    """What is wrong with a setting's list of machine types (None: nothing), in the words a
    `bot.toml` error gives after the key."""
    if not values or len(set(values)) != len(values) or set(values) - set(MACHINE_TYPES):
        return f"takes single-gpu and multi-gpu, each once, got {list(values)}"
    return None


#: states after which the commit status may still be `success`
OK_STATES: frozenset[str] = frozenset({"passed", "skipped"})

#: Called for each log line; may be a plain function or a coroutine function.
LogSink = Callable[[str], Awaitable[None] | None]
#: Returns the installation token (or None for public repositories); may be async because
#: minting a token is an HTTP call the job system should only make when a fetch needs it.
TokenProvider = Callable[[], str | Awaitable[str | None] | None]

_SHA = re.compile(r"^[0-9a-f]{40}$")
_FOLDER_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_EXTRA = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9])?$")
_REF = re.compile(r"^(?!-)(?!.*\.\.)[A-Za-z0-9_./-]+$")


class JobError(Exception):
    """A job cannot go on; the message is the `reason` the PR and the run page show."""


@dataclass(frozen=True, kw_only=True)
class JobRequest:
    """What every job is, whatever it does: one job of one run, pinned to one commit.

    The job system builds it from the run's and the job's specs (`bot/jobs/system.py`'s
    `build_request`); a kind of job with more to say subclasses it (`RunRequest` for a test run,
    `/style`'s request for its fix), so no job carries fields that mean nothing to it.

    `head_ref`, when given, names the branch the maintainer saw at `head_sha`: a runner that
    re-reads it ends the job in `error` if the branch moved, because the maintainer approved a
    commit, not a branch.
    """

    job_id: str
    run_id: str
    repo: str  # the base repository's full name
    head_clone_url: str
    head_sha: str
    head_ref: str | None = None
    base_clone_url: str | None = None
    base_ref: str | None = None
    base_sha: str | None = None
    pull_number: int | None = None
    timeout_s: float = 3600.0
    token: TokenProvider | None = field(default=None, repr=False, compare=False)
    #: where the runner also writes what it keeps (`log.txt`, `junit.xml`) for the caller
    artifacts_dir: Path | None = None
    #: what only one kind of runner reads (the Actions runner: workflow, labels, branch)
    options: Mapping[str, Any] = field(default_factory=dict, compare=False)
    #: the bot stopped or died during an earlier start of this job: a runner whose work
    #: outlives the bot (a workflow run) looks for what that start began before beginning anew
    resumed: bool = False
    #: the repository's `[slow_ci] network`: False leaves the job's processes loopback alone
    network: bool = True
    #: what the job's confined processes may use (a mapping, as stored in a run's spec, is read
    #: into `Limits`)
    limits: Limits = field(default_factory=Limits)

    def __post_init__(self) -> None:
        if not _SHA.match(self.head_sha):
            raise ValueError(f"head_sha must be a full 40-hex commit id, not {self.head_sha!r}")
        if self.base_sha is not None and not _SHA.match(self.base_sha):
            raise ValueError(f"base_sha must be a full 40-hex commit id, not {self.base_sha!r}")
        if self.timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        for ref in (self.head_ref, self.base_ref):
            if ref is not None and not _REF.match(ref):
                raise ValueError(f"not a branch name: {ref!r}")
        if isinstance(self.limits, Mapping):
            object.__setattr__(self, "limits", Limits(**self.limits))
        if not isinstance(self.network, bool):
            raise ValueError("network must be true or false")


def node_under(node: str, folder: str) -> bool:
    """Whether `node` is a pytest node id of a test under `tests/<folder>/` that can be handed to
    pytest as one argv word: a test's name comes from a report the tests wrote, so it may not
    climb out of the folder or carry a line break."""
    path = node.split("::", 1)[0]
    return (
        path.startswith(f"tests/{folder}/")
        and ".." not in path.split("/")
        and "\0" not in node
        and "\n" not in node
        and len(node) <= MAX_NODE_ID_CHARS
    )


#: pytest's longest parametrized ids are a few hundred characters; argv words are not unbounded.
MAX_NODE_ID_CHARS = 2000


@dataclass(frozen=True, kw_only=True)
class RunRequest(JobRequest):
    """A test run: one (folder, machine type) job's tests, what the local and Actions runners
    take.

    With a base the job tests `head_sha` merged into `base_ref` (GitHub's `refs/pull/N/merge`
    when it is that merge, else merged locally); without one it tests `head_sha` as is.
    """

    folder: str  # under tests/, e.g. "models/bert"
    machine_type: str = "single-gpu"
    #: node ids to run instead of the whole folder (`run-slow --failed`)
    tests: tuple[str, ...] = ()
    #: the repository's `[slow_ci] extras`: the optional dependency groups its test
    #: environment installs; None is every group the project declares
    extras: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        parts = self.folder.split("/")
        if not self.folder or not all(_FOLDER_PART.match(p) and p != ".." for p in parts):
            raise ValueError(f"folder must be a relative path under tests/, not {self.folder!r}")
        if self.machine_type not in MACHINE_TYPES:
            raise ValueError(f"machine_type must be one of {MACHINE_TYPES}")
        if self.base_clone_url is not None and not self.base_ref:
            raise ValueError("a base_clone_url needs the base_ref to merge into")
        for node in self.tests:
            if not node_under(node, self.folder):
                raise ValueError(f"test {node!r} is not a node id under tests/{self.folder}/")
        if isinstance(self.tests, list):
            object.__setattr__(self, "tests", tuple(self.tests))
        object.__setattr__(self, "extras", _extras(self.extras))

    @property
    def target(self) -> str:
        return f"tests/{self.folder}"


def _extras(extras: Sequence[str] | None) -> tuple[str, ...] | None:
    """A request's optional dependency groups: a stored spec holds a list, and a name reaches
    pip's argv, so nothing but a name."""
    if extras is None:
        return None
    if isinstance(extras, str):
        raise ValueError("extras must be a list of group names, not one string")
    for extra in extras:
        if not isinstance(extra, str) or not _EXTRA.match(extra):
            raise ValueError(f"not an optional dependency group: {extra!r}")
    return tuple(extras)


#: The word of a benchmark's command that the path of its metrics file replaces (inside a word
#: too: `--json={output}`).
OUTPUT_PLACEHOLDER = "{output}"
#: A benchmark command's first word that means the test environment's interpreter.
PYTHON_WORD = "python"
MAX_BENCHMARK_REPEATS = 100


@dataclass(frozen=True, kw_only=True)
class BenchmarkRequest(JobRequest):
    """A benchmark: the repository's own command run `repeats` times on `head_sha` as it is (never
    merged into anything), in the test environment, confined as tests are.

    Each repeat writes its metrics to a fresh file whose path replaces `{output}`; a first word
    `python` is the test environment's interpreter. The runner hands back each file's text and
    never reads its shape: `check_metrics`, the feature's reader, says whether a file is usable
    (it raises `ValueError` with what is wrong), so a file in no known format ends the job in
    `error` where the run's page shows it, without the runner knowing any format.
    """

    command: tuple[str, ...]
    repeats: int = 1
    machine_type: str = "single-gpu"
    #: the repository's `[slow_ci] extras`, as for a test run
    extras: tuple[str, ...] | None = None
    check_metrics: Callable[[bytes], object] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.command, str):
            raise ValueError("command must be an argv list, not one string")
        command = tuple(self.command)
        if not command or not all(isinstance(w, str) and "\0" not in w for w in command):
            raise ValueError("command must be a non-empty list of strings without NUL")
        if not command[0] or not any(OUTPUT_PLACEHOLDER in w for w in command):
            raise ValueError(f"command must name a program and {OUTPUT_PLACEHOLDER}")
        object.__setattr__(self, "command", command)
        if isinstance(self.repeats, bool) or not 1 <= self.repeats <= MAX_BENCHMARK_REPEATS:
            raise ValueError(f"repeats must be between 1 and {MAX_BENCHMARK_REPEATS}")
        if self.machine_type not in MACHINE_TYPES:
            raise ValueError(f"machine_type must be one of {MACHINE_TYPES}")
        if self.base_clone_url is not None:
            raise ValueError("a benchmark runs its commit as it is: it takes no base to merge")
        object.__setattr__(self, "extras", _extras(self.extras))

    def argv(self, python: str, output: str) -> list[str]:
        """The command as it runs: `{output}` replaced by `output`, a first word `python` by
        the test environment's interpreter."""
        return benchmark_argv(self.command, python, output)


def benchmark_argv(command: Sequence[str], python: str, output: str) -> list[str]:
    """A benchmark command as every runner runs it (`benchmarks.yml` writes the same in shell):
    `{output}` replaced wherever it appears, a first word `python` by `python`."""
    words = [word.replace(OUTPUT_PLACEHOLDER, output) for word in command]
    if words and command[0] == PYTHON_WORD:
        words[0] = python
    return words


def file_began(data: bytes, lines: int) -> str:
    """The first lines of a file a job wrote and nobody can read (a metrics file in no known
    format), as every runner's reason quotes them."""
    shown = [ln[:300] for ln in data[:4096].decode("utf-8", "replace").splitlines()[:lines]]
    shown = [ln for ln in shown if ln.strip()]
    return "; the file began:\n" + "\n".join(shown) if shown else "; the file is empty"


async def judge_metrics(
    request: BenchmarkRequest, which: str, data: bytes, reason_lines: int
) -> tuple[str, str | None]:
    """A repeat's metrics file as text, or why it cannot be used, in the same words on every
    runner: the feature's reader judges it (off the loop: it parses JSON the benchmarked code
    wrote), and what it cannot read is quoted by its first lines."""
    if request.check_metrics is not None:
        try:
            await asyncio.to_thread(request.check_metrics, data)
        except ValueError as exc:
            return "", f"{which}: {exc}{file_began(data, reason_lines)}"
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError:
        return "", f"{which}: its metrics file is not UTF-8 text"


@dataclass(frozen=True)
class JobOutcome:
    state: JobState
    reason: str = ""
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    errors: int = 0
    duration_s: float = 0.0
    tests: tuple[TestResult, ...] = ()
    #: the whole log, bounded: head and tail kept, the cut said in the middle
    log: str = ""
    #: the last lines, for a comment
    log_tail: str = ""
    #: the JUnit XML pytest wrote, when it was small enough to keep
    junit_xml: str | None = None
    #: the commit the tests ran on: the pinned head, or the merge of it into the base
    tested_sha: str | None = None
    exit_code: int | None = None
    #: seconds spent per phase (checkout, env, wait, tests): where a job's overhead goes
    timings: Mapping[str, float] = field(default_factory=dict)
    #: what a job that is not a test run produced, as JSON-able data for its feature's reporter
    #: (the `/style` fix: files, fixes, commit, remaining errors); stored with the job's row
    result: Mapping[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.state in OK_STATES

    @property
    def failures(self) -> tuple[TestResult, ...]:
        return tuple(t for t in self.tests if t.outcome in ("failed", "error"))


class Runner(Protocol):
    """What the job system drives. A runner may run many jobs at once, told apart by job id."""

    name: str

    async def run(self, request: JobRequest, on_log: LogSink | None = None) -> JobOutcome:
        """Run the job to its end; never raises for the job's own failures, only returns them.

        Each runner takes the request shape of the jobs it runs (a `RunRequest` for tests)."""
        ...

    async def cancel(self, job_id: str) -> bool:
        """Stop the job and return once its processes are gone; False when it was not running."""
        ...


async def resolve_token(provider: TokenProvider | None) -> str | None:
    """One call shape for sync and async providers, so callers need not care which they have."""
    if provider is None:
        return None
    value = provider()
    if inspect.isawaitable(value):
        value = await value
    return value or None


class BoundedLog:
    """A job's log: streamed to a sink line by line, kept as head + tail within `limit_bytes`.

    A test run can print gigabytes; the head shows how it started (collection, environment),
    the tail how it ended (the failures summary), and the middle is what can be lost. Secrets
    are masked before a line goes anywhere, so even a runner bug that echoes a token stays dark.
    """

    def __init__(
        self,
        limit_bytes: int = 2 * 1024 * 1024,
        sink: LogSink | None = None,
        *,
        secrets: Sequence[str] = (),
        max_line_chars: int = 8192,
    ) -> None:
        self._head: list[str] = []
        self._tail: deque[str] = deque()
        self._head_budget = limit_bytes // 2
        self._tail_budget = limit_bytes - self._head_budget
        self._head_bytes = 0
        self._tail_bytes = 0
        self._sink = sink
        self._sink_broken = False
        self._secrets: set[str] = {s for s in secrets if s}
        self._max_line = max_line_chars
        self.cut_lines = 0
        self.cut_bytes = 0
        self.lines = 0

    def add_secret(self, secret: str | None) -> None:
        if secret:
            self._secrets.add(secret)

    def redact(self, text: str) -> str:
        """For text that leaves by another way than the log: a job's reason, an error."""
        return redact(text, self._secrets) if self._secrets else text

    async def write(self, line: str) -> None:
        line = line.rstrip("\r\n")
        if len(line) > self._max_line:
            line = f"{line[: self._max_line]}… [{len(line) - self._max_line} characters cut]"
        if self._secrets:
            line = redact(line, self._secrets)
        self.lines += 1
        size = len(line.encode("utf-8", "replace")) + 1
        if not self._tail and self._head_bytes + size <= self._head_budget:
            self._head.append(line)
            self._head_bytes += size
        else:
            self._tail.append(line)
            self._tail_bytes += size
            while self._tail_bytes > self._tail_budget and self._tail:
                dropped = self._tail.popleft()
                self._tail_bytes -= len(dropped.encode("utf-8", "replace")) + 1
                self.cut_lines += 1
                self.cut_bytes += len(dropped.encode("utf-8", "replace")) + 1
        await self._emit(line)

    async def note(self, text: str) -> None:
        """A line from the runner itself, marked so it is not mistaken for test output."""
        await self.write(f"[runner] {text}")

    async def _emit(self, line: str) -> None:
        if self._sink is None or self._sink_broken:
            return
        try:
            result = self._sink(line)
            if inspect.isawaitable(result):
                await result
        except asyncio.CancelledError:
            raise
        except Exception:
            # A broken log viewer must not fail the test run it is watching.
            self._sink_broken = True
            log.warning("log sink failed; the job goes on without it", exc_info=True)

    def text(self) -> str:
        parts = list(self._head)
        if self.cut_lines:
            parts.append(
                f"[runner] … {self.cut_lines} lines ({self.cut_bytes} bytes) cut from the middle"
                " of this log …"
            )
        parts.extend(self._tail)
        return "\n".join(parts) + ("\n" if parts else "")

    def tail(self, lines: int = 60, max_chars: int = 8000) -> str:
        last = list(self._tail)[-lines:]
        if len(last) < lines:
            last = self._head[-(lines - len(last)) :] + last
        text = "\n".join(last)
        return text if len(text) <= max_chars else "…" + text[-(max_chars - 1) :]


async def kill_process_group(proc: asyncio.subprocess.Process, grace_s: float) -> None:
    """SIGTERM the group, SIGKILL it after `grace_s`, and always sweep stragglers.

    The sweep runs even after a clean exit: a test that left a background process behind must
    not keep a GPU busy for the next job.
    """
    if proc.returncode is None:
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), grace_s)
        except TimeoutError:
            pass
        except asyncio.CancelledError:
            _signal_group(proc.pid, signal.SIGKILL)
            raise
    _signal_group(proc.pid, signal.SIGKILL)
    if proc.returncode is None:
        await proc.wait()


def close_pipes(proc: asyncio.subprocess.Process) -> None:
    """Close the process's pipes now. A confined job's processes die just after bubblewrap
    (the kernel ends its namespace), so the pipe's end can come after the caller has stopped
    waiting, or after the bot's loop is gone; an unclosed transport then fails at collection."""
    transport = getattr(proc, "_transport", None)
    if transport is not None:
        transport.close()


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


async def stream_process(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str | Path,
    on_line: Callable[[str], Awaitable[None]],
    timeout_s: float | None = None,
    kill_grace_s: float = 5.0,
) -> int:
    """Run argv in its own session with stdout+stderr streamed by line; return its exit code.

    Raises TimeoutError after `timeout_s`; on that, on cancellation and on a normal end alike the
    whole process group is killed before this returns, so nothing outlives the job.
    """
    proc = await asyncio.create_subprocess_exec(
        *argv,
        env=dict(env),
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    assert proc.stdout is not None
    pump = asyncio.create_task(_pump(proc.stdout, on_line))
    try:
        async with asyncio.timeout(timeout_s):
            code = await proc.wait()
            # The pipe closes when the group is gone; a process that escaped the group would hold
            # it open forever, so the rest of the output gets a short while only.
            await kill_process_group(proc, kill_grace_s)
            await asyncio.wait({pump}, timeout=2.0)
            return code
    finally:
        try:
            await kill_process_group(proc, kill_grace_s)
            if not pump.done():
                await asyncio.wait({pump}, timeout=1.0)
            if not pump.done():
                pump.cancel()
                await asyncio.gather(pump, return_exceptions=True)
        finally:
            close_pipes(proc)


async def _pump(stream: asyncio.StreamReader, on_line: Callable[[str], Awaitable[None]]) -> None:
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    pending = ""
    while True:
        chunk = await stream.read(65536)
        if not chunk:
            break
        pending += decoder.decode(chunk)
        *lines, pending = pending.split("\n")
        for line in lines:
            await on_line(line)
        if len(pending) > 65536:  # a line without end: flush it rather than grow without bound
            await on_line(pending)
            pending = ""
    pending += decoder.decode(b"", final=True)
    if pending:
        await on_line(pending)


async def run_captured(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str | Path,
    timeout_s: float | None = None,
    kill_grace_s: float = 2.0,
    max_bytes: int = 1024 * 1024,
) -> tuple[int, str, str]:
    """Run a short command for its output (rev-parse, cat-file), with the same group discipline.

    At most `max_bytes` of each stream are kept, and only those are ever held: the rest is read
    and dropped as it comes, so a command that prints gigabytes costs no memory.
    """
    done = await run_bounded(
        argv, env=env, cwd=cwd, timeout_s=timeout_s, kill_grace_s=kill_grace_s, max_bytes=max_bytes
    )
    return done.code, done.out, done.err


@dataclass(frozen=True)
class Captured:
    """What a command printed, cut to a limit, and how much there was in all."""

    code: int
    out: str
    err: str
    out_bytes: int
    err_bytes: int
    max_bytes: int

    @property
    def cut(self) -> bool:
        return self.out_bytes > self.max_bytes or self.err_bytes > self.max_bytes


async def run_bounded(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str | Path,
    timeout_s: float | None = None,
    kill_grace_s: float = 2.0,
    max_bytes: int = 1024 * 1024,
) -> Captured:
    """`run_captured` that also says how much was printed, for callers that must tell a cut
    output from a whole one."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        env=dict(env),
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        async with asyncio.timeout(timeout_s):
            (out, out_n), (err, err_n) = await asyncio.gather(
                _read_capped(proc.stdout, max_bytes), _read_capped(proc.stderr, max_bytes)
            )
            await proc.wait()
    finally:
        try:
            await kill_process_group(proc, kill_grace_s)
        finally:
            close_pipes(proc)
    assert proc.returncode is not None
    return Captured(
        proc.returncode,
        out.decode("utf-8", "replace"),
        err.decode("utf-8", "replace"),
        out_n,
        err_n,
        max_bytes,
    )


async def _read_capped(stream: asyncio.StreamReader, limit: int) -> tuple[bytes, int]:
    kept = bytearray()
    total = 0
    while chunk := await stream.read(65536):
        total += len(chunk)
        if len(kept) < limit:
            kept += chunk[: limit - len(kept)]
    return bytes(kept), total
