"""A comparison for people (a Markdown table, or aligned text for a terminal) and for scripts
(`--json`). Pure.

Each side shows `median ± spread` (the spread: the largest distance of a repeat from the
median, so the interval holds every repeat) and how many repeats it rests on: a reader judges
the verdict against the same noise it was decided on. A missing side says `missing`, never 0.
Metric names and units come from the benchmark command, that is from the code under review,
so in Markdown they pass through `bot.kit.markdown` and stay inert text.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from bot.kit.markdown import escape_text, one_line, table_cell
from handlers.benchmarks.compare import Comparison, median, spread
from handlers.benchmarks.metrics import MAX_NAME_CHARS

HEADERS = ("metric", "unit", "base", "head", "ratio", "verdict")
MISSING = "missing"


def to_json(rows: Sequence[Comparison]) -> list[dict[str, Any]]:
    """One object per metric, exactly `{"metric", "unit", "base", "head", "ratio",
    "verdict"}`: the values of every repeat, and `ratio` null where there is none."""
    return [
        {
            "metric": row.metric,
            "unit": row.unit,
            "base": list(row.base),
            "head": list(row.head),
            "ratio": row.ratio,
            "verdict": row.verdict,
        }
        for row in rows
    ]


def markdown_table(rows: Sequence[Comparison]) -> str:
    """The table a comment or a check run shows."""
    lines = [
        "| " + " | ".join(HEADERS) + " |",
        "| :-- | :-- | --: | --: | --: | :-- |",
    ]
    for row in rows:
        cells = [_markdown(row.metric), _markdown(row.unit), *_figures(row)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def text_table(rows: Sequence[Comparison]) -> str:
    """The same table for a terminal: aligned columns, names on one line each."""
    table = [list(HEADERS)]
    for row in rows:
        table.append([one_line(row.metric, MAX_NAME_CHARS), one_line(row.unit), *_figures(row)])
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADERS))]
    right = {2, 3, 4}  # the figures line up on their last digit
    out = []
    for line in table:
        cells = [
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(line, widths, strict=True))
        ]
        out.append("  ".join(cells).rstrip())
    return "\n".join(out) + "\n"


def side(values: Sequence[float]) -> str:
    """`12.3 ± 0.4 (n=5)`; `12.3 (n=1)` for one repeat; `missing` for none."""
    if not values:
        return MISSING
    middle = median(values)
    if len(values) == 1:
        return f"{_number(middle)} (n=1)"
    return f"{_number(middle)} ± {_number(spread(values))} (n={len(values)})"


def _figures(row: Comparison) -> list[str]:
    ratio = "-" if row.ratio is None else f"{row.ratio:.3f}"
    return [side(row.base), side(row.head), ratio, row.verdict]


def _number(value: float) -> str:
    """Four significant digits: more would be noise, fewer would hide a 5% change."""
    if not math.isfinite(value):
        return str(value)
    return f"{value:.4g}"


def _markdown(text: str) -> str:
    return table_cell(escape_text(one_line(text, MAX_NAME_CHARS)))
