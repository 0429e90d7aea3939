"""What a run's GitHub check run says: its status and conclusion, the result table, the failing
tests as annotations at their file and line, and the "Re-run failed" button. Pure data.

The check run sits beside the `pytest/custom-tests` commit status, which stays as it is (branch
protection names it); the check run adds what a status cannot carry: a table, the failures
where they happened in the diff, and a button. The report plan (`report.py`) turns the run's
rows into a :class:`CheckRunPlan` with :func:`plan_check_run`, and the handler sends it; the
table is `render.result_table`, the comment's own. Nothing here does I/O.

Choices, so the reader meets them once:

- The check run is named :data:`CHECK_NAME` (``slow tests``), apart from the status context, so
  the two are never confused in branch protection's list of checks.
- Conclusions: a finished run is ``success`` or ``failure`` exactly as its commit status is
  (every job passed or was skipped, else failure); a superseded run is ``cancelled`` (the newer
  run's check run, on the same name, is the one GitHub shows); a run that could not run is
  ``failure``: nothing was tested, and ``action_required`` would promise a fix on the run page
  that the page cannot offer. The checks of a finished run's failures (`verdicts.py`) add their
  labels to the summary and the title, never to the conclusion: a failure that turned out flaky
  still failed.
- Annotations only for a finished run's failing and erroring tests, at most
  :data:`MAX_ANNOTATIONS` a run, sent :data:`ANNOTATIONS_PER_REQUEST` a request (GitHub's limit);
  the summary says how many were left out, and the run's page lists them all.
- Paths are the repository's own: pytest writes them relative to the checkout's root, and a
  frame outside it (an absolute path, a `../` into a virtual environment) is never one of the
  repository's files, so the innermost frame inside it is taken, else the test's file, line 1.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from bot.kit.markdown import clip, one_line
from handlers.slow_ci.plan import (
    JobResult,
    JobSpec,
    Phase,
    Selection,
    overall_state,
    result_rows,
)
from handlers.slow_ci.render import (
    dropped_lines,
    failure_lines,
    phase_line,
    result_table,
    scope_line,
    selection_lines,
    verification_lines,
    verification_title,
)
from handlers.slow_ci.verdicts import Verification

__all__ = [
    "ANNOTATIONS_PER_REQUEST",
    "CHECK_NAME",
    "MAX_ANNOTATIONS",
    "RERUN_FAILED",
    "RERUN_FAILED_ACTION",
    "Annotation",
    "CheckRunPlan",
    "ReportedTest",
    "failure_location",
    "plan_check_run",
    "repo_path",
]

CHECK_NAME = "slow tests"
#: The button's identifier, as GitHub sends it back in `requested_action.identifier`.
RERUN_FAILED = "rerun_failed"
RERUN_FAILED_ACTION: Mapping[str, str] = {
    "label": "Re-run failed",
    "description": "Run again what failed, on this commit",
    "identifier": RERUN_FAILED,
}
#: GitHub refuses a request with more annotations than this.
ANNOTATIONS_PER_REQUEST = 50
#: Annotations a run sends at most: past a few hundred, a list on the run's page reads better
#: than a diff covered in red, and each fifty cost a request.
MAX_ANNOTATIONS = 500
#: GitHub's limits: an output's summary and text, an annotation's title, a button's label,
#: description and identifier.
OUTPUT_CHARS = 65535
ANNOTATION_TITLE_CHARS = 255
ACTION_LIMITS = {"label": 20, "description": 40, "identifier": 20}
#: Ours, well within GitHub's 64 KB: an annotation is read in a diff, the traceback's tail is
#: what says how it ended, and the run's page has the rest.
ANNOTATION_MESSAGE_CHARS = 4000
RAW_DETAILS_CHARS = 8000
#: An output title is a line in the pull request's list of checks.
TITLE_CHARS = 200
#: A line number past this is not a line of a source file (a garbled report).
MAX_LINE = 10_000_000

CheckStatus = Literal["queued", "in_progress", "completed"]
Conclusion = Literal["success", "failure", "cancelled"]

#: `path.py:12: in test_x` or `path.py:12: AssertionError`, as pytest writes a frame; a path
#: with a space is not taken for one (an `E` line quoting `x.py:3` would look like a frame).
_FRAME = re.compile(r"(?P<path>[^\s:]+\.py):(?P<line>\d+)(?::.*)?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")
_DRIVE = re.compile(r"[A-Za-z]:")

# --------------------------------------------------------------------------- annotations


class ReportedTest(Protocol):
    """One test of a job's report (the runner's `TestResult`), as far as an annotation reads
    it: the planner names what it reads rather than reaching into the runners."""

    @property
    def node_id(self) -> str: ...
    @property
    def outcome(self) -> str: ...
    @property
    def location(self) -> str: ...
    @property
    def traceback(self) -> str: ...
    @property
    def summary_lines(self) -> Sequence[str]: ...


@dataclass(frozen=True, slots=True)
class Annotation:
    """One failing test, pinned to the line where it failed."""

    path: str
    line: int
    title: str
    message: str
    raw_details: str = ""

    def as_json(self) -> dict[str, Any]:
        shape: dict[str, Any] = {
            "path": self.path,
            "start_line": self.line,
            "end_line": self.line,
            "annotation_level": "failure",
            "title": self.title,
            "message": self.message,
        }
        if self.raw_details:
            shape["raw_details"] = self.raw_details
        return shape


def repo_path(text: str) -> str | None:
    """``text`` as a path inside the repository, or None when it cannot be one.

    An absolute path, a drive letter, a `..` step or a control character is refused rather than
    guessed at: GitHub would show an annotation on a path it cannot find as a stray note.
    """
    path = text.strip()
    if not path or _CONTROL.search(path) or "\\" in path:
        return None
    if path.startswith(("/", "~")) or _DRIVE.match(path):
        return None
    if ".." in path.split("/"):
        return None
    path = posixpath.normpath(path)
    if path in (".", "") or path.startswith("/"):
        return None
    return path


def _frame(text: str) -> tuple[str, int] | None:
    match = _FRAME.fullmatch(text.strip())
    if match is None:
        return None
    path = repo_path(match["path"])
    line = int(match["line"])
    if path is None or line > MAX_LINE:
        return None
    return path, max(line, 1)


def failure_location(test: ReportedTest) -> tuple[str, int] | None:
    """Where a failing test's annotation goes: (path from the repository root, line).

    The innermost frame pytest reported (`location`) when it is the repository's; else the
    innermost frame of the traceback that is; else the test's file at line 1; None when the
    node id names no file either (a collection error named by module).
    """
    if test.location and (found := _frame(test.location)):
        return found
    for text in reversed(test.traceback.splitlines()):
        if found := _frame(text):
            return found
    file = test.node_id.split("::", 1)[0]
    path = repo_path(file)
    if path is not None and path.endswith(".py"):
        return path, 1
    return None


def _annotation(test: ReportedTest, machine_type: str, place: tuple[str, int]) -> Annotation:
    # The author's message leads, as in the comment and on the run page; the rest follows.
    what = "\n".join(test.summary_lines) or ("error" if test.outcome == "error" else "failed")
    details = test.traceback.strip("\n")
    if len(details) > RAW_DETAILS_CHARS:
        details = "…" + details[-(RAW_DETAILS_CHARS - 1) :]
    return Annotation(
        path=place[0],
        line=place[1],
        title=clip(one_line(test.node_id), ANNOTATION_TITLE_CHARS),
        message=clip(f"{what}\n\non {machine_type}", ANNOTATION_MESSAGE_CHARS),
        raw_details=details,
    )


@dataclass(frozen=True, slots=True)
class _Annotated:
    annotations: tuple[Annotation, ...] = ()
    failing: int = 0  # failing and erroring tests in the reports
    left_out: int = 0  # past the cap
    unplaced: int = 0  # no file to put them on
    cap: int = MAX_ANNOTATIONS


def _annotate(
    results: Sequence[JobResult], tests: Mapping[JobSpec, Sequence[ReportedTest]], limit: int
) -> _Annotated:
    out: list[Annotation] = []
    failing = left_out = unplaced = 0
    for result in results:
        for test in tests.get(result.job, ()):
            if test.outcome not in ("failed", "error"):
                continue
            failing += 1
            place = failure_location(test)
            if place is None:
                unplaced += 1
            elif len(out) >= limit:
                left_out += 1
            else:
                out.append(_annotation(test, result.job.machine_type, place))
    return _Annotated(tuple(out), failing, left_out, unplaced, limit)


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True, slots=True)
class CheckRunPlan:
    """What the check run must say now; the handler sends it as one or more requests.

    ``annotations`` are all of the run's, in order; a request carries at most
    :data:`ANNOTATIONS_PER_REQUEST` of them and GitHub adds each request's to the earlier ones,
    so the handler sends the ones not yet sent (:meth:`batches`) and remembers how many went.
    """

    status: CheckStatus
    conclusion: Conclusion | None
    title: str
    summary: str
    text: str = ""
    annotations: tuple[Annotation, ...] = ()
    left_out: int = 0
    actions: tuple[Mapping[str, str], ...] = ()

    def __post_init__(self) -> None:
        if (self.status == "completed") != (self.conclusion is not None):
            raise ValueError("a conclusion comes with the status completed, and only with it")

    def output(self, annotations: Sequence[Annotation] = ()) -> dict[str, Any]:
        output: dict[str, Any] = {"title": self.title, "summary": self.summary}
        if self.text:
            output["text"] = self.text
        if annotations:
            if len(annotations) > ANNOTATIONS_PER_REQUEST:
                raise ValueError(
                    f"{len(annotations)} annotations in one request; GitHub takes"
                    f" {ANNOTATIONS_PER_REQUEST}"
                )
            output["annotations"] = [a.as_json() for a in annotations]
        return output

    def batches(self, sent: int = 0) -> list[tuple[Annotation, ...]]:
        """The annotations after the first ``sent``, a request's worth each."""
        if sent < 0:
            raise ValueError("sent counts annotations already sent: it cannot be negative")
        rest = self.annotations[sent:]
        step = ANNOTATIONS_PER_REQUEST
        return [rest[i : i + step] for i in range(0, len(rest), step)]

    def body(self, annotations: Sequence[Annotation] = ()) -> dict[str, Any]:
        """The state of the check run, for its creation or an update: status, conclusion,
        output and buttons (an empty list takes a button away)."""
        body: dict[str, Any] = {"status": self.status, "output": self.output(annotations)}
        if self.conclusion is not None:
            body["conclusion"] = self.conclusion
        body["actions"] = [dict(action) for action in self.actions]
        return body

    def create_body(
        self,
        *,
        head_sha: str,
        external_id: str,
        details_url: str,
        annotations: Sequence[Annotation] = (),
    ) -> dict[str, Any]:
        """`POST /check-runs`: the state plus what names the check run for good. GitHub takes
        only an absolute `details_url`; a bot with no public URL links nowhere."""
        body = {"name": CHECK_NAME, "head_sha": head_sha, "external_id": external_id}
        if details_url.startswith(("http://", "https://")):
            body["details_url"] = details_url
        return {**body, **self.body(annotations)}


