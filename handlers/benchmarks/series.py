"""A benchmark job's measurements as the feature reads them: every repeat's metrics file, read
again from the job's stored result, whichever runner handed it back."""

from __future__ import annotations

from bot.kit.context import JobRecord
from handlers.benchmarks.compare import Series, collect
from handlers.benchmarks.metrics import MetricsError, read_metrics

__all__ = ["measured_series"]


def measured_series(job: JobRecord) -> dict[str, Series] | str:
    """A job's metrics per name, every repeat's value in order; or why there are none. The files
    come from the benchmarked code: they are read again here, never trusted for their shape."""
    if job.state != "passed":
        return f"the job ended {job.state}: {job.reason or 'no reason given'}"
    outputs = (job.result or {}).get("outputs")
    if not isinstance(outputs, list) or not outputs:
        return "the job handed back no metrics files"
    runs = []
    for number, text in enumerate(outputs, 1):
        if not isinstance(text, str):
            return f"repeat {number}'s metrics file is not text"
        try:
            runs.append(read_metrics(text.encode("utf-8")))
        except MetricsError as exc:
            return f"repeat {number}: {exc}"
    try:
        return collect(runs)
    except MetricsError as exc:
        return str(exc)
