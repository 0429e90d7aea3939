"""What a `run-slow` asks for, what it may run, and what the pull request is told: pure data.

The handler reads GitHub (the comment, the PR's files, which test folders exist at the pinned
SHA), calls these functions and carries out what they return; the job layer turns results into
the comment, the commit status and the Slack summary with the renderers at the bottom. Nothing
here does I/O, so the command line (`bot slow-models`) and the tests see the same decisions.

The rules (SPEC §3 and issue 11):

1. A comment triggers when its first non-blank line, stripped and lower-cased, starts with
   `run-slow`, `run_slow` or `run slow` as a word of its own. Quoted text and code therefore
   never trigger: their first character is `>`, a backtick, `~` or `<` (an HTML comment), or
   the line is indented as a code block. The label variant reads the head commit message's
   first line, `[run-slow] bert, gpt2`.
2. Names are read from the first line only, so a maintainer's explanation below it is not
   taken for model names. They are lower-cased, as the reference lower-cases the whole body.
3. A name is ASCII letters, digits and `_`, not starting or ending with `_`, at most
   :data:`MAX_NAME_LENGTH` characters: what cannot be a folder name never reaches a path or
   a command line.
4. Folders: models added by the PR, then listed names, de-duplicated in that order; each kept
   when `tests/models/<name>` (a model), `tests/quantization/<name>` (a quantization) or
   `tests/<name>` (a suite) exists at the pinned SHA, and dropped with its reason otherwise.
5. One job per (folder, machine type), named as the reference names its report artifacts.
6. A comment approves the PR's head only when the bot saw the head become that commit before
   the comment was written (`comment_approval`): times GitHub and the bot write, never the
   commit's dates, which the author writes. When it cannot tell, the maintainer names the
   commit (`run-slow: bert sha=<sha>`). The label approves the head it was added on, and a
   later push only when every push since an approved head was made by someone who may
   approve (`push_approval`).
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NamedTuple

from bot.kit.markdown import (
    clip,
    code_fence,
    code_span,
    escape_text,
    format_duration,
    link_destination,
    one_line,
    short_sha,
    table_cell,
)
from bot.store.deliveries import PushRecord

__all__ = [
    "MACHINE_TYPES",
    "MAX_FAILURES_SHOWN",
    "MAX_FOLDERS",
    "MAX_NAME_LENGTH",
    "MIN_SHA_LENGTH",
    "RUN_STARTED_SENTENCE",
    "STATE_LABEL",
    "STATUS_CONTEXT",
    "Approval",
    "DroppedName",
    "Failure",
    "JobResult",
    "JobSpec",
    "MergeCommit",
    "PushApproval",
    "PushRecord",
    "Reminder",
    "SelectedFolder",
    "Selection",
    "Trigger",
    "approval_line",
    "cannot_tell_reply",
    "check_name",
    "comment_approval",
    "dropped_lines",
    "error_description",
    "estimate",
    "failure_lines",
    "folder_list",
    "models_added",
    "not_authorised_reply",
    "nothing_selectable_reply",
    "overall_state",
    "parse_commit_message_trigger",
    "parse_trigger",
    "phase_line",
    "plan_jobs",
    "plan_reminder",
    "push_approval",
    "pushes_since_approval",
    "render_comment",
    "result_rows",
    "select_folders",
    "slack_summary",
    "stale_comment_reply",
    "status_description",
    "unapproved_push_reply",
    "untraced_push_reply",
]

COMMENT_PREFIXES = ("run-slow", "run_slow", "run slow")
COMMIT_PREFIXES = ("[run-slow]", "[run_slow]", "[run slow]")
FAILED_FLAG = "--failed"
#: `run-slow: bert sha=<sha>`: the commit the comment approves, named where the bot cannot tell.
SHA_FLAG = "sha="
#: The shortest abbreviation of the head a comment may name. GitHub shows seven characters,
#: 28 bits that brute force matches in seconds: an author reading the comment could push a
#: different commit with the same seven. Twelve are 48 bits.
MIN_SHA_LENGTH = 12
#: Who commits GitHub's test merges (`merge_commit_sha`). An author cannot point GitHub's field
#: at a commit of theirs; checking the committer too costs nothing.
GITHUB_COMMITTER = "GitHub"
MACHINE_TYPES = ("single-gpu", "multi-gpu")
DEFAULT_MODELS_DIR = "model_lib/models"
STATUS_CONTEXT = "pytest/custom-tests"
PENDING_DESCRIPTION = "Slow CI job"
#: GitHub refuses a commit status description longer than this.
STATUS_DESCRIPTION_LIMIT = 140
RUN_STARTED_SENTENCE = "This comment contains run-slow, running the specified jobs:"
MAX_NAME_LENGTH = 100
#: Each folder is a job per machine type on scarce GPUs; a longer list is a typo or a paste.
MAX_FOLDERS = 32
MAX_FAILURES_SHOWN = 10
FAILURE_LINE_LIMIT = 200
#: Names shown in replies are cut and capped: the first line of a comment may be 65k characters.
SHOWN_NAME_LIMIT = 60
MAX_DROPPED_SHOWN = 20
#: The reference's reminder suggests at most this many models.
MAX_REMINDER_MODELS = 16
#: Containers of the two lists, not suites: naming one would run every model's slow tests.
RESERVED_NAMES = frozenset({"models", "quantization"})

_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_]*[A-Za-z0-9])?", re.ASCII)
_SEPARATORS = re.compile(r"[,\s]+")
_SHA = re.compile(rf"[0-9a-f]{{{MIN_SHA_LENGTH},40}}", re.ASCII)

FolderKind = Literal["model", "quantization", "suite"]
JobState = Literal[
    "queued", "running", "passed", "failed", "error", "skipped", "cancelled", "timed_out"
]
CommitState = Literal["success", "failure", "pending"]
Phase = Literal["started", "queued", "running", "finished", "superseded", "error"]
TERMINAL_STATES = frozenset({"passed", "failed", "error", "skipped", "cancelled", "timed_out"})
_STATE_ORDER = ("passed", "failed", "error", "timed_out", "cancelled", "skipped")
#: A job state as the comment's and the check run's tables show it.
STATE_LABEL = {
    "queued": "⏳ queued",
    "running": "🔄 running",
    "passed": "✅ passed",
    "failed": "❌ failed",
    "error": "⚠️ error",
    "skipped": "⏭️ skipped",
    "cancelled": "🚫 cancelled",
    "timed_out": "⏱️ timed out",
}


# --------------------------------------------------------------------------- trigger


@dataclass(frozen=True, slots=True)
class Trigger:
    """What a `run-slow` asked for, before any name is checked.

    ``names`` are the raw tokens in the order written, invalid ones included, so that the
    reply can say why each was dropped. ``failed_only``: `run-slow --failed`, re-run what
    failed in the PR's previous run. ``sha``: what followed `sha=`, the commit the comment
    approves, as written (checked by `comment_approval`).
    """

    names: tuple[str, ...] = ()
    failed_only: bool = False
    sha: str | None = None


def parse_trigger(body: str | None) -> Trigger | None:
    """The `run-slow` a comment body asks for, or None when it is not one.

    Only the first line is read for names, unlike the reference, which reads the whole body:
    `run-slow: bert` followed by a paragraph of explanation must not run a model per word.
    The prefix must stand alone (`run-slowly` is prose, not a trigger). The first `sha=` token
    names the approved commit; a second one stays among the names, to be dropped with a reason.
    """
    if not body:
        return None
    first = next((line for line in body.split("\n") if line.strip()), "")
    if _indented_code(first):
        return None
    rest = _after_prefix(first.strip().lower(), COMMENT_PREFIXES)
    if rest is None:
        return None
    tokens = list(_tokens(rest))
    failed_only = FAILED_FLAG in tokens
    tokens = [t for t in tokens if t != FAILED_FLAG]
    sha = next((t for t in tokens if t.startswith(SHA_FLAG)), None)
    if sha is not None:
        tokens.remove(sha)
        sha = sha[len(SHA_FLAG) :]
    return Trigger(tuple(tokens), failed_only, sha)


def _indented_code(line: str) -> bool:
    """Four columns of spaces or tabs before the text: Markdown shows the line as code (an
    example being quoted), not as something the commenter asks."""
    text = line.lstrip(" \t")
    return len(line[: len(line) - len(text)].expandtabs(4)) >= 4


def parse_commit_message_trigger(message: str | None) -> Trigger | None:
    """The label variant: `[run-slow] bert, gpt2` on the head commit message's first line.

    `--failed` is a comment-only flag; in a commit message it is just an invalid name.
    """
    if not message:
        return None
    first = message.strip().lower().split("\n", 1)[0].rstrip("\r")
    for prefix in COMMIT_PREFIXES:
        if first.startswith(prefix):
            return Trigger(_tokens(first[len(prefix) :]))
    return None


def _after_prefix(line: str, prefixes: Sequence[str]) -> str | None:
    for prefix in prefixes:
        if line.startswith(prefix):
            rest = line[len(prefix) :]
            if not rest or rest[0].isspace() or rest[0] in ":,":
                return rest
    return None


def _tokens(rest: str) -> tuple[str, ...]:
    return tuple(t for t in _SEPARATORS.split(rest.strip().lstrip(":")) if t)


def check_name(name: str) -> str | None:
    """None when ``name`` can name a test folder, else the reason shown to people.

    The pattern is ASCII on purpose: `str.isalnum` accepts a Cyrillic `е` in `bеrt`, which
    looks right in the comment and names a folder nobody wrote.
    """
    if not name:
        return "an empty name"
    if len(name) > MAX_NAME_LENGTH:
        return f"longer than {MAX_NAME_LENGTH} characters"
    if name.startswith("_") or name.endswith("_"):
        return "not a valid name: it starts or ends with `_`"
    if not _NAME.fullmatch(name):
        return "not a valid name: only ASCII letters, digits and `_` are allowed"
    return None


# --------------------------------------------------------------------------- approval

Verdict = Literal["approved", "stale", "unknown"]


@dataclass(frozen=True, slots=True)
class MergeCommit:
    """GitHub's test merge of a pull request (its `merge_commit_sha`), as the commits API shows
    it.

    GitHub makes it after the head moves, and writes its committer and date itself: a date
    after the head became its second parent that the author cannot write. ``ready`` is
    GitHub's `mergeable` being known: while it is null the merge is still being made, and
    `merge_commit_sha` may be an earlier head's.
    """

    sha: str
    parents: tuple[str, ...]
    committer: str
    committed_at: datetime
    ready: bool = True

    def merges(self, head_sha: str) -> bool:
        """Whether this is GitHub's finished test merge of `head_sha` into the base."""
        return (
            self.ready
            and self.committer == GITHUB_COMMITTER
            and len(self.parents) == 2
            and self.parents[1] == head_sha
        )