def plan_check_run(
    *,
    phase: Phase,
    selection: Selection,
    run_url: str,
    jobs: Sequence[JobSpec] = (),
    results: Sequence[JobResult] = (),
    tests: Mapping[JobSpec, Sequence[ReportedTest]] | None = None,
    sha: str | None = None,
    failed_only: bool = False,
    queue_position: int | None = None,
    superseded_by: str | None = None,
    error: str | None = None,
    max_annotations: int = MAX_ANNOTATIONS,
    verification: Verification | None = None,
    check_urls: Mapping[int, str] | None = None,
) -> CheckRunPlan:
    """The check run of a run in ``phase``, from the same facts as its comment.

    ``tests`` are the per-test results of the jobs (only failing and erroring tests are read),
    used for a finished run's annotations; ``results`` win over ``jobs`` for the table, as in
    the comment. A finished run's ``verification`` goes into its summary, each test's label
    beside it, and its title; the conclusion stays the run's own.
    """
    if phase == "error" and not error:
        raise ValueError("an error check run needs the reason")
    if max_annotations < 0:
        raise ValueError("max_annotations cannot be negative")
    rows = result_rows(jobs, results)
    annotated = _Annotated()
    if phase == "finished":
        annotated = _annotate(rows, tests or {}, max_annotations)
    status, conclusion = _state(phase, rows)
    state = overall_state(rows)
    actions = (RERUN_FAILED_ACTION,) if phase == "finished" and state == "failure" else ()
    summary = _summary(phase, rows, run_url, sha, failed_only, queue_position, superseded_by, error)
    title = _title(phase, rows, queue_position, error)
    if phase == "finished" and verification is not None:
        summary += "\n" + "\n".join(verification_lines(verification, check_urls or {})) + "\n"
        if extra := verification_title(verification):
            title = clip(f"{title} · {extra}", TITLE_CHARS)
    summary += _annotation_note(annotated)
    return CheckRunPlan(
        status=status,
        conclusion=conclusion,
        title=title,
        summary=_fit(summary),
        text=_fit(_text_part(selection, rows, phase)),
        annotations=annotated.annotations,
        left_out=annotated.left_out,
        actions=actions,
    )


