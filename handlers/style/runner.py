"""The `style` runner: ruff's fixes for a pull request's Python files, committed and pushed.

Unlike the local runner this one never executes code from the pull request: the checkout is
only data for ruff, which reads the base branch's configuration from a file outside the
checkout, so nothing the PR adds (`pyproject.toml`, `ruff.toml`, `conftest.py`, a Makefile, a
hook) is consulted or run. ruff is the executable the bot's environment ships, never
`python -m ruff` (which would import a `ruff/` package the PR adds to its root), and it runs
confined with the network off, as does git where it writes or reads the PR's tree. git runs with
hooks off and no configuration but `checkout_git_env`'s; the token reaches only the fetching and
the pushing git processes, as an HTTP header in their environment. The push carries a lease on
the head SHA the comment saw, so a push by the author meanwhile is never overwritten.

ruff's output is read with a cap, and the files go to it in batches, so a pull request of
thousands of files, or of files with hundreds of thousands of errors, costs bounded memory and
gets a reply that says how many errors there were.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.config import Settings
from bot.jobs.runners.base import (
    BoundedLog,
    JobError,
    JobOutcome,
    JobRequest,
    LogSink,
    resolve_token,
    run_bounded,
    run_captured,
    stream_process,
)
from bot.jobs.runners.confine import Confinement, ConfinementUnavailable, Jail, detect
from bot.jobs.runners.local import (
    check_url,
    checkout_git_env,
    fetch_env,
    last_line,
    make_workdir,
    remove_tree,
    token_secrets,
)
from bot.jobs.system import build_request
from handlers.style.plan import (
    COMMIT_MESSAGE,
    CONFIG_FILES,
    MAX_REMAINING,
    ConfigProblem,
    StyleResult,
    cut_diff,
    diagnostic_line,
    fixed_count,
    ruff_settings,
    toml_text,
)

_REFORMATTED = re.compile(r"(\d+) files? reformatted")
_FAILED_FILE = re.compile(r"^error: Failed to (?:parse|read|format) (.+?):(?: ?\d+:\d+:)? (.*)$")
#: files per ruff call, and their names' bytes: far inside the kernel's argument-list limit
BATCH_FILES = 500
BATCH_BYTES = 64 * 1024
#: bytes of ruff's output kept per call; the diagnostics are streamed, one JSON object a line
OUTPUT_CAP = 1024 * 1024


def ruff_executable() -> str:
    """The ruff binary of the bot's own environment (the `ruff` package ships it)."""
    from ruff.__main__ import find_ruff_bin

    return str(find_ruff_bin())


@dataclass(frozen=True, kw_only=True)
class StyleRequest(JobRequest):
    """One `/style` job, pinned to the head SHA and the base SHA seen when it was accepted: the
    head branch is pushed to, and the base commit gives ruff its configuration."""

    # Optional for a job in general, required here: `field()` drops the inherited default.
    head_ref: str = field()
    base_clone_url: str = field()
    base_sha: str = field()
    files: tuple[str, ...]
    #: False for a fork that does not allow maintainer edits: the result is a suggestion
    push: bool = True
    commit_name: str = "maintainer-bot"
    commit_email: str = "maintainer-bot@users.noreply.github.com"
    timeout_s: float = 600.0

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("head_ref", "base_clone_url", "base_sha"):
            if not getattr(self, name):
                raise ValueError(f"a /style job needs its {name}")
        if isinstance(self.files, list):
            object.__setattr__(self, "files", tuple(self.files))


#: The job system's `build_request` for style runs: everything is in the run's spec.
style_request = functools.partial(build_request, shape=StyleRequest)


@dataclass(frozen=True)
class Fix:
    """What ruff did to a set of files in a tree."""

    files_fixed: tuple[str, ...]
    fixes: int
    reformatted: int
    remaining: tuple[str, ...]
    remaining_total: int
    skipped: tuple[tuple[str, str], ...]