@dataclass(frozen=True, slots=True)
class Approval:
    """Whether a comment approves the head: `approved`, `stale` (the head is not what the
    comment approved) or `unknown` (nothing the bot trusts says which came first), and why,
    in words for the record and the reply."""

    verdict: Verdict
    reason: str

    @property
    def approved(self) -> bool:
        return self.verdict == "approved"


def comment_approval(
    *,
    head_sha: str,
    commented_at: datetime,
    pushes: Sequence[PushRecord],
    merge: MergeCommit | None = None,
    named_sha: str | None = None,
) -> Approval:
    """Whether a comment written at `commented_at` (GitHub's time) approves `head_sha`.

    The comment approves what the maintainer saw: the head must have become `head_sha` before
    the comment, by the bot's record of deliveries (`pushes`, in arrival order, timed by the
    bot's clock on receipt). A push the comment predates, even back to a commit that was the
    head before, is not approved: the latest time the head became `head_sha` counts. The
    latest record must be of `head_sha`, else the bot missed a push and cannot tell when the
    head came back. Without such a record GitHub's test merge of the head (`merge`) tells,
    when it is older than the comment. A comment naming a SHA (`named_sha`) approves that
    commit only; a record of it becoming the head after the comment still refuses it, since
    an abbreviation may match a commit made after the comment was read.

    GitHub writes times to the second and the bot's clock is taken to be GitHub's (NTP): a push
    received in the comment's second counts as after it.
    """
    at = commented_at.timestamp()
    head = f"`{short_sha(head_sha)}`"
    if any(push.sha == head_sha and push.received_at >= at for push in pushes):
        return Approval("stale", f"the head became {head} after the comment")
    if named_sha is not None:
        if not _SHA.fullmatch(named_sha):
            shown = code_span(one_line(SHA_FLAG + named_sha, SHOWN_NAME_LIMIT))
            return Approval(
                "unknown",
                f"{shown} is not at least {MIN_SHA_LENGTH} hexadecimal characters of a SHA",
            )
        if not head_sha.startswith(named_sha):
            return Approval("stale", f"the comment names `{named_sha[:12]}`, not the head {head}")
        return Approval("approved", f"the comment names the head {head}")
    if pushes and pushes[-1].sha == head_sha:
        return Approval("approved", f"the bot saw the head become {head} before the comment")
    if merge is not None and merge.merges(head_sha):
        if merge.committed_at < commented_at:
            return Approval("approved", f"GitHub's test merge of {head} predates the comment")
        return Approval("unknown", "GitHub's test merge of it is not older than the comment")
    return Approval("unknown", "it has no record of the push that made it the head")


