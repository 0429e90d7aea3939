"""pytest's JUnit XML turned into per-test results a comment, a run page and a re-run can use.

The report is written by the test process, which runs a pull request's code, so it is read as
untrusted input: its size is capped, only UTF-8 is read (a UTF-16 document would slip a DTD past
any byte-level check), defusedxml refuses any DTD, entity or external reference wherever it
hides, and only what a `TestResult` needs is kept while the document streams through the parser,
so memory follows the number of tests rather than the number of elements. A broken or hostile
file becomes a report with an `error`, never an exception in the job system. Async callers read
and parse through `parse_junit_file`, which does both off the event loop.
"""

from __future__ import annotations

import asyncio
import codecs
import re
import textwrap
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from defusedxml import (
    DefusedXmlException,
    DTDForbidden,
    EntitiesForbidden,
    ExternalReferenceForbidden,
)
from defusedxml.ElementTree import DefusedXMLParser

MAX_JUNIT_BYTES = 20 * 1024 * 1024
MAX_TRACEBACK_CHARS = 4000
MAX_LINE_CHARS = 500
#: how many lines of a failure's message are kept: the author's words, then pytest's assertion
MAX_SUMMARY_LINES = 12

TestOutcome = Literal["passed", "failed", "error", "skipped"]


@dataclass(frozen=True)
class TestResult:
    """One test case; `node_id` is what `pytest <node_id>` accepts to run it again."""

    __test__ = False  # not a pytest test class, whatever its name says

    node_id: str
    outcome: TestOutcome
    time_s: float = 0.0
    #: first line of the failure, error or skip message
    message: str = ""
    #: the `E` line that says what went wrong (`assert 2 == 3`), for a one-line summary
    assertion: str = ""
    #: the source line pytest marked with `>`, where it went wrong
    source: str = ""
    #: `tests/models/bert/test_x.py:12`, the innermost frame pytest reported
    location: str = ""
    #: failure text, tail kept when long
    traceback: str = ""
    #: what went wrong as pytest reports it: the message the test's author wrote first
    #: (`AssertionError: the reason`), then the rest of it and the failing line (`assert 2 == 3`)
    summary: str = ""

    @property
    def skip_reason(self) -> str:
        return self.message if self.outcome == "skipped" else ""

    @property
    def headline(self) -> str:
        """The one line every place that names a failure leads with, as pytest's short summary
        prints it: what the test's author wrote for whoever reads the failure comes before the
        `assert 2 == 3` that pytest adds. A result stored before `summary` existed falls back on
        its message, whose first line pytest writes the same way."""
        return _first_line(self.summary) or self.message or self.assertion or self.source

    @property
    def summary_lines(self) -> tuple[str, ...]:
        """The headline, then the rest of the message and the failing line, for the places
        that have room for more than one line."""
        if self.summary.strip():
            return tuple(self.summary.splitlines())
        lines = (self.headline, self.assertion)
        return tuple(dict.fromkeys(line for line in lines if line))


@dataclass(frozen=True)
class JUnitReport:
    tests: tuple[TestResult, ...] = ()
    time_s: float = 0.0
    #: why the file could not be read; the counts are then all zero
    error: str | None = None
    passed: int = field(init=False)
    failed: int = field(init=False)
    errors: int = field(init=False)
    skipped: int = field(init=False)

    def __post_init__(self) -> None:
        for name, outcome in (
            ("passed", "passed"),
            ("failed", "failed"),
            ("errors", "error"),
            ("skipped", "skipped"),
        ):
            object.__setattr__(self, name, sum(t.outcome == outcome for t in self.tests))

    @property
    def problems(self) -> tuple[TestResult, ...]:
        return tuple(t for t in self.tests if t.outcome in ("failed", "error"))


def read_junit(
    path: str | Path, *, root: str | Path | None = None, max_bytes: int = MAX_JUNIT_BYTES
) -> JUnitReport:
    """Read at most `max_bytes` so a test that floods its report cannot exhaust the bot's memory."""
    return _read_and_parse(path, root=root, limit=max_bytes)[0]


async def parse_junit_file(
    path: str | Path, *, limit: int = MAX_JUNIT_BYTES, root: str | Path | None = None
) -> tuple[JUnitReport, str | None]:
    """The report and its text (None when missing or over `limit`), for keeping with the job.

    Reading and parsing megabytes of XML takes long enough to stall every other job and webhook
    the bot serves, so both happen in a worker thread.
    """
    return await asyncio.to_thread(_read_and_parse, path, root=root, limit=limit)


