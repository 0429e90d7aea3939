"""The comparison as people read it (Markdown and terminal tables) and as scripts read it
(`--json`): every repeat's noise shown, a missing side said, a hostile name kept inert."""

from __future__ import annotations

import json

from handlers.benchmarks.compare import (
    MISSING_IN_BASE,
    NO_CHANGE,
    SLOWER,
    UNITS_DIFFER,
    Comparison,
)
from handlers.benchmarks.render import markdown_table, side, text_table, to_json

ROWS = [
    Comparison("gpt2 forward b1x128", "ms", (40.0, 41.0, 39.5), (44.0, 45.5, 44.2), 1.1, SLOWER),
    Comparison("gpt2 generate", "tokens/s", (120.0,), (121.0,), 121 / 120, NO_CHANGE),
    Comparison("new metric", "s", (), (0.5, 0.75), None, MISSING_IN_BASE),
    Comparison("memory", "MiB vs GiB", (500.0,), (0.5,), None, UNITS_DIFFER),
]


def test_json_is_one_object_per_metric_with_exactly_the_promised_keys():
    data = json.loads(json.dumps(to_json(ROWS)))
    assert data[0] == {
        "metric": "gpt2 forward b1x128",
        "unit": "ms",
        "base": [40.0, 41.0, 39.5],
        "head": [44.0, 45.5, 44.2],
        "ratio": 1.1,
        "verdict": "slower",
    }
    assert data[2] == {
        "metric": "new metric",
        "unit": "s",
        "base": [],
        "head": [0.5, 0.75],
        "ratio": None,
        "verdict": "missing in base",
    }
    assert all(
        list(item) == ["metric", "unit", "base", "head", "ratio", "verdict"] for item in data
    )


def test_a_side_shows_its_median_the_spread_that_holds_every_repeat_and_its_count():
    assert side((40.0, 41.0, 39.5)) == "40 ± 1 (n=3)"
    assert side((120.0,)) == "120 (n=1)"
    assert side(()) == "missing"
    assert side((0.000123456, 0.000123456)) == "0.0001235 ± 0 (n=2)"


def test_the_markdown_table_has_a_row_per_metric():
    assert markdown_table(ROWS) == (
        "| metric | unit | base | head | ratio | verdict |\n"
        "| :-- | :-- | --: | --: | --: | :-- |\n"
        "| gpt2 forward b1x128 | ms | 40 ± 1 (n=3) | 44.2 ± 1.3 (n=3) | 1.100 | slower |\n"
        "| gpt2 generate | tokens/s | 120 (n=1) | 121 (n=1) | 1.008 | no change |\n"
        "| new metric | s | missing | 0.625 ± 0.125 (n=2) | - | missing in base |\n"
        "| memory | MiB vs GiB | 500 (n=1) | 0.5 (n=1) | - | units differ |\n"
    )


def test_a_hostile_name_stays_inert_text_in_one_cell():
    name = "a|b\n| x | y |\n<script>alert(1)</script> @team `code` [link](http://e)"
    table = markdown_table([Comparison(name, "ms|s", (1.0,), (1.0,), 1.0, NO_CHANGE)])
    lines = table.splitlines()
    assert len(lines) == 3
    row = lines[2]
    assert "<script>" not in row and "@team" not in row and "[link]" not in row
    assert row.count("|") - row.count("\\|") == 7  # six cells, none split by the name


def test_the_text_table_lines_up_its_columns():
    text = text_table(ROWS[:2])
    assert text.splitlines() == [
        "metric               unit              base              head  ratio  verdict",
        "gpt2 forward b1x128  ms        40 ± 1 (n=3)  44.2 ± 1.3 (n=3)  1.100  slower",
        "gpt2 generate        tokens/s     120 (n=1)         121 (n=1)  1.008  no change",
    ]
    assert "\x1b" not in text_table([Comparison("a\x1b[2J\nb", "ms", (1.0,), (), None, "x")])
