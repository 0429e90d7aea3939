"""The overview's chart: per test folder, how long its slow jobs took over the last runs and
how often they passed, as an inline SVG (no script, no image request).

Pure: records in, geometry out; the template only prints the numbers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bot.jobs.records import JobRecord

#: Layout, in SVG user units.
LABEL_W = 260
BAR_W = 10
BAR_GAP = 3
ROW_H = 28
RATE_W = 110
PAD = 6


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    height: float
    outcome: str  # passed / failed / other: the bar's colour
    title: str


@dataclass(frozen=True)
class Row:
    folder: str
    y: float
    bars: tuple[Bar, ...]
    pass_rate: float  # 0..1
    runs: int
    rate_x: float
    rate_w: float


@dataclass(frozen=True)
class Chart:
    width: float
    height: float
    rows: tuple[Row, ...]
    bars_x: float
    slowest_s: float

    @property
    def empty(self) -> bool:
        return not self.rows


def folder_chart(jobs: Iterable[JobRecord], *, runs: int = 20, folders: int = 12) -> Chart:
    """`jobs` of finished runs, any order; the newest `runs` per folder are drawn, oldest left.

    Folders with the most jobs come first, then by name; a job that never ran (cancelled,
    error before start) has no duration and is left out.
    """
    by_folder: dict[str, list[JobRecord]] = {}
    for job in jobs:
        if job.state not in ("passed", "failed", "timed_out", "error") or not job.busy_s:
            continue
        folder = str(job.spec.get("folder") or job.name)
        by_folder.setdefault(folder, []).append(job)
    chosen = sorted(by_folder.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:folders]
    series = {folder: sorted(found, key=lambda j: j.id)[-runs:] for folder, found in chosen}
    slowest = max((j.busy_s or 0.0 for found in series.values() for j in found), default=0.0)
    bars_x = LABEL_W + PAD
    bars_w = runs * (BAR_W + BAR_GAP)
    rate_x = bars_x + bars_w + PAD
    rows: list[Row] = []
    for index, (folder, found) in enumerate(series.items()):
        top = PAD + index * ROW_H
        bars = []
        for i, job in enumerate(found):
            height = max(2.0, (ROW_H - 8) * (job.busy_s or 0.0) / slowest) if slowest else 2.0
            bars.append(
                Bar(
                    x=bars_x + i * (BAR_W + BAR_GAP),
                    y=top + (ROW_H - 4) - height,
                    height=round(height, 1),
                    outcome=job.state if job.state in ("passed", "failed") else "other",
                    title=f"run {job.run_id}: {job.state}, {job.busy_s:.0f} s",
                )
            )
        passed = sum(job.state == "passed" for job in found)
        rows.append(
            Row(
                folder=folder,
                y=top,
                bars=tuple(bars),
                pass_rate=passed / len(found),
                runs=len(found),
                rate_x=rate_x,
                rate_w=RATE_W,
            )
        )
    return Chart(
        width=rate_x + RATE_W + 120,
        height=PAD * 2 + len(rows) * ROW_H,
        rows=tuple(rows),
        bars_x=bars_x,
        slowest_s=slowest,
    )