def ruff_env(home: Path) -> dict[str, str]:
    """ruff's whole environment: no token, no user configuration (HOME is empty)."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "LANG": "C.UTF-8",
        "NO_COLOR": "1",
    }


def usable_files(root: Path, files: Sequence[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """The files that are regular files inside `root`; a symlink could make ruff read or write
    outside the checkout, so it is skipped."""
    base = root.resolve()
    ok: list[str] = []
    skipped: list[tuple[str, str]] = []
    for name in files:
        path = root / name
        if not path.exists() and not path.is_symlink():
            skipped.append((name, "not in the checkout"))
        elif path.is_symlink() or not path.is_file():
            skipped.append((name, "not a regular file"))
        elif not path.resolve().is_relative_to(base):
            skipped.append((name, "outside the checkout"))
        else:
            ok.append(name)
    return ok, skipped


async def fix_files(
    root: Path,
    files: Sequence[str],
    config: Path,
    home: Path,
    *,
    git_env: Mapping[str, str],
    note: LogSink | None = None,
    ruff: Sequence[str] | None = None,
    timeout_s: float = 600.0,
    confinement: Confinement | None = None,
    writable: Sequence[Path] = (),
) -> Fix:
    """`ruff check --fix` then `ruff format` on exactly `files`, with only `config`'s rules.

    `--config` with a file makes ruff use it for every file and stop looking for configuration
    files in the tree, so the PR's own settings never apply. The remaining errors come from a
    last `ruff check` after formatting, so their line numbers are those of the result. A file
    ruff cannot read or parse is named among the skipped ones with ruff's words.
    """
    ok, skipped = usable_files(root, files)
    if not ok:
        return Fix((), 0, 0, (), 0, tuple(skipped))
    jailer = confinement or detect()
    argv0 = list(ruff) if ruff is not None else [ruff_executable()]
    readonly = [Path(argv0[0]), config] if Path(argv0[0]).is_absolute() else [config]
    jail = Jail(cwd=root, writable=[root, home, *writable], readonly=readonly, network=False)
    # `--no-respect-gitignore`: a `.gitignore` the PR adds must not hide its files from the rules.
    common = ["--config", str(config), "--no-cache", "--force-exclude", "--no-respect-gitignore"]
    env = ruff_env(home)
    unreadable: dict[str, str] = {}

    async def ruff_run(args: list[str], batch: list[str]) -> str:
        done = await run_bounded(
            jailer.wrap([*argv0, *args, *common, "--", *batch], jail),
            env=env, cwd=root, timeout_s=timeout_s, max_bytes=OUTPUT_CAP,
        )  # fmt: skip
        text = done.out + "\n" + done.err
        for line in done.err.splitlines():
            if match := _FAILED_FILE.match(line.strip()):
                unreadable.setdefault(_relative(match.group(1), root), match.group(2))
        if done.code not in (0, 1, 2) or (done.code == 2 and not unreadable):
            raise JobError(f"ruff {args[0]} failed: {last_line(done.err or done.out)}")
        return text

    batches = list(_batches(ok))
    if note is not None:
        calls = f"{len(ok)} files, {len(batches)} call(s) each"
        await _say(note, f"$ ruff check --fix-only, format, check ({calls})")
    fixes = reformatted = 0
    for batch in batches:
        text = await ruff_run(["check", "--fix-only", "--exit-zero"], batch)
        fixes += fixed_count(text)
    for batch in batches:
        text = await ruff_run(["format"], batch)
        reformatted += sum(int(m) for m in _REFORMATTED.findall(text))
    remaining: list[str] = []
    total = 0
    prefix = _real(root)
    for batch in batches:
        got, count = await _diagnostics(jailer.wrap([*argv0, "check", "--no-fix", "--exit-zero",
            "--output-format", "json-lines", *common, "--", *batch], jail), env, root, prefix,
            timeout_s, unreadable, MAX_REMAINING - len(remaining))  # fmt: skip
        remaining += got
        total += count
    done = await run_bounded(
        jailer.wrap(["git", "diff", "--name-only", "-z"], jail),
        env=dict(git_env), cwd=root, timeout_s=60, max_bytes=16 * 1024 * 1024,
    )  # fmt: skip
    if done.code != 0:
        raise JobError(f"git diff failed: {last_line(done.err)}")
    wanted = set(ok)
    fixed = tuple(sorted(name for name in done.out.split("\0") if name in wanted))
    skipped += [(name, f"ruff cannot read it: {why}") for name, why in sorted(unreadable.items())]
    return Fix(fixed, fixes, reformatted, tuple(remaining), total, tuple(skipped))


def _batches(files: Sequence[str]) -> Iterator[list[str]]:
    batch: list[str] = []
    size = 0
    for name in files:
        if batch and (len(batch) >= BATCH_FILES or size + len(name) + 1 > BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(name)
        size += len(name.encode()) + 1
    if batch:
        yield batch


def _relative(name: str, root: Path) -> str:
    for base in (_real(root), str(root)):
        if name.startswith(base.rstrip("/") + "/"):
            return name[len(base.rstrip("/")) + 1 :]
    return name


async def _diagnostics(
    argv: list[str],
    env: Mapping[str, str],
    root: Path,
    prefix: str,
    timeout_s: float,
    unreadable: dict[str, str],
    keep: int,
) -> tuple[list[str], int]:
    """ruff's remaining errors, read as they stream: the first `keep` as lines for the reply,
    all of them counted, none held beyond that."""
    kept: list[str] = []
    count = 0

    async def on_line(line: str) -> None:
        nonlocal count
        if not line.startswith("{"):
            return
        try:
            row = json.loads(line)
        except ValueError:
            return
        if not isinstance(row, dict):
            return
        name = _relative(str(row.get("filename", "")), root)
        if row.get("code") == "E902":  # an I/O error: the file is skipped, not an error in it
            unreadable.setdefault(name, " ".join(str(row.get("message", "")).split()))
            return
        count += 1
        if len(kept) < keep:
            kept.append(diagnostic_line(row, prefix))

    code = await stream_process(argv, env=env, cwd=root, on_line=on_line, timeout_s=timeout_s)
    if code not in (0, 1):
        raise JobError(f"ruff check failed with exit code {code}")
    return kept, count


def _real(path: Path) -> str:
    """ruff's JSON names files by their real path; the reply names them from the root."""
    return str(path.resolve())


