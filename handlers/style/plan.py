"""`/style`'s decisions as data: whether it runs, which files, which ruff configuration, what the
reply says.

Pure functions only, so the server, `bot style` and the tests share one answer: whether a
request becomes a run (`plan_run`), the files a PR may have fixed (Python, not deleted, within
the configured paths), the base branch's ruff settings with everything that could point ruff
elsewhere removed, how ruff's output reads as a count and a list of remaining errors, and the
comment at each step of the job.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from bot.kit.command_job import CommandFacts, NewRun, Refusal, admit
from bot.kit.markdown import code_fence, code_span, escape_text, one_line
from handlers.style.config import StyleConfig

#: Files ruff lints and formats; notebooks are left out (ruff would rewrite their JSON).
PYTHON_SUFFIXES = (".py", ".pyi")
#: GitHub's file statuses whose new content is in the PR's head.
KEPT_STATUSES = frozenset({"added", "modified", "renamed", "changed", "copied"})
#: ruff's own configuration files, by its precedence in one folder.
CONFIG_FILES = (".ruff.toml", "ruff.toml", "pyproject.toml")
#: Keys of a ruff configuration that make ruff read another file or write outside the checkout.
UNSAFE_KEYS = frozenset({"extend", "cache-dir"})
MAX_REMAINING = 30
COMMIT_MESSAGE = "Apply style fixes"
#: A suggestion bigger than this is cut at a file boundary: a comment holds 65536 characters.
MAX_SUGGESTION_CHARS = 50_000

KIND = "style"
#: `/style` runs in the bot's own process: its runner is its own, never a GPU machine's.
RUNNER = "style"

#: `applied` is `bot style` without `--commit`: the fixes are left in the working tree.
Outcome = Literal["pushed", "applied", "nothing", "suggested", "head_moved", "error"]


@dataclass(frozen=True)
class FileChoice:
    """The files `/style` touches, and those it leaves alone with the reason."""

    files: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...] = ()


def choose_files(
    changed: Iterable[Mapping[str, Any]], paths: Sequence[str] = ("",), max_files: int = 1000
) -> FileChoice:
    """The PR's Python files to fix, from its files list (`filename`, `status`)."""
    chosen: list[str] = []
    skipped: list[tuple[str, str]] = []
    prefixes = [p.strip("/") for p in paths] or [""]
    for entry in changed:
        name = str(entry.get("filename", ""))
        status = str(entry.get("status", "modified"))
        if not name.endswith(PYTHON_SUFFIXES):
            continue
        if status not in KEPT_STATUSES:
            skipped.append((name, f"{status} in this pull request"))
        elif not _safe_path(name):
            skipped.append((name, "not a plain relative path"))
        elif not any(not p or name == p or name.startswith(p + "/") for p in prefixes):
            skipped.append((name, "outside the configured paths"))
        elif len(chosen) >= max_files:
            skipped.append((name, f"over the limit of {max_files} files"))
        else:
            chosen.append(name)
    return FileChoice(tuple(dict.fromkeys(chosen)), tuple(skipped))


def _safe_path(name: str) -> bool:
    parts = name.split("/")
    return (
        bool(name)
        and not name.startswith(("/", "-"))
        and "\\" not in name
        and not any(ch in name for ch in "\0\n\r")
        and all(part not in ("", ".", "..", ".git") for part in parts)
    )


# ---------------------------------------------------------------------- configuration


class ConfigProblem(ValueError):
    """The base branch's ruff configuration cannot be read; the job stops with this reason."""


def ruff_settings(found: Mapping[str, str]) -> dict[str, Any]:
    """The ruff settings of the base branch, from its root configuration files' text.

    `found` maps the names in `CONFIG_FILES` that exist at the base commit to their text. ruff's
    own precedence picks one; a `pyproject.toml` without `[tool.ruff]` means ruff's defaults.
    `extend` (another file, perhaps one the PR adds) and `cache-dir` are dropped.
    """
    for name in CONFIG_FILES:
        if name not in found:
            continue
        try:
            data = tomllib.loads(found[name])
        except (tomllib.TOMLDecodeError, ValueError, RecursionError) as exc:
            raise ConfigProblem(f"the base branch's {name} is not valid TOML: {exc}") from None
        if name == "pyproject.toml":
            tool = data.get("tool")
            data = tool.get("ruff") if isinstance(tool, dict) else None
            if not isinstance(data, dict):
                continue
        return {k: v for k, v in data.items() if k not in UNSAFE_KEYS}
    return {}