def _state(phase: Phase, rows: Sequence[JobResult]) -> tuple[CheckStatus, Conclusion | None]:
    if phase in ("started", "queued"):
        return "queued", None
    if phase == "running":
        return "in_progress", None
    if phase == "superseded":
        return "completed", "cancelled"
    if phase == "error":
        return "completed", "failure"
    return "completed", "success" if overall_state(rows) == "success" else "failure"


def _title(
    phase: Phase, rows: Sequence[JobResult], queue_position: int | None, error: str | None
) -> str:
    if phase in ("started", "queued"):
        return f"Queued, position {queue_position}" if queue_position else "Queued"
    if phase == "running":
        return f"Running: {sum(r.done for r in rows)} of {len(rows)} jobs done"
    if phase == "superseded":
        return "Superseded by a newer run-slow"
    if phase == "error":
        return clip(f"Could not run: {one_line(error or '')}", TITLE_CHARS)
    word = "Passed" if overall_state(rows) == "success" else "Failed"
    return f"{word}: {_test_tally(rows)}"


def _test_tally(rows: Sequence[JobResult]) -> str:
    """Tests, not jobs: what the title line in the pull request's checks says."""
    counts = (
        ("failed", sum(r.failed for r in rows)),
        ("errors", sum(r.errors for r in rows)),
        ("passed", sum(r.passed for r in rows)),
        ("skipped", sum(r.skipped for r in rows)),
    )
    parts = [f"{n} {word if n != 1 or word != 'errors' else 'error'}" for word, n in counts if n]
    return ", ".join(parts) if parts else "no tests ran"