@dataclass(frozen=True, slots=True)
class PushApproval:
    """Whether a push to a pull request with the `run-slow` label runs: `approved`, `refused`
    (with the pushers since the last approved head who may not approve, in push order) or
    `unknown` (the bot's records do not reach back to an approved head)."""

    verdict: Literal["approved", "refused", "unknown"]
    refused: tuple[str, ...] = ()


def pushes_since_approval(
    head_sha: str, pushes: Sequence[PushRecord], approved: Collection[str]
) -> tuple[PushRecord, ...] | None:
    """The pushes from the last approved head to `head_sha`, newest first; None when the
    records do not lead back to an approved head.

    Each push is followed to the head it replaced (`before`, as GitHub signed it), not by
    arrival order, which GitHub does not promise. `approved` holds the heads a maintainer
    approved (a run, the label, a comment): a SHA names its content, so a push back to an
    approved head is approved content again. An `opened` or `reopened` record ends the chain:
    what came before it is not known.
    """
    last_push_to: dict[str, PushRecord] = {}
    for push in pushes:
        last_push_to[push.sha] = push
    chain: list[PushRecord] = []
    sha = head_sha
    while sha not in approved:
        push = last_push_to.pop(sha, None)  # popped: a cycle of pushes ends here
        if push is None:
            return None
        chain.append(push)
        if push.before is None:
            return None
        sha = push.before
    return tuple(chain)