def _read_and_parse(
    path: str | Path, *, root: str | Path | None, limit: int
) -> tuple[JUnitReport, str | None]:
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except FileNotFoundError:
        return JUnitReport(error="no JUnit report was written"), None
    except OSError as exc:
        return JUnitReport(error=f"JUnit report unreadable: {exc.strerror or exc}"), None
    if len(data) > limit:
        return JUnitReport(error=f"JUnit report larger than {limit} bytes; not parsed"), None
    report = parse_junit(data, root=root)
    return report, data.decode("utf-8", "replace")


def parse_junit(data: bytes | str, *, root: str | Path | None = None) -> JUnitReport:
    """`root`, the checkout, lets node ids be resolved against real files instead of guessed.

    Synchronous and CPU-bound: an async caller with more than a few kilobytes goes through
    `parse_junit_file` or a worker thread.
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if len(raw) > MAX_JUNIT_BYTES:
        return JUnitReport(error=f"JUnit report larger than {MAX_JUNIT_BYTES} bytes; not parsed")
    problem = _encoding_problem(raw)
    if problem is not None:
        return JUnitReport(error=f"JUnit report refused: {problem}; only UTF-8 is read")
    collector = _Collector(Path(root) if root is not None else None)
    # The encoding given here overrides whatever the document declares.
    parser = DefusedXMLParser(
        target=collector,
        encoding="utf-8",
        forbid_dtd=True,
        forbid_entities=True,
        forbid_external=True,
    )
    try:
        parser.feed(raw)
        parser.close()
    except DefusedXmlException as exc:
        # The exception's text carries the document's own URLs: it is not repeated.
        what = next((w for kind, w in _REFUSED if isinstance(exc, kind)), "a DTD or entities")
        return JUnitReport(error=f"JUnit report refused: it declares {what}")
    except _NotJUnit as exc:
        return JUnitReport(error=f"not a JUnit report: root element <{exc}>")
    except ET.ParseError as exc:
        return JUnitReport(error=f"malformed JUnit XML: {exc}")
    except (ValueError, LookupError) as exc:
        return JUnitReport(error=f"malformed JUnit XML: {exc}")
    if collector.top is None:
        return JUnitReport(error="malformed JUnit XML: no root element")
    tests = tuple(test for suite in collector.suites for test in suite)
    return JUnitReport(tests=tests, time_s=round(collector.time_s, 3))


_REFUSED: tuple[tuple[type[DefusedXmlException], str], ...] = (
    (DTDForbidden, "a DTD"),
    (EntitiesForbidden, "entities (in a DTD)"),
    (ExternalReferenceForbidden, "an external reference (in a DTD)"),
)
_UTF32_BOMS = (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_DECLARATION = re.compile(rb"\A(?:\xef\xbb\xbf)?<\?xml\s(.*?)\?>", re.DOTALL)
_DECLARED_ENCODING = re.compile(rb"""\bencoding\s*=\s*(?:"([^"]*)"|'([^']*)')""")


def _encoding_problem(raw: bytes) -> str | None:
    """Why `raw` is not plain UTF-8, if it is not.

    A byte-level guard sees nothing of a document in UTF-16 or UTF-32, and XML in either always
    holds NUL bytes (its markup is ASCII), which UTF-8 XML never may.
    """
    if raw.startswith(_UTF32_BOMS):
        return "it is UTF-32"
    if raw.startswith(_UTF16_BOMS):
        return "it is UTF-16"
    if b"\0" in raw:
        return "it holds NUL bytes (UTF-16 or UTF-32)"
    declaration = _DECLARATION.match(raw)
    if declaration is not None:
        declared = _DECLARED_ENCODING.search(declaration[1])
        if declared is not None:
            name = (declared[1] or declared[2] or b"").decode("ascii", "replace")
            if name.lower().replace("_", "-") not in ("utf-8", "utf8"):
                return f"it declares the encoding {name[:40]!r}"
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"it is not UTF-8 (byte {exc.start})"
    return None


class _NotJUnit(Exception):
    """The root element is not a JUnit one; raised from the parser's callbacks to stop early."""


