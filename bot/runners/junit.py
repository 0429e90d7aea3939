"""pytest's JUnit XML turned into per-test results a comment, a run page and a re-run can use.

The report is written by the test process, which runs a pull request's code, so it is read as
untrusted input: its size is capped, a document carrying a DTD is refused (pytest never writes
one, and entity tricks need one), and a broken file becomes a report with an `error` rather than
an exception in the job system.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

MAX_JUNIT_BYTES = 20 * 1024 * 1024
MAX_TRACEBACK_CHARS = 4000
MAX_LINE_CHARS = 500

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

    @property
    def skip_reason(self) -> str:
        return self.message if self.outcome == "skipped" else ""


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
    try:
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except FileNotFoundError:
        return JUnitReport(error="no JUnit report was written")
    except OSError as exc:
        return JUnitReport(error=f"JUnit report unreadable: {exc.strerror or exc}")
    if len(data) > max_bytes:
        return JUnitReport(error=f"JUnit report larger than {max_bytes} bytes; not parsed")
    return parse_junit(data, root=root)


def parse_junit(data: bytes | str, *, root: str | Path | None = None) -> JUnitReport:
    """`root`, the checkout, lets node ids be resolved against real files instead of guessed."""
    raw = data.encode() if isinstance(data, str) else data
    if len(raw) > MAX_JUNIT_BYTES:
        return JUnitReport(error=f"JUnit report larger than {MAX_JUNIT_BYTES} bytes; not parsed")
    head = raw[:4096].upper()
    if b"<!DOCTYPE" in head or b"<!ENTITY" in raw.upper():
        return JUnitReport(error="JUnit report refused: it declares a DTD or entities")
    try:
        # Size-capped and DTD-free above, so the stdlib parser is safe for this input.
        top = ET.fromstring(raw)  # noqa: S314
    except ET.ParseError as exc:
        return JUnitReport(error=f"malformed JUnit XML: {exc}")
    if top.tag not in ("testsuites", "testsuite"):
        return JUnitReport(error=f"not a JUnit report: root element <{top.tag}>")
    suites = [top] if top.tag == "testsuite" else list(top.iter("testsuite"))
    root_path = Path(root) if root is not None else None
    tests: list[TestResult] = []
    total_time = 0.0
    for suite in suites:
        total_time += _float(suite.get("time"))
        tests.extend(_case(case, root_path) for case in suite.findall("testcase"))
    return JUnitReport(tests=tuple(tests), time_s=round(total_time, 3))


def failed_node_ids(report: JUnitReport) -> list[str]:
    """What `run-slow --failed` passes back to pytest: failures and errors, each once."""
    return list(dict.fromkeys(test.node_id for test in report.problems))


def _case(case: ET.Element, root: Path | None) -> TestResult:
    classname = case.get("classname") or ""
    name = case.get("name") or ""
    node_id = node_id_for(classname, name, root)
    time_s = _float(case.get("time"))
    failure = case.find("failure")
    error = case.find("error")
    skipped = case.find("skipped")
    if failure is not None or error is not None:
        element = failure if failure is not None else error
        assert element is not None
        text = element.text or ""
        details = _details(text)
        return TestResult(
            node_id=node_id,
            outcome="failed" if failure is not None else "error",
            time_s=time_s,
            message=_first_line(element.get("message") or details["assertion"]),
            traceback=_tail(text, MAX_TRACEBACK_CHARS),
            **details,
        )
    if skipped is not None:
        reason = skipped.get("message") or _skip_text(skipped.text or "")
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


def _skip_text(text: str) -> str:
    # pytest writes "path:line: reason" as the body when there is no message attribute.
    match = re.match(r"^\S+\.py:\d+: (.*)$", text.strip(), re.DOTALL)
    return match[1] if match else text


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
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
        what = test.assertion or test.message
        out.append(f"{test.node_id}: {what}" if what else test.node_id)
        if len(out) == limit:
            break
    return out