def push_approval(chain: Sequence[PushRecord] | None, may_approve: Collection[str]) -> PushApproval:
    """A push runs only when every push since the last approved head was made by someone who
    may approve runs (`may_approve`, logins): a maintainer's push on top of an outsider's
    refused one would otherwise run the outsider's code."""
    if chain is None:
        return PushApproval("unknown")
    allowed = {login.casefold() for login in may_approve}
    refused = [push.sender for push in reversed(chain) if push.sender.casefold() not in allowed]
    if refused:
        return PushApproval("refused", tuple(dict.fromkeys(refused)))
    return PushApproval("approved")


# --------------------------------------------------------------------------- selection


def models_added(files: Iterable[Any], models_dir: str = DEFAULT_MODELS_DIR) -> tuple[str, ...]:
    """Models whose `<models_dir>/<name>/modeling_<name>.py` is new in the pull request.

    ``files`` are the PR's file entries, GitHub's JSON (`filename`, `status`,
    `previous_filename`) or objects with those attributes. New means the path did not exist at
    the base: `added`, `copied`, or the target of a `renamed` (a model renamed to a new name
    has never had its slow tests run under it). Names are as in the path and checked later.
    """
    pattern = re.compile(
        rf"{re.escape(models_dir.strip('/'))}/(?P<name>[A-Za-z0-9_]+)/modeling_(?P=name)\.py",
        re.ASCII,
    )
    found: dict[str, None] = {}
    for entry in files:
        if _field(entry, "status") not in ("added", "copied", "renamed"):
            continue
        match = pattern.fullmatch(_field(entry, "filename") or "")
        if match:
            found.setdefault(match.group("name"))
    return tuple(found)


def _field(entry: Any, name: str) -> Any:
    if isinstance(entry, Mapping):
        return entry.get(name)
    return getattr(entry, name, None)


@dataclass(frozen=True, slots=True)
class SelectedFolder:
    """A test folder that will run: `models/bert`, `quantization/bnb` or `generation`."""

    name: str
    folder: str  # under tests/
    kind: FolderKind
    reason: str  # "added by this PR" | "listed"


@dataclass(frozen=True, slots=True)
class DroppedName:
    """A name that will not run, and why; listed in every reply about the run.

    ``name`` is whatever was written and is shown as code; ``reason`` is the bot's own
    markdown and is shown as is.
    """

    name: str
    reason: str