@dataclass
class _Detail:
    """A `<failure>`, `<error>` or `<skipped>`: its attributes and the text before any child."""

    attrib: Mapping[str, str]
    chunks: list[str] = field(default_factory=list)
    closed: bool = False

    @property
    def text(self) -> str:
        return "".join(self.chunks)


@dataclass
class _Case:
    attrib: Mapping[str, str]
    suite: int
    details: dict[str, _Detail] = field(default_factory=dict)


class _Collector:
    """The parser's target: keeps the counted suites' times and their test cases, nothing else.

    Which elements count is what the tree walk this replaces did: a root `<testsuite>` alone,
    or every `<testsuite>` at any depth under `<testsuites>`; a suite's direct `<testcase>`
    children; a case's first direct `<failure>`, `<error>` and `<skipped>`.
    """

    def __init__(self, root: Path | None) -> None:
        self.root = root
        self.top: str | None = None
        self.suites: list[list[TestResult]] = []
        self.time_s = 0.0
        #: one entry per open element: the suite index, the case, the detail, or None
        self._open: list[int | _Case | _Detail | None] = []

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        parent = self._open[-1] if self._open else None
        if isinstance(parent, _Detail):
            parent.closed = True
        frame: int | _Case | _Detail | None = None
        if self.top is None:
            if tag not in ("testsuites", "testsuite"):
                raise _NotJUnit(tag[:100])
            self.top = tag
            if tag == "testsuite":
                frame = self._suite(attrib)
        elif tag == "testsuite" and self.top == "testsuites":
            frame = self._suite(attrib)
        elif tag == "testcase" and isinstance(parent, int):
            frame = _Case(attrib, parent)
        elif (
            isinstance(parent, _Case)
            and tag in ("failure", "error", "skipped")
            and tag not in parent.details
        ):
            frame = parent.details[tag] = _Detail(attrib)
        self._open.append(frame)

    def end(self, tag: str) -> None:
        frame = self._open.pop()
        if isinstance(frame, _Case):
            self.suites[frame.suite].append(_case(frame, self.root))

    def data(self, text: str) -> None:
        current = self._open[-1] if self._open else None
        if isinstance(current, _Detail) and not current.closed:
            current.chunks.append(text)

    def close(self) -> None:
        return None

    def _suite(self, attrib: Mapping[str, str]) -> int:
        self.time_s += _float(attrib.get("time"))
        self.suites.append([])
        return len(self.suites) - 1


def failed_node_ids(report: JUnitReport) -> list[str]:
    """What `run-slow --failed` passes back to pytest: failures and errors, each once."""
    return list(dict.fromkeys(test.node_id for test in report.problems))


def _case(case: _Case, root: Path | None) -> TestResult:
    classname = case.attrib.get("classname") or ""
    name = case.attrib.get("name") or ""
    node_id = node_id_for(classname, name, root)
    time_s = _float(case.attrib.get("time"))
    failure = case.details.get("failure")
    error = case.details.get("error")
    skipped = case.details.get("skipped")
    if failure is not None or error is not None:
        element = failure if failure is not None else error
        assert element is not None
        text = element.text
        details = _details(text)
        message = element.attrib.get("message") or ""
        return TestResult(
            node_id=node_id,
            outcome="failed" if failure is not None else "error",
            time_s=time_s,
            message=_first_line(message or details["assertion"]),
            traceback=_tail(text, MAX_TRACEBACK_CHARS),
            summary=_summary(message, text, wrapped=failure is None),
            **details,
        )
    if skipped is not None:
        reason = skipped.attrib.get("message") or _skip_text(skipped.text)
        return TestResult(node_id, "skipped", time_s, message=_first_line(reason))
    return TestResult(node_id, "passed", time_s)


def node_id_for(classname: str, name: str, root: Path | None = None) -> str:
    """Undo pytest's `a/b/test_x.py::C::t` → classname `a.b.test_x.C`, name `t` mangling.

    The split between module and class is ambiguous in the dotted form; a checkout resolves it
    by looking for the file, and without one the last `test_*`/`*_test` part is taken as the
    module, as pytest's default `python_files` would have it.
    """
    if not classname:
        # A collection error: `name` is the dotted module (or a path pytest could not import).
        if "/" in name or name.endswith(".py"):
            return name
        return "/".join(name.split(".")) + ".py" if name else name
    parts = classname.split(".")
    split = _module_end(parts, root)
    module = "/".join(parts[:split]) + ".py"
    return "::".join([module, *parts[split:], name])