async def _say(sink: LogSink, line: str) -> None:
    result = sink(line)
    if asyncio.iscoroutine(result):
        await result


def write_config(settings: Mapping[str, Any], folder: Path) -> Path:
    path = folder / "ruff.toml"
    path.write_text(toml_text(settings))
    return path


@dataclass(frozen=True)
class StyleRunnerConfig:
    work_dir: Path | None = None
    git_timeout_s: float = 600.0
    #: the ruff command; None is the executable of the bot's own environment
    ruff: tuple[str, ...] | None = None


class StyleRunner:
    """Runs style jobs here: git and ruff only, many at once (they are short and CPU-light)."""

    name = "style"

    def __init__(
        self, config: StyleRunnerConfig | None = None, confinement: Confinement | None = None
    ) -> None:
        self.config = config or StyleRunnerConfig()
        self.confinement = confinement or detect()
        self._tasks: dict[str, asyncio.Task[StyleResult]] = {}
        self._cancelled: set[str] = set()

    def refusal(self) -> str | None:
        """Why no job can start here (the host cannot confine ruff), for the PR's reply."""
        return self.confinement.refusal

    async def cancel(self, job_id: str) -> bool:
        """Stops the job's git or ruff (their process groups are killed) and waits for it."""
        task = self._tasks.get(job_id)
        if task is None:
            return False
        self._cancelled.add(job_id)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return True

    async def run(self, request: StyleRequest, on_log: LogSink | None = None) -> JobOutcome:  # type: ignore[override]
        """Never raises for the job's own failures: they are the outcome's `error` result."""
        started = time.monotonic()
        log = BoundedLog(1024 * 1024, on_log)
        timings: dict[str, float] = {}
        task = asyncio.create_task(self._execute(request, log, timings))
        self._tasks[request.job_id] = task
        try:
            result = await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.cancelled() and request.job_id in self._cancelled:
                return JobOutcome("cancelled", "cancelled", log=log.text())
            # The caller itself was cancelled (the bot stops): end the job, then go, so the
            # job system puts it back in the queue.
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            raise
        finally:
            self._tasks.pop(request.job_id, None)
            self._cancelled.discard(request.job_id)
        result = dataclasses.replace(result, timings=dict(timings))
        state = "error" if result.outcome in ("error", "head_moved") else "passed"
        return JobOutcome(
            state,  # type: ignore[arg-type]
            reason=log.redact(result.reason),
            duration_s=round(time.monotonic() - started, 3),
            log=log.text(),
            log_tail=log.tail(40),
            tested_sha=result.commit_sha or request.head_sha,
            timings=dict(timings),
            result=result.to_json(),
        )

    async def _execute(
        self, request: StyleRequest, log: BoundedLog, timings: dict[str, float]
    ) -> StyleResult:
        if self.config.work_dir is not None:
            self.config.work_dir.mkdir(parents=True, exist_ok=True)
        if refusal := self.refusal():
            await log.note(f"error: {refusal}")
            return StyleResult("error", reason=refusal)
        workdir = make_workdir(self.config.work_dir, "bot-style-")
        try:
            return await self._in_workdir(request, log, timings, workdir)
        except (JobError, ConfigProblem, ConfinementUnavailable) as exc:
            await log.note(f"error: {exc}")
            return StyleResult("error", reason=log.redact(str(exc)))
        except Exception as exc:
            reason = log.redact(f"the style runner failed: {type(exc).__name__}: {exc}")
            await log.note(reason)
            return StyleResult("error", reason=reason)
        finally:
            remove_tree(workdir)

    async def _in_workdir(
        self, request: StyleRequest, log: BoundedLog, timings: dict[str, float], workdir: Path
    ) -> StyleResult:
        for url in (request.head_clone_url, request.base_clone_url):
            check_url(url)
        home, src = workdir / "home", workdir / "src"
        home.mkdir()
        env = checkout_git_env(home)
        env.update(
            GIT_AUTHOR_NAME=request.commit_name,
            GIT_AUTHOR_EMAIL=request.commit_email,
            GIT_COMMITTER_NAME=request.commit_name,
            GIT_COMMITTER_EMAIL=request.commit_email,
        )
        token = await resolve_token(request.token) if request.token else None
        for secret in token_secrets(token):
            log.add_secret(secret)

        phase = time.monotonic()
        await self._git(["init", "--quiet", "--template=", str(src)], workdir, env)
        await log.note(f"fetching {request.head_sha[:12]} from {request.head_clone_url}")
        await self._fetch(src, env, request.head_clone_url, request.head_sha, "head", token)
        await log.note(f"fetching the base {request.base_sha[:12]} for its ruff configuration")
        await self._fetch(src, env, request.base_clone_url, request.base_sha, "base", token)
        found = {}
        for name in CONFIG_FILES:
            code, text, _ = await run_captured(
                ["git", "cat-file", "blob", f"{request.base_sha}:{name}"],
                env=env, cwd=src, timeout_s=60,
            )  # fmt: skip
            if code == 0:
                found[name] = text
        config = write_config(ruff_settings(found), workdir)
        self.confinement.hand_over(workdir)
        await self._tree_git(["checkout", "--quiet", "--detach", request.head_sha], src, env)
        timings["fetch"] = round(time.monotonic() - phase, 3)

        phase = time.monotonic()
        fix = await fix_files(
            src, request.files, config, home, git_env=env, note=log.write,
            ruff=self.config.ruff, timeout_s=request.timeout_s, confinement=self.confinement,
            writable=[workdir],
        )  # fmt: skip
        timings["ruff"] = round(time.monotonic() - phase, 3)
        base = {
            "files_fixed": fix.files_fixed,
            "fixes": fix.fixes,
            "reformatted": fix.reformatted,
            "remaining": fix.remaining,
            "remaining_total": fix.remaining_total,
            "skipped": fix.skipped,
        }
        if not fix.files_fixed:
            await log.note("nothing to fix")
            return StyleResult("nothing", **base)  # type: ignore[arg-type]
        if not request.push:
            done = await run_bounded(
                self.confinement.wrap(["git", "diff", "--no-color"], self._tree_jail(src)),
                env=env, cwd=src, timeout_s=60, max_bytes=16 * 1024 * 1024,
            )  # fmt: skip
            if done.code != 0:
                raise JobError(f"git diff failed: {last_line(done.err)}")
            text, cut = cut_diff(done.out)
            await log.note(f"suggesting fixes for {len(fix.files_fixed)} files (no push)")
            return StyleResult(
                "suggested",
                suggestion=text,
                suggestion_cut_files=cut,
                **base,  # type: ignore[arg-type]
            )

        phase = time.monotonic()
        # `-u`: the files ruff changed, however many (no argument list to overflow)
        await self._tree_git(["add", "-u"], src, env)
        await self._tree_git(["commit", "--quiet", "--no-verify", "-m", COMMIT_MESSAGE], src, env)
        code, out, _ = await run_captured(
            ["git", "rev-parse", "HEAD"], env=env, cwd=src, timeout_s=60
        )
        commit = out.strip()
        branch = f"refs/heads/{request.head_ref}"
        await log.note(
            f"pushing {commit[:12]} to {request.head_ref} (lease on {request.head_sha[:12]})"
        )
        code, _, err = await run_captured(
            ["git", "push", "--quiet", "--no-verify", "--porcelain",
             f"--force-with-lease={branch}:{request.head_sha}",
             "--", request.head_clone_url, f"HEAD:{branch}"],
            env=fetch_env(env, request.head_clone_url, token), cwd=src,
            timeout_s=self.config.git_timeout_s,
        )  # fmt: skip
        timings["commit_push"] = round(time.monotonic() - phase, 3)
        if code != 0:
            tip = await self._tip(src, env, request, token)
            if tip != request.head_sha:
                moved = f"{request.head_ref} is now at {tip[:12]}" if tip else "branch deleted"
                await log.note(f"head moved: {moved}; the lease refused the push")
                return StyleResult("head_moved", reason=moved, **base)  # type: ignore[arg-type]
            raise JobError(f"the push was refused: {log.redact(last_line(err))}")
        await log.note(f"pushed {commit[:12]}")
        return StyleResult("pushed", commit_sha=commit, **base)  # type: ignore[arg-type]

    async def _fetch(
        self, src: Path, env: dict[str, str], url: str, sha: str, name: str, token: str | None
    ) -> None:
        code, _, err = await run_captured(
            ["git", "fetch", "--no-tags", "--no-recurse-submodules", "--quiet", "--depth=1",
             "--", url, f"+{sha}:refs/bot/{name}"],
            env=fetch_env(env, url, token), cwd=src, timeout_s=self.config.git_timeout_s,
        )  # fmt: skip
        if code != 0:
            raise JobError(f"could not fetch the {name} commit {sha[:12]}: {last_line(err)}")

    async def _tip(
        self, src: Path, env: dict[str, str], request: StyleRequest, token: str | None
    ) -> str | None:
        code, out, _ = await run_captured(
            ["git", "ls-remote", "--", request.head_clone_url, f"refs/heads/{request.head_ref}"],
            env=fetch_env(env, request.head_clone_url, token), cwd=src, timeout_s=60,
        )  # fmt: skip
        if code != 0:
            return request.head_sha  # cannot tell: report the refusal as it is
        return out.split("\t", 1)[0].strip() or None

    def _tree_jail(self, src: Path) -> Jail:
        return Jail(cwd=src, writable=[src.parent], network=False)

    async def _tree_git(self, args: list[str], src: Path, env: dict[str, str]) -> None:
        """git on the PR's tree (checkout, diff, add, commit): confined, network off."""
        done = await run_bounded(
            self.confinement.wrap(["git", *args], self._tree_jail(src)),
            env=env, cwd=src, timeout_s=self.config.git_timeout_s,
        )  # fmt: skip
        if done.code != 0:
            raise JobError(f"git {args[0]} failed: {last_line(done.err)}")

    async def _git(self, args: list[str], cwd: Path, env: dict[str, str]) -> None:
        code, _, err = await run_captured(
            ["git", *args], env=env, cwd=cwd, timeout_s=self.config.git_timeout_s
        )
        if code != 0:
            raise JobError(f"git {args[0]} failed: {last_line(err)}")


__all__ = [
    "COMMIT_MESSAGE",
    "Fix",
    "StyleRequest",
    "StyleRunner",
    "StyleRunnerConfig",
    "fix_files",
    "ruff_env",
    "style_request",
    "usable_files",
    "write_config",
]


def runners(settings: Settings) -> dict[str, StyleRunner]:
    """The runner this feature's jobs need: git and the bot's own ruff in clean folders."""
    return {"style": StyleRunner(StyleRunnerConfig(work_dir=Path(settings.job_work_dir)))}