def toml_text(settings: Mapping[str, Any]) -> str:
    """Settings written as a `ruff.toml` (inline tables; JSON strings are TOML strings)."""
    return "".join(f"{json.dumps(str(k))} = {_toml_value(v)}\n" for k, v in settings.items())


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in value.items())
        return "{" + items + "}"
    raise ConfigProblem(f"a ruff setting of type {type(value).__name__} is not supported")


# ---------------------------------------------------------------------- ruff's answers

_FOUND = re.compile(r"\((\d+) fixed|^Fixed (\d+) errors?", re.M)


def fixed_count(check_output: str) -> int:
    """How many violations `ruff check --fix` (or `--fix-only`) fixed, from its summary lines
    (one per call, when the files went to ruff in batches)."""
    return sum(int(a or b) for a, b in _FOUND.findall(check_output))


def remaining_errors(json_text: str, root: str) -> tuple[str, ...]:
    """`file:line code message` for each diagnostic of `ruff check --output-format json`."""
    try:
        rows = json.loads(json_text or "[]")
    except ValueError:
        return ()
    return tuple(diagnostic_line(row, root) for row in rows if isinstance(row, dict))


def diagnostic_line(row: Mapping[str, Any], root: str) -> str:
    """One ruff diagnostic as the reply lists it, named from the checkout's root."""
    prefix = root.rstrip("/") + "/"
    name = str(row.get("filename", ""))
    name = name[len(prefix) :] if name.startswith(prefix) else name
    line = (row.get("location") or {}).get("row", 0)
    code = row.get("code") or "invalid-syntax"
    message = " ".join(str(row.get("message", "")).split())
    return f"{name}:{line} {code} {message}"


def cut_diff(diff: str, limit: int = MAX_SUGGESTION_CHARS) -> tuple[str, int]:
    """The diff whole when small, else its first files that fit; and how many files were cut."""
    if len(diff) <= limit:
        return diff, 0
    parts = re.split(r"(?m)^(?=diff --git )", diff)
    kept, size = [], 0
    for part in parts:
        if size + len(part) > limit:
            break
        kept.append(part)
        size += len(part)
    files = sum(1 for p in parts if p.startswith("diff --git "))
    shown = sum(1 for p in kept if p.startswith("diff --git "))
    if not shown:  # one huge file: its head is still a useful suggestion
        return diff[:limit].rsplit("\n", 1)[0] + "\n", files - 1
    return "".join(kept), files - shown


# ---------------------------------------------------------------------- the result


@dataclass(frozen=True)
class StyleResult:
    """What one `/style` job did: the data the reply, the CLI and the tests read."""

    outcome: Outcome
    files_fixed: tuple[str, ...] = ()
    fixes: int = 0
    reformatted: int = 0
    commit_sha: str | None = None
    remaining: tuple[str, ...] = ()
    remaining_total: int = 0
    suggestion: str = ""
    suggestion_cut_files: int = 0
    skipped: tuple[tuple[str, str], ...] = ()
    reason: str = ""
    timings: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StyleResult:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for key in ("files_fixed", "remaining"):
            known[key] = tuple(known.get(key, ()))
        known["skipped"] = tuple(tuple(pair) for pair in known.get("skipped", ()))
        return cls(**known)


def summary(result: StyleResult, commit_url: str | None = None) -> str:
    """The result in Markdown: the reply's body and `bot style`'s output."""
    lines: list[str] = []
    n = len(result.files_fixed)
    files = f"{n} file{'s' if n != 1 else ''}"
    counts = f"{result.fixes} lint fix{'es' if result.fixes != 1 else ''}"
    counts += f", {result.reformatted} reformatted"
    if result.outcome == "pushed":
        link = f"[`{(result.commit_sha or '')[:12]}`]({commit_url})" if commit_url else ""
        link = link or f"`{(result.commit_sha or '')[:12]}`"
        lines.append(f"Style fixes have been applied to {files} ({counts}) in {link}.")
    elif result.outcome == "applied":
        lines.append(f"Style fixes applied to {files} ({counts}); not committed.")
    elif result.outcome == "nothing" and result.remaining_total:
        lines.append(
            f"Nothing ruff can fix on its own, but {result.remaining_total} error(s) need a"
            " person (below)."
        )
    elif result.outcome == "nothing":
        lines.append("Nothing to fix: the changed Python files follow the base branch's style.")
    elif result.outcome == "suggested":
        lines.append(
            f"Style fixes for {files} ({counts}). This pull request does not allow edits from"
            " maintainers, so nothing was pushed; apply the diff below (`git apply`)."
        )
    elif result.outcome == "head_moved":
        lines.append(
            f"The branch moved while the fixes were made ({result.reason}): nothing was pushed"
            " and nothing was overwritten. Run `/style` again on the new head."
        )
    else:
        lines.append(f"`/style` failed: {escape_text(result.reason)}")
    # Names, ruff's messages and the diff are the PR's text: spans and fences longer than any
    # backticks in them, so none can close its quote and mention people or embed images.
    if result.files_fixed and result.outcome in ("pushed", "applied", "suggested", "head_moved"):
        lines.append("")
        lines.extend(f"- {code_span(one_line(name))}" for name in result.files_fixed)
    if result.skipped:
        lines += ["", f"Left alone ({len(result.skipped)}):"]
        shown = result.skipped[:MAX_REMAINING]
        lines += [f"- {code_span(one_line(n))}: {escape_text(why)}" for n, why in shown]
        if len(result.skipped) > len(shown):
            lines.append(f"… and {len(result.skipped) - len(shown)} more.")
    if result.remaining:
        more = result.remaining_total - len(result.remaining)
        text = "\n".join(one_line(line) for line in result.remaining)
        fence = code_fence(text)
        lines += ["", f"ruff cannot fix {result.remaining_total} error(s):", "", fence]
        lines += [text, fence]
        if more > 0:
            lines.append(f"… and {more} more.")
    if result.suggestion:
        cut = result.suggestion_cut_files
        note = f" ({cut} more file(s) cut: run `bot style` locally)" if cut else ""
        diff = result.suggestion.rstrip("\n")
        fence = code_fence(diff)
        lines += ["", f"<details><summary>Suggested diff{note}</summary>", "", f"{fence}diff"]
        lines += [diff, fence, "", "</details>"]
    return "\n".join(lines)