def _module_end(parts: list[str], root: Path | None) -> int:
    if root is not None:
        for end in range(len(parts), 0, -1):
            if (root.joinpath(*parts[: end - 1]) / f"{parts[end - 1]}.py").is_file():
                return end
    for end in range(len(parts), 0, -1):
        part = parts[end - 1]
        if part.startswith("test_") or part.endswith("_test") or part == "test":
            return end
    # No test-like module name: treat trailing capitalised parts as classes.
    end = len(parts)
    while end > 1 and parts[end - 1][:1].isupper():
        end -= 1
    return end


_LOCATION = re.compile(r"^(?P<where>[^\s:][^:]*\.py:\d+):(?: (?P<what>\S.*))?$")


def _details(text: str) -> dict[str, str]:
    lines = text.splitlines()
    e_lines = [ln[1:].strip() for ln in lines if ln.startswith("E ") or ln == "E"]
    e_lines = [ln for ln in e_lines if ln]
    assertion = next(
        (ln for ln in e_lines if ln.startswith("assert ")), e_lines[0] if e_lines else ""
    )
    source = ""
    first_e = next((i for i, ln in enumerate(lines) if ln.startswith("E ")), len(lines))
    for ln in reversed(lines[:first_e]):
        if ln.startswith(">"):
            source = ln[1:].strip()
            break
    location = ""
    for ln in reversed(lines):
        match = _LOCATION.match(ln.strip())
        if match:
            location = match["where"]
            break
    return {
        "assertion": _first_line(assertion),
        "source": _first_line(source),
        "location": location[:MAX_LINE_CHARS],
    }


def _summary(message: str, text: str, *, wrapped: bool) -> str:
    """What pytest's short summary says of a failure, every line of it, bounded.

    A `<failure>`'s message is pytest's own crash message, the author's words first. An
    `<error>`'s message wraps it (`failed on setup with "..."`, `collection failure`), so there,
    as where there is no message, the last `E` block of the text stands in: the innermost
    exception, the one pytest's summary names.
    """
    if message.strip() and not wrapped:
        lines = message.splitlines()
    else:
        lines = _last_e_block(text) or message.splitlines()
    kept = [_clip_line(ln.rstrip()) for ln in lines if ln.strip()]
    if len(kept) > MAX_SUMMARY_LINES:
        kept = [*kept[: MAX_SUMMARY_LINES - 1], "…"]
    return "\n".join(kept)


def _last_e_block(text: str) -> list[str]:
    lines = text.splitlines()
    end = next((i for i in range(len(lines) - 1, -1, -1) if _is_e_line(lines[i])), None)
    if end is None:
        return []
    start = end
    while start > 0 and _is_e_line(lines[start - 1]):
        start -= 1
    block = textwrap.dedent("\n".join(ln[1:] for ln in lines[start : end + 1]))
    return block.splitlines()


def _is_e_line(line: str) -> bool:
    return line.startswith("E ") or line == "E"


def _skip_text(text: str) -> str:
    # pytest writes "path:line: reason" as the body when there is no message attribute.
    match = re.match(r"^\S+\.py:\d+: (.*)$", text.strip(), re.DOTALL)
    return match[1] if match else text


def _first_line(text: str) -> str:
    return _clip_line(text.strip().splitlines()[0] if text.strip() else "")


def _clip_line(line: str) -> str:
    return line if len(line) <= MAX_LINE_CHARS else line[: MAX_LINE_CHARS - 1] + "…"


def _tail(text: str, limit: int) -> str:
    return text if len(text) <= limit else "…" + text[-(limit - 1) :]


def _float(value: str | None) -> float:
    try:
        return float(value) if value else 0.0
    except ValueError:
        return 0.0


def summarize(tests: Iterable[TestResult], limit: int = 5) -> list[str]:
    """Short lines for a comment: the first failures with where and what, most useful first."""
    out = []
    for test in tests:
        if test.outcome not in ("failed", "error"):
            continue
        what = test.headline
        out.append(f"{test.node_id}: {what}" if what else test.node_id)
        if len(out) == limit:
            break
    return out