@dataclass(frozen=True, slots=True)
class Selection:
    """The folders a run tests and the names it dropped, both in the order they came."""

    folders: tuple[SelectedFolder, ...] = ()
    dropped: tuple[DroppedName, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.folders

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(f.folder for f in self.folders)

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(f.folder for f in self.folders if f.kind == "model")

    @property
    def quantizations(self) -> tuple[str, ...]:
        return tuple(f.folder for f in self.folders if f.kind == "quantization")

    @property
    def suites(self) -> tuple[str, ...]:
        return tuple(f.folder for f in self.folders if f.kind == "suite")

    def summary(self) -> str:
        """One line per folder and per dropped name, for the command line."""
        lines = [f"{f.folder} ({f.reason})" for f in self.folders]
        lines += [f"dropped {d.name!r}: {d.reason}" for d in self.dropped]
        return "\n".join(lines)


def select_folders(
    added: Iterable[str],
    listed: Iterable[str],
    test_dir_exists: Callable[[str], bool] | Collection[str],
    *,
    at: str | None = None,
    max_folders: int = MAX_FOLDERS,
) -> Selection:
    """The folders to test: models the PR adds, then listed names, each checked and found.

    ``test_dir_exists`` answers for paths from the repository root (`tests/models/bert`) at
    the pinned SHA: a predicate, or the collection of directories that exist there. ``at``
    (the pinned SHA) only makes the "not found" reason precise. A name comes once, with the
    reason it first came for; names past ``max_folders`` are dropped, not silently cut.
    """
    exists = _exists(test_dir_exists)
    kept: list[SelectedFolder] = []
    dropped: list[DroppedName] = []
    seen: set[str] = set()
    where = f" at {at[:12]}" if at else ""
    candidates = [(n, "added by this PR") for n in added] + [(n, "listed") for n in listed]
    for name, reason in candidates:
        if name in seen:
            continue
        seen.add(name)
        why_not = check_name(name)
        if why_not is None and name in RESERVED_NAMES:
            why_not = f"`{name}` would run every suite under it; list the names instead"
        if why_not is not None:
            dropped.append(DroppedName(name, why_not))
            continue
        found = _find_folder(name, exists)
        if found is None:
            dropped.append(
                DroppedName(
                    name,
                    f"no tests/models/{name}, tests/quantization/{name} or tests/{name}{where}",
                )
            )
        elif len(kept) >= max_folders:
            dropped.append(DroppedName(name, f"over the limit of {max_folders} folders a run"))
        else:
            folder, kind = found
            kept.append(SelectedFolder(name, folder, kind, reason))
    return Selection(tuple(kept), tuple(dropped))


def _exists(test_dir_exists: Callable[[str], bool] | Collection[str]) -> Callable[[str], bool]:
    if callable(test_dir_exists):
        return test_dir_exists
    if isinstance(test_dir_exists, str):
        raise TypeError("test_dir_exists is a predicate or a collection of paths, not one path")
    known = frozenset(p.rstrip("/") for p in test_dir_exists)
    return known.__contains__


def _find_folder(name: str, exists: Callable[[str], bool]) -> tuple[str, FolderKind] | None:
    for folder, kind in (
        (f"models/{name}", "model"),
        (f"quantization/{name}", "quantization"),
        (name, "suite"),
    ):
        if exists(f"tests/{folder}"):
            return folder, kind  # type: ignore[return-value]
    return None


# --------------------------------------------------------------------------- jobs


@dataclass(frozen=True, slots=True)
class JobSpec:
    """One folder on one machine type: the unit the job system queues, runs and reports."""

    folder: str
    machine_type: str

    @property
    def name(self) -> str:
        """The reference's job name, so its artifacts and ours read the same."""
        return f"{self.machine_type}_run_models_gpu_{self.folder.replace('/', '_')}"

    @property
    def report_name(self) -> str:
        return f"{self.name}_test_reports"


def plan_jobs(
    selection: Selection, machine_types: Sequence[str] = MACHINE_TYPES
) -> tuple[JobSpec, ...]:
    """Every selected folder on every machine type, folder by folder."""
    return tuple(JobSpec(f.folder, m) for f in selection.folders for m in machine_types)


def estimate(
    past_durations: Mapping[str, Sequence[float]], jobs: Sequence[JobSpec]
) -> float | None:
    """Seconds the jobs should take, from past job durations of the same folders.

    Each job counts the median of its folder's past job durations (the median, so one hung
    run does not skew it), and the jobs are summed: with no GPU, or one, they run one after
    another, and an estimate that is too long disappoints less than one that is too short.
    A folder never run before counts the median of the known folders; None when no folder of
    these jobs has run before.
    """
    medians = {
        job.folder: statistics.median(past_durations[job.folder])
        for job in jobs
        if past_durations.get(job.folder)
    }
    if not medians:
        return None
    fallback = statistics.median(medians.values())
    return float(sum(medians.get(job.folder, fallback) for job in jobs))


# --------------------------------------------------------------------------- reminder


@dataclass(frozen=True, slots=True)
class Reminder:
    """The one comment a PR touching models gets: which models, and the line to paste."""

    models: tuple[str, ...]
    line: str  # `run-slow: bert, gpt2`
    body: str


def plan_reminder(
    files: Iterable[Any],
    models_dir: str = DEFAULT_MODELS_DIR,
    *,
    draft: bool,
    test_dir_exists: Callable[[str], bool] | Collection[str] | None = None,
    marker: str = "",
) -> Reminder | None:
    """The reminder for a PR changing model code or model tests, or None.

    Drafts get none: they are not ready for a maintainer's run. Removed files do not count,
    and with ``test_dir_exists`` a model without `tests/models/<name>` is left out, since the
    line would only drop it; with no model left there is no reminder.
    """
    if draft:
        return None
    base = re.escape(models_dir.strip("/"))
    patterns = (
        re.compile(rf"{base}/(?P<name>[A-Za-z0-9_]+)/modeling_[^/]*\.py", re.ASCII),
        re.compile(r"tests/models/(?P<name>[A-Za-z0-9_]+)/test_[^/]*\.py", re.ASCII),
    )
    exists = _exists(test_dir_exists) if test_dir_exists is not None else None
    found: dict[str, None] = {}
    for entry in files:
        if _field(entry, "status") == "removed":
            continue
        path = _field(entry, "filename") or ""
        for pattern in patterns:
            match = pattern.fullmatch(path)
            if match:
                name = match.group("name").lower()
                if check_name(name) is None and (exists is None or exists(f"tests/models/{name}")):
                    found.setdefault(name)
                break
    models = tuple(found)[:MAX_REMINDER_MODELS]
    if not models:
        return None
    line = f"run-slow: {', '.join(models)}"
    more = len(found) - len(models)
    extra = f" (and {more} more; the line names the first {len(models)})" if more else ""
    body = (
        "This pull request changes the code or tests of"
        f" {_join(f'`{m}`' for m in models)}{extra}. Their slow (GPU) tests do not run on every"
        " push: once a maintainer has reviewed the latest commit, they can run them on it by"
        f" commenting:\n\n```\n{line}\n```\n"
    )
    return Reminder(models, line, _with_marker(marker, body))


# --------------------------------------------------------------------------- results


class Failure(NamedTuple):
    """A failed test and its headline (`TestResult.headline`): the message the test's author
    wrote, as pytest's short summary prints it, before pytest's own `assert 2 == 3`."""

    test: str
    message: str


@dataclass(frozen=True, slots=True)
class JobResult:
    """Where one job stands; counts are tests, from the job's JUnit report."""

    job: JobSpec
    state: JobState = "queued"
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    errors: int = 0
    duration: float | None = None  # seconds
    failures: tuple[Failure, ...] = ()
    reason: str | None = None  # why skipped, errored or timed out

    def __post_init__(self) -> None:
        if self.state not in STATE_LABEL:
            raise ValueError(f"{self.job.name}: unknown job state {self.state!r}")

    @property
    def done(self) -> bool:
        return self.state in TERMINAL_STATES


def overall_state(results: Sequence[JobResult]) -> CommitState:
    """The commit status a run's jobs add up to.

    Pending until every job has ended, and while there are no results at all: a green that
    nobody earned is the one mistake a status must not make. Then `success` when every job
    passed or was skipped (SPEC §3.7), else `failure`: an error, a timeout and a cancelled job
    are not a pass. A cancelled run is a superseded one, whose status the newer run replaces.
    The status `error` (the run could not start) is the handler's, not the jobs'.
    """
    if not results or not all(r.done for r in results):
        return "pending"
    if all(r.state in ("passed", "skipped") for r in results):
        return "success"
    return "failure"


def status_description(results: Sequence[JobResult]) -> str:
    """The commit status description: SPEC's `Slow CI job`, then job counts by result."""
    if overall_state(results) == "pending":
        return PENDING_DESCRIPTION
    return clip(f"{PENDING_DESCRIPTION}: {_tally(results)}", STATUS_DESCRIPTION_LIMIT)


def error_description(reason: str) -> str:
    """The description of an `error` status, when the run could not start."""
    return clip(
        f"{PENDING_DESCRIPTION}: could not run: {one_line(reason)}", STATUS_DESCRIPTION_LIMIT
    )


def _tally(results: Sequence[JobResult]) -> str:
    """Jobs per result, `4 passed, 1 failed`: the jobs, not the tests, as the table's rows."""
    counts = {state: sum(r.state == state for r in results) for state in _STATE_ORDER}
    parts = [f"{n} {state.replace('_', ' ')}" for state, n in counts.items() if n]
    return ", ".join(parts) if parts else "no jobs"


# --------------------------------------------------------------------------- the run's comment


def render_comment(
    *,
    marker: str,
    selection: Selection,
    run_url: str,
    phase: Phase,
    jobs: Sequence[JobSpec] = (),
    results: Sequence[JobResult] = (),
    sha: str | None = None,
    failed_only: bool = False,
    queue_position: int | None = None,
    estimate_seconds: float | None = None,
    superseded_by: str | None = None,
    error: str | None = None,
) -> str:
    """The one comment of a run, whole, for its current phase; edited in place as it moves.

    It always starts with ``marker`` (so the bot finds it again after a crash) and the
    reference's sentence, and always lists the dropped names. ``results`` win over ``jobs``
    for the table: a job with no result yet shows as queued. Everything that came from a
    person or a test (names, test ids, messages) is shown as code, so `<script>`, `|`,
    backticks and `@mentions` stay inert text.
    """
    if phase == "error" and not error:
        raise ValueError("an error comment needs the reason")
    out = [_with_marker(marker, RUN_STARTED_SENTENCE), ""]
    out.append(f"- models: {folder_list(selection.models)}")
    out.append(f"- quantizations: {folder_list(selection.quantizations)}")
    if selection.suites:
        out.append(f"- other test folders: {folder_list(selection.suites)}")
    out.append("")
    where = f"on `{short_sha(sha)}`" if sha else "on the approved commit"
    scope = "; only the jobs that failed in the previous run" if failed_only else ""
    page = link_destination(run_url)
    out += [f"Slow tests {where}{scope}. Logs and reports: [the run's page]({page}).", ""]
    out += [phase_line(phase, results, queue_position, estimate_seconds, superseded_by, error)]
    table_rows = result_rows(jobs, results)
    if table_rows and phase != "error":
        out += ["", *_table(table_rows)]
    if phase in ("finished", "superseded"):
        out += failure_lines(table_rows)
    out += dropped_lines(selection.dropped)
    return "\n".join(out).rstrip() + "\n"


def phase_line(
    phase: Phase,
    results: Sequence[JobResult],
    queue_position: int | None,
    estimate_seconds: float | None,
    superseded_by: str | None,
    error: str | None,
) -> str:
    """The one line that says where the run stands, shared by the comment and the check run."""
    took = ""
    if estimate_seconds:
        took = f" Past runs of these folders took {_about(estimate_seconds)}."
    if phase == "started":
        return f"**Starting.**{took}"
    if phase == "queued":
        position = f", position {queue_position}" if queue_position else ""
        return f"**Queued**{position}: the jobs start when the runs before them end.{took}"
    if phase == "running":
        done = sum(r.done for r in results)
        return f"**Running**: {done} of {len(results)} jobs done."
    if phase == "finished":
        state = overall_state(results)
        word = {"success": "passed", "failure": "failed", "pending": "ended"}[state]
        return f"**Finished, {word}**: {_tally(results)}."
    if phase == "superseded":
        newer = f": [the newer run]({link_destination(superseded_by)})" if superseded_by else ""
        return (
            f"**Superseded** by a newer `run-slow` on this pull request{newer}."
            " Its jobs were stopped."
        )
    return f"**Could not run**: {escape_text(one_line(error or ''))}. Nothing was tested."


def result_rows(jobs: Sequence[JobSpec], results: Sequence[JobResult]) -> list[JobResult]:
    """A row per job, in ``jobs``' order: its result, else queued; then results of other jobs."""
    by_job = {r.job: r for r in results}
    rows = [by_job.pop(job, JobResult(job)) for job in jobs]
    return rows + list(by_job.values())


def _table(rows: Sequence[JobResult]) -> list[str]:
    lines = ["| job | result | passed / failed / skipped | duration |", "|---|---|---|---|"]
    for r in rows:
        result = STATE_LABEL[r.state]
        if r.reason:
            result += f": {escape_text(one_line(r.reason, FAILURE_LINE_LIMIT))}"
        counts = "–"
        if r.state not in ("queued", "skipped") and (r.passed or r.failed or r.skipped or r.errors):
            counts = f"{r.passed} / {r.failed} / {r.skipped}"
            if r.errors:
                counts += f" (+{r.errors} error{'s' if r.errors != 1 else ''})"
        took = format_duration(r.duration) if r.duration is not None else "–"
        lines.append(
            f"| {table_cell(code_span(r.job.name))} | {table_cell(result)} | {counts} | {took} |"
        )
    return lines


def failure_lines(rows: Sequence[JobResult]) -> list[str]:
    """The first failures as one code block: nothing inside it is markdown or HTML."""
    every = [(r.job.machine_type, f) for r in rows for f in r.failures]
    if not every:
        return []
    shown = every[:MAX_FAILURES_SHOWN]
    lines = []
    for machine, failure in shown:
        lines.append(f"{one_line(failure.test, FAILURE_LINE_LIMIT)} [{machine}]")
        first = failure.message.strip().splitlines()[0] if failure.message.strip() else ""
        if first:
            lines.append(f"    {one_line(first, FAILURE_LINE_LIMIT)}")
    text = "\n".join(lines)
    fence = code_fence(text)
    title = "Failures"
    if len(every) > len(shown):
        title = f"First {len(shown)} of {len(every)} failures"
    return ["", f"{title} (all of them on the run's page):", "", fence, text, fence]


def dropped_lines(dropped: Sequence[DroppedName]) -> list[str]:
    """The `Not run:` list: each dropped name as code, with its reason; capped."""
    if not dropped:
        return []
    lines = ["", "Not run:"]
    for d in dropped[:MAX_DROPPED_SHOWN]:
        # The reasons are select_folders' own words about validated names: markdown as is.
        lines.append(f"- {code_span(one_line(d.name, SHOWN_NAME_LIMIT))}: {d.reason}")
    if len(dropped) > MAX_DROPPED_SHOWN:
        lines.append(f"- and {len(dropped) - MAX_DROPPED_SHOWN} more")
    return lines


def folder_list(folders: Sequence[str]) -> str:
    """Folders as code, comma-separated, or `none`: they passed check_name, so no escaping."""
    return ", ".join(f"`{f}`" for f in folders) if folders else "none"


# --------------------------------------------------------------------------- Slack


def slack_summary(
    *,
    repo: str,
    number: int,
    title: str,
    pull_url: str,
    run_url: str,
    results: Sequence[JobResult],
    sha: str | None = None,
) -> dict[str, Any]:
    """A short message when a run ends: the outcome, the PR, the jobs that did not pass."""
    state = overall_state(results)
    word = {"success": "passed", "failure": "failed", "pending": "ended"}[state]
    icon = {"success": "✅", "failure": "❌", "pending": "⏳"}[state]
    fallback = f"run-slow {word} on {repo}#{number}: {_tally(results)}"
    lines = [
        f"{icon} *run-slow {word}* on <{pull_url}|{_slack(repo)}#{number}"
        f" {_slack(one_line(title, 150))}>",
        f"{_tally(results)}"
        + (f" on `{short_sha(sha)}`" if sha else "")
        + f" · <{run_url}|run page>",
    ]
    bad = [r for r in results if r.state not in ("passed", "skipped")]
    lines += [_slack_job_line(r) for r in bad[:5]]
    if len(bad) > 5:
        lines.append(f"• and {len(bad) - 5} more")
    return {
        "text": fallback,
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}}],
    }


