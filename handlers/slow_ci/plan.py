"""What a `run-slow` asks for, what it may run, and how its jobs add up: pure data.

The handler reads GitHub (the comment, the PR's files, which test folders exist at the pinned
SHA), and `decide.py` turns what it read into a run or a refusal with these functions; what the
pull request is told is `render.py`'s. Nothing here does I/O or writes Markdown, so the command
line (`bot slow-models`) and the tests see the same decisions.

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

from bot.kit.approval import Push, PushApproval, push_approval, pushes_since_approval
from bot.kit.markdown import code_span, one_line, short_sha

__all__ = [
    "FAILED_FLAG",
    "JOB_STATES",
    "MACHINE_TYPES",
    "MAX_FOLDERS",
    "MAX_NAME_LENGTH",
    "MIN_SHA_LENGTH",
    "SHA_FLAG",
    "STATUS_CONTEXT",
    "TERMINAL_STATES",
    "Approval",
    "DroppedName",
    "Failure",
    "JobResult",
    "JobSpec",
    "MergeCommit",
    "Phase",
    "Push",
    "PushApproval",
    "Reminder",
    "SelectedFolder",
    "Selection",
    "Trigger",
    "check_name",
    "comment_approval",
    "estimate",
    "folder_candidates",
    "models_added",
    "overall_state",
    "parse_commit_message_trigger",
    "parse_trigger",
    "plan_jobs",
    "plan_reminder",
    "push_approval",
    "pushes_since_approval",
    "result_rows",
    "runnable",
    "select_folders",
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
MAX_NAME_LENGTH = 100
#: Each folder is a job per machine type on scarce GPUs; a longer list is a typo or a paste.
MAX_FOLDERS = 32
#: Names shown in replies are cut and capped: the first line of a comment may be 65k characters.
SHOWN_NAME_LIMIT = 60
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
JOB_STATES = frozenset({"queued", "running", *TERMINAL_STATES})


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
    pushes: Sequence[Push],
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

    def to_json(self) -> dict[str, Any]:
        """As a run keeps it, for its reports and a later `run-slow --failed`."""
        return {
            "folders": [
                {"name": f.name, "folder": f.folder, "kind": f.kind, "reason": f.reason}
                for f in self.folders
            ],
            "dropped": [{"name": d.name, "reason": d.reason} for d in self.dropped],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Selection:
        return cls(
            tuple(SelectedFolder(**f) for f in data.get("folders", ())),
            tuple(DroppedName(**d) for d in data.get("dropped", ())),
        )


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
        why_not = runnable(name)
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


def runnable(name: str) -> str | None:
    """None when ``name`` may name a folder to run, else the reason it is dropped: a name
    that is not one (`check_name`), or a container of other suites."""
    why_not = check_name(name)
    if why_not is None and name in RESERVED_NAMES:
        why_not = f"`{name}` would run every suite under it; list the names instead"
    return why_not


def folder_candidates(name: str) -> tuple[tuple[str, FolderKind], ...]:
    """Where ``name``'s tests may be under `tests/`, in the order of preference: a model, a
    quantization, a suite. The handler asks GitHub about these paths, in this order."""
    return ((f"models/{name}", "model"), (f"quantization/{name}", "quantization"), (name, "suite"))


def _find_folder(name: str, exists: Callable[[str], bool]) -> tuple[str, FolderKind] | None:
    for folder, kind in folder_candidates(name):
        if exists(f"tests/{folder}"):
            return folder, kind
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
    """The one comment a PR touching models gets: which models, and the line to paste.

    ``more`` counts the models left out of the line (past :data:`MAX_REMINDER_MODELS`).
    """

    models: tuple[str, ...]
    line: str  # `run-slow: bert, gpt2`
    more: int = 0


def plan_reminder(
    files: Iterable[Any],
    models_dir: str = DEFAULT_MODELS_DIR,
    *,
    draft: bool,
    test_dir_exists: Callable[[str], bool] | Collection[str] | None = None,
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
    return Reminder(models, f"run-slow: {', '.join(models)}", len(found) - len(models))


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
        if self.state not in JOB_STATES:
            raise ValueError(f"{self.job.name}: unknown job state {self.state!r}")

    @property
    def done(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def counted(self) -> bool:
        """Whether a result table counts this job's tests: it ended and its report counted
        some, whatever its state (a job skipped because all its tests were skipped shows them).
        A job that ended without a report (no GPU for it, an error before pytest wrote one, a
        cancel or a timeout first) shows none: zeros would say a report was read and held no
        test. The one rule for the comment's table and the check run's."""
        return self.done and bool(self.passed or self.failed or self.errors or self.skipped)


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


def result_rows(jobs: Sequence[JobSpec], results: Sequence[JobResult]) -> list[JobResult]:
    """A row per job, in ``jobs``' order: its result, else queued; then results of other jobs."""
    by_job = {r.job: r for r in results}
    rows = [by_job.pop(job, JobResult(job)) for job in jobs]
    return rows + list(by_job.values())