def _summary(
    phase: Phase,
    rows: Sequence[JobResult],
    run_url: str,
    sha: str | None,
    failed_only: bool,
    queue_position: int | None,
    superseded_by: str | None,
    error: str | None,
) -> str:
    out = [
        phase_line(phase, rows, queue_position, None, superseded_by, error),
        "",
        scope_line(sha, failed_only, run_url),
    ]
    if rows and phase != "error":
        out += ["", *result_table(rows)]
    return "\n".join(out) + "\n"


def _annotation_note(annotated: _Annotated) -> str:
    if not annotated.failing:
        return ""
    shown = len(annotated.annotations)
    tests = "test" if annotated.failing == 1 else "tests"
    note = f"\n{annotated.failing} failing {tests}: {shown} annotated at the line of the failure"
    if annotated.left_out:
        note += f"; {annotated.left_out} left out, past this bot's cap of {annotated.cap}"
    if annotated.unplaced:
        note += f"; {annotated.unplaced} with no file of this repository to point at"
    return note + ". The run's page lists every one.\n"


def _text_part(selection: Selection, rows: Sequence[JobResult], phase: Phase) -> str:
    out = selection_lines(selection)
    if phase in ("finished", "superseded"):
        out += failure_lines(rows)
    out += dropped_lines(selection.dropped)
    return "\n".join(out).rstrip() + "\n"


def _fit(markdown: str) -> str:
    """Within GitHub's limit, cut at a line end so no table row is left half written."""
    if len(markdown) <= OUTPUT_CHARS:
        return markdown
    note = "\n\n(cut here: the run's page has everything)\n"
    head = markdown[: OUTPUT_CHARS - len(note)]
    return head[: head.rfind("\n") + 1 or len(head)] + note