def _slack(text: str) -> str:
    """Slack's control characters; a PR title must not become a link or a mention."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_job_line(result: JobResult) -> str:
    """A job that did not pass, with its first failure's headline: the test author's message
    is what says, without opening the run page, whether the failure is the reader's to fix."""
    line = f"• `{result.job.name}`: {result.state.replace('_', ' ')}"
    if result.failures:
        first = result.failures[0]
        headline = first.message.strip().splitlines()[0] if first.message.strip() else ""
        line += f" · {_slack_code(one_line(first.test, 150))}"
        if headline:
            line += f": {_slack_code(one_line(headline, FAILURE_LINE_LIMIT))}"
    return line


def _slack_code(text: str) -> str:
    """Text from a test as an inline code span: Slack formats nothing inside one, and as a
    span cannot hold a backtick, each becomes a quote."""
    return "`" + _slack(text.replace("`", "'")) + "`"


# --------------------------------------------------------------------------- refusals


def not_authorised_reply(
    login: str, allow_list: Sequence[str], min_permission: str = "write"
) -> str:
    """Why nothing ran for ``login``. Allowed people are named as code: no ping for each."""
    names = [code_span(one_line(n.lstrip("@"), SHOWN_NAME_LIMIT)) for n in allow_list[:10]]
    if len(allow_list) > 10:
        names.append(f"{len(allow_list) - 10} more")
    listed = ""
    if names:
        listed = f"the maintainers listed in the bot's configuration ({_join(names)}) or "
    return (
        f"@{login}: slow tests run only for {listed}people with `{min_permission}` permission"
        " or higher on this repository; nothing ran."
    )


