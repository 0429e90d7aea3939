"""A served repository whose benchmark reads its result from a file the test commits, as the
benchmark end-to-end tests share it: `latency.txt` holds the milliseconds every repeat reports,
and `name.txt`, where there is one, the metric's name."""

from __future__ import annotations

BENCH = """\
import json, os, sys

out = sys.argv[sys.argv.index("--json") + 1]
value = float(open("latency.txt").read())
name = open("name.txt").read().strip() if os.path.exists("name.txt") else "latency"
print("measured", value, "ms")
with open(out, "w") as f:
    json.dump([{"name": name, "unit": "ms", "value": value}], f)
"""
#: The `[benchmarks]` table running it, three repeats on one machine type.
BENCHMARKS = """\
[benchmarks]
command = ["python", "bench.py", "--json", "{output}"]
machine_types = ["single-gpu"]
repeats = 3
"""


def bench_files(config: str, **more: str) -> dict[str, str]:
    """The repository's files: the benchmark at 10 ms, `config` as its bot.toml, and `more`."""
    return {
        "README.md": "toy\n",
        "bench.py": BENCH,
        "latency.txt": "10\n",
        ".github/bot.toml": config,
        **more,
    }
