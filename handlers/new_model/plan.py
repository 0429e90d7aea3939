"""Which models a push to the default branch adds, and the Slack message for each: pure.

A model is new when its `modeling_<name>.py` file appears in `<models_dir>/<name>/` between the
push's endpoints. Comparing endpoints, not walking commits, is what makes renames and
delete-then-re-add in one push come out right: a renamed model was there before under another
name, and a re-added one was there before under the same name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.clients.slack import escape_mrkdwn
from handlers.new_model.config import NewModelConfig

#: GitHub's `before` when a push creates the branch: there is nothing to compare with.
NULL_SHA = "0" * 40
#: Slack refuses a header or a section text longer than these.
HEADER_LIMIT = 150
SECTION_LIMIT = 3000


@dataclass(frozen=True)
class FileChange:
    filename: str
    status: str  # added | removed | modified | renamed | copied | changed
    previous_filename: str | None = None


@dataclass(frozen=True)
class NewModel:
    name: str
    path: str
    commit: str  # the commit that added the modeling file (the push's head when unknown)


@dataclass(frozen=True)
class Rename:
    old: str
    new: str


@dataclass
class NewModelPlan:
    added: list[NewModel] = field(default_factory=list)
    renamed: list[Rename] = field(default_factory=list)


def modeling_pattern(models_dir: str) -> re.Pattern[str]:
    return re.compile(
        rf"^{re.escape(models_dir.strip('/'))}/(?P<name>[A-Za-z0-9_]+)/modeling_(?P=name)\.py$"
    )


def model_of(path: str, pattern: re.Pattern[str]) -> str | None:
    match = pattern.match(path)
    return match.group("name") if match else None


def net_changes(commits: Sequence[Sequence[FileChange]]) -> list[FileChange]:
    """Folds per-commit changes (oldest first) into the change between the endpoints.

    Used when a push touches more files than the compare API lists. A path added then removed
    nets to nothing; removed then added nets to a modification (it existed before).
    """
    existed_before: dict[str, bool] = {}
    exists_now: dict[str, bool] = {}
    renamed_from: dict[str, str] = {}
    for changes in commits:
        for change in changes:
            moves = [(change.previous_filename, False)] if change.status == "renamed" else []
            moves.append((change.filename, change.status != "removed"))
            for path, present in moves:
                if path is None:
                    continue
                if path not in existed_before:
                    # First sight: a file added or renamed-to did not exist before the push.
                    existed_before[path] = not (
                        present and change.status in ("added", "renamed", "copied")
                    )
                exists_now[path] = present
            if change.status == "renamed" and change.previous_filename:
                origin = renamed_from.pop(change.previous_filename, change.previous_filename)
                renamed_from[change.filename] = origin
    result: list[FileChange] = []
    for path, present in exists_now.items():
        before = existed_before[path]
        origin = renamed_from.get(path)
        if present and not before:
            if origin and existed_before.get(origin) and not exists_now.get(origin):
                result.append(FileChange(path, "renamed", origin))
            else:
                result.append(FileChange(path, "added"))
        elif before and not present:
            if not any(c.previous_filename == path for c in result):
                result.append(FileChange(path, "removed"))
        elif before and present:
            result.append(FileChange(path, "modified"))
    # A rename recorded above also removed its origin: drop the separate "removed" entry.
    origins = {c.previous_filename for c in result if c.status == "renamed"}
    return [c for c in result if not (c.status == "removed" and c.filename in origins)]


def plan_new_models(
    changes: Iterable[FileChange],
    config: NewModelConfig,
    *,
    added_in: Mapping[str, str] | None = None,
    head: str,
) -> NewModelPlan:
    """Which models the changes add (and which they only rename)."""
    pattern = modeling_pattern(config.models_dir)
    plan = NewModelPlan()
    seen: set[str] = set()
    for change in changes:
        name = model_of(change.filename, pattern)
        if name is None:
            continue
        if change.status == "renamed" and change.previous_filename:
            old = model_of(change.previous_filename, pattern)
            if old is not None and old != name:
                plan.renamed.append(Rename(old, name))
                continue
        if change.status in ("added", "copied") and name not in seen:
            seen.add(name)
            commit = (added_in or {}).get(change.filename, head)
            plan.added.append(NewModel(name, change.filename, commit))
    return plan


def attribution(commits: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Path -> the first commit of a push payload that added it (payloads list 20 commits)."""
    found: dict[str, str] = {}
    for commit in commits:
        for path in commit.get("added") or ():
            found.setdefault(path, commit.get("id", ""))
    return found


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class MergedPull:
    number: int
    title: str
    author: str
    url: str


def build_message(
    *,
    model: NewModel,
    repo_url: str,
    channel: str,
    mention: Sequence[str],
    pull: MergedPull | None,
) -> dict[str, Any]:
    """A valid Block Kit message plus the plain-text fallback notifications show."""
    commit_url = f"{repo_url}/commit/{model.commit}"
    name = escape_mrkdwn(model.name)
    lines = [f"*<{commit_url}|New model: {name}>*"]
    if pull is not None:
        title = escape_mrkdwn(pull.title)
        author = escape_mrkdwn(pull.author)
        lines.append(f"Merged in <{pull.url}|#{pull.number} {title}> by {author}")
    if mention:
        lines.append(" ".join(f"<@{escape_mrkdwn(member)}>" for member in mention))
    lines.append(f"commit SHA: `{model.commit}`")
    section = _clip("\n".join(lines), SECTION_LIMIT)
    # What notifications show; Slack reads `<!channel>` or `<@U123>` there as in the blocks.
    fallback = f"New model: {name}"
    if pull is not None:
        fallback += f" (#{pull.number} {escape_mrkdwn(pull.title)} by {escape_mrkdwn(pull.author)})"
    return {
        "channel": channel,
        "text": _clip(fallback, SECTION_LIMIT),
        "unfurl_links": False,
        "blocks": [
            {
                "type": "header",
                "text": {"type": "plain_text", "text": _clip("New model!", HEADER_LIMIT)},
            },
            {"type": "section", "text": {"type": "mrkdwn", "text": section}},
        ],
    }


def is_default_branch_push(payload: Mapping[str, Any]) -> bool:
    repository = payload.get("repository") or {}
    default = repository.get("default_branch") or repository.get("master_branch")
    return (
        bool(default)
        and payload.get("ref") == f"refs/heads/{default}"
        and not payload.get("deleted")
        and payload.get("after") not in (None, NULL_SHA)
    )