def stale_comment_reply(head_sha: str) -> str:
    """Approval is for the commit the maintainer saw; a newer one needs its own `run-slow`."""
    return (
        f"This `run-slow` is older than the pull request's latest commit `{short_sha(head_sha)}`,"
        " so nothing ran. Review that commit, then comment `run-slow` again to test it."
    )


def nothing_selectable_reply(selection: Selection, *, marker: str = "") -> str:
    """No folder to run: say why for every name, and how to write one that runs."""
    lines = [
        "Nothing to run: this `run-slow` names no model with a test folder, and the"
        " pull request adds no model. Write the names on the same line: `run-slow: bert, gpt2`."
    ]
    lines += dropped_lines(selection.dropped)
    return _with_marker(marker, "\n".join(lines) + "\n")


def unapproved_push_reply(sha: str, pusher: str, refused: Sequence[str] = ()) -> str:
    """The label approved an earlier head; a push by someone not allowed runs nothing, nor does
    a push on top of theirs (``refused``: who may not approve, when not just ``pusher``)."""
    others = [login for login in refused if login.casefold() != pusher.casefold()]
    who = f"was pushed by @{pusher}, who cannot run slow tests"
    if others:
        names = _join(f"@{login}" for login in others)
        cannot = "; none of them can" if len(others) < len(refused) else ", who cannot"
        who = f"was pushed by @{pusher} on top of pushes by {names}{cannot} run slow tests"
    return (
        f"The `run-slow` label approved an earlier commit. `{short_sha(sha)}` {who}, so nothing"
        " ran. A maintainer can approve this commit by commenting `run-slow` (or by removing and"
        " adding the label again)."
    )