def render_comment(
    *, marker: str, phase: str, result: StyleResult | None, commit_url: str | None = None
) -> str:
    """The one reply comment, at each step: queued, running, then the result."""
    if phase == "queued":
        body = "`/style` is queued: ruff will fix the changed Python files with the base config."
    elif phase == "running":
        body = "`/style` is running: fixing the changed Python files with the base config."
    elif result is None:
        body = "`/style` ended without a result."
    else:
        body = summary(result, commit_url)
    return f"{body}\n\n{marker}"


def not_authorised_reply(login: str, min_permission: str) -> str:
    return f"@{login}: `/style` runs only for people with `{min_permission}` permission here."


CLOSED_REPLY = "This pull request is closed: `/style` does nothing."
NO_FILES_REPLY = "Nothing to fix: this pull request changes no Python files `/style` looks at."
HEAD_GONE_REPLY = "The head repository of this pull request is gone: there is nothing to push to."


# ---------------------------------------------------------------------- the request


@dataclass(frozen=True)
class StyleFacts:
    """What `plan_run` reads: the request (the comment that asked, when), the repository's
    `[style]`, and what every command reads first (`CommandFacts`)."""

    repo: str
    number: int
    login: str
    comment_id: int
    config: StyleConfig
    command: CommandFacts
    installation_id: int | None
    now: float


def plan_run(facts: StyleFacts) -> Refusal | NewRun:
    """The one reply, or the run: pinned to the head and base seen now, on the chosen files.

    Refused, in this order: a person below `min_permission`, a closed pull request, a head
    repository that is gone (nowhere to push), no Python file to fix, a runner that cannot run
    here.
    """
    config, pull = facts.config, facts.command.pull
    refusal = admit(
        facts.command,
        not_authorised=not_authorised_reply(facts.login, config.min_permission),
        closed=CLOSED_REPLY,
    )
    if refusal is not None:
        return refusal
    if not pull.head_clone_url:
        return Refusal(HEAD_GONE_REPLY)
    choice = choose_files(facts.command.files, config.paths, config.max_files)
    if not choice.files:
        return Refusal(NO_FILES_REPLY)
    if facts.command.runner_refusal is not None:
        return Refusal(facts.command.runner_refusal)
    spec = {
        "installation_id": facts.installation_id,
        "comments_url": pull.comments_url,
        "comment_id": facts.comment_id,
        "head_repo": pull.head_repo,
        "skipped": [list(pair) for pair in choice.skipped],
        "request": {
            "head_clone_url": pull.head_clone_url,
            "head_ref": pull.head_ref,
            "base_clone_url": pull.base_clone_url,
            "base_sha": pull.base_sha,
            "files": list(choice.files),
            "push": pull.may_push,
            "commit_name": config.commit_name,
            "commit_email": config.commit_email,
        },
    }
    return NewRun(
        kind=KIND,
        head_sha=pull.head_sha,
        key=f"style:{facts.repo}#{facts.number}:comment-{facts.comment_id}",
        jobs=(("style", {"runner": RUNNER}),),
        spec=spec,
        runner=RUNNER,
        # Its spec never said, which the pages read as private: kept so.
        private=True,
        requested_at=facts.now,
        summary=f"{len(choice.files)} files",
    )