def untraced_push_reply(sha: str) -> str:
    """The bot's records do not show every push since the label's approval: nothing runs."""
    return (
        "The `run-slow` label approved an earlier commit, but the bot has no record of every"
        f" push since then, so `{short_sha(sha)}` did not run. A maintainer can approve this"
        " commit by commenting `run-slow` (or by removing and adding the label again)."
    )


def approval_line(trigger: Trigger, sha: str) -> str:
    """The `run-slow` line that asks for the same run and names the commit it approves."""
    if trigger.failed_only:
        return f"run-slow {FAILED_FLAG} {SHA_FLAG}{sha}"
    names = [name for name in trigger.names if check_name(name) is None][:MAX_FOLDERS]
    if not names:
        return f"run-slow {SHA_FLAG}{sha}"
    return f"run-slow: {', '.join(names)} {SHA_FLAG}{sha}"


def cannot_tell_reply(head_sha: str, trigger: Trigger, reason: str) -> str:
    """Nothing says whether the comment came after the head: the maintainer names the commit
    they reviewed, and only that commit runs."""
    short = short_sha(head_sha)
    return (
        f"Nothing ran: the bot cannot tell whether `{short}` was this pull request's head when"
        f" this `run-slow` was written ({reason}). If `{short}` is the commit you reviewed,"
        " comment again naming it with `sha=` on the same line (its full SHA, or at least its"
        f" first {MIN_SHA_LENGTH} characters):\n\n```\n{approval_line(trigger, head_sha)}\n```"
    )


# --------------------------------------------------------------------------- text helpers


def _with_marker(marker: str, text: str) -> str:
    """The marker on a line of its own: text after `-->` on its line would be raw HTML."""
    return f"{marker}\n{text}" if marker else text


def _join(items: Iterable[str]) -> str:
    items = list(items)
    if len(items) <= 2:
        return " and ".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _about(seconds: float) -> str:
    if seconds < 60:
        return "less than a minute"
    minutes = round(seconds / 60)
    if minutes < 120:
        return f"about {minutes} min"
    return f"about {round(seconds / 3600)} h"
