"""What the benchmark pages show and export: a repository's recorded results as JSON and CSV
for dashboards, and a chart of each metric along the default branch's commits as inline SVG
(no script, no image request).

Pure apart from `read_results`, which takes the store's connection like the store's own
functions: queries in, rows and geometry out; the templates only print them. The chart draws
the summary of every result of a thousand commits, so it is built from columns (`BranchRows`),
takes a series as every n-th row where the store's runs lay them out alike (`_run_width`),
draws at most `MAX_BUCKETS` positions across (commits that share one are drawn as the median of
their medians, the band as the spread of all their repeats), marks only what is a link (a
regression, a pull request's result, or each commit when they are few), and is kept in a
`ChartCache` until a result is recorded.
"""

from __future__ import annotations

import csv
import functools
import io
import re
import sqlite3
import time
import urllib.parse
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import compress
from operator import itemgetter
from typing import Any, TypeVar

from multidict import MultiMapping

from bot.store import benchmarks as benchmarks_db
from bot.store.benchmarks import BenchmarkResult, BranchRows, Summary

#: The rows an export answers unless told `?limit=`, and the most it answers to any limit:
#: the store decodes them on the loop that takes webhooks, ten thousand in about 0.15 s; a
#: dashboard wanting more pages back with `?until=`.
DEFAULT_LIMIT = 1_000
MAX_LIMIT = 10_000
#: The most metrics one request may name, and the longest name it may give.
MAX_METRICS = 50
MAX_NAME_CHARS = 500
#: A metric's name and unit are printed cut to these lengths: a benchmark writes what it likes.
SHOWN_NAME_CHARS = 120
SHOWN_UNIT_CHARS = 24
#: The chart covers the commits of the branch's newest runs this many.
CHART_RUNS = 1_000
#: Series (metric × machine type) drawn at once; the others are a choice of metrics away.
MAX_PANELS = 40
#: Positions across a chart: more commits than this share them.
MAX_BUCKETS = 200
#: Up to this many commits, each has a dot of its own, linked to its run.
DOTS_UP_TO = 150
#: Regressions and pull requests' results marked on one chart: the newest this many of each.
MARKS_PER_PANEL = 12
#: Metrics offered to choose from.
MAX_CHOICES = 200
#: A cell a spreadsheet would run as a formula starts with one of these.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CSV_COLUMNS = (
    "repo",
    "sha",
    "branch",
    "machine_type",
    "metric",
    "unit",
    "median",
    "values",
    "run_id",
    "pull_number",
    "recorded_at",
    "regression",
)

#: Layout, in SVG user units.
PLOT_X = 70
PLOT_W = 720
PLOT_TOP = 10
PLOT_H = 110
CHART_W = PLOT_X + PLOT_W + 12
CHART_H = PLOT_TOP + PLOT_H + 24


# ---------------------------------------------------------------------- names and links

#: The feature whose results these pages show (its schedules link here).
FEATURE_NAME = "benchmarks"


def _repo_path(repo: str) -> str:
    owner, _, name = repo.partition("/")
    return "/".join(urllib.parse.quote(part, safe="") for part in (owner, name))


def benchmarks_url(repo: str, suffix: str = "") -> str:
    """The chart page (`suffix` "") or an export (".json", ".csv") of `repo`."""
    return f"/benchmarks/{_repo_path(repo)}{suffix}"


def shown(text: str, limit: int = SHOWN_NAME_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _num(value: float) -> str:
    return f"{value:.4g}"


@functools.lru_cache(maxsize=4096)
def _day(timestamp: float) -> str:
    """Kept: a run's results share its time, so a chart names the same few days many times."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")


def iso_time(timestamp: float) -> str:
    """A recorded time as the exports write it, and as `?since=` and `?until=` take it back."""
    text = datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


# ---------------------------------------------------------------------- what was asked


class BadQuery(ValueError):
    """A query parameter the exports cannot take; the text says which and what it takes."""


@dataclass(frozen=True)
class Query:
    metrics: tuple[str, ...] = ()
    branch: str | None = None
    machine_type: str | None = None
    since: float | None = None
    until: float | None = None
    limit: int = DEFAULT_LIMIT


_EPOCH = re.compile(r"[0-9]{1,12}(\.[0-9]{1,9})?")
_LIMIT = re.compile(r"[0-9]{1,9}")
#: The end of year 9999: later times are not dates anyone means.
_LAST_TIME = 253_402_300_799.0


def parse_time(name: str, text: str, *, end: bool = False) -> float:
    """Seconds since the epoch from `?since=` / `?until=`: seconds themselves, or an ISO 8601
    date or time (UTC unless it names an offset). A date alone covers its whole day, so
    `until=2024-05-01` takes in the evening of that day too (`end`)."""
    given = text.strip()
    if _EPOCH.fullmatch(given):
        value = float(given)
    else:
        try:
            if any(mark in given for mark in ("T", "t", " ", ":")):
                moment = datetime.fromisoformat(given)
                if moment.tzinfo is None:
                    moment = moment.replace(tzinfo=UTC)
                value = moment.timestamp()
            else:
                day = date.fromisoformat(given)
                start = datetime(day.year, day.month, day.day, tzinfo=UTC)
                value = (start + timedelta(days=1)).timestamp() - 1e-6 if end else start.timestamp()
        except (ValueError, OverflowError):
            raise BadQuery(
                f"?{name}= takes a date or time in ISO 8601 (2024-05-01, 2024-05-01T12:00:00Z)"
                f" or seconds since the epoch, not {shown(given, 40)!r}."
            ) from None
    if not 0 <= value <= _LAST_TIME:
        raise BadQuery(f"?{name}= is out of range: a time from 1970 to the year 9999.")
    return value


def _name(params: MultiMapping[str], name: str) -> str | None:
    value = params.get(name, "").strip()
    if len(value) > MAX_NAME_CHARS:
        raise BadQuery(f"?{name}= is at most {MAX_NAME_CHARS} characters long.")
    return value or None


def parse_query(params: MultiMapping[str]) -> Query:
    """The filters of an export or the chart, checked: a value the store would misread is an
    error the caller sees (400), never a silently different answer."""
    metrics: list[str] = []
    for value in params.getall("metric", []):
        if len(value) > MAX_NAME_CHARS:
            raise BadQuery(f"A ?metric= is at most {MAX_NAME_CHARS} characters long.")
        if value and value not in metrics:
            metrics.append(value)
    if len(metrics) > MAX_METRICS:
        raise BadQuery(f"At most {MAX_METRICS} metrics at once (?metric= was given more).")
    since_text, until_text = params.get("since", ""), params.get("until", "")
    since = parse_time("since", since_text) if since_text.strip() else None
    until = parse_time("until", until_text, end=True) if until_text.strip() else None
    if since is not None and until is not None and since > until:
        raise BadQuery("?since= is later than ?until=: nothing could match.")
    limit = DEFAULT_LIMIT
    limit_text = params.get("limit", "").strip()
    if limit_text:
        if not _LIMIT.fullmatch(limit_text) or not 1 <= int(limit_text) <= MAX_LIMIT:
            raise BadQuery(
                f"?limit= is a whole number from 1 to {MAX_LIMIT}, not {shown(limit_text, 40)!r}."
            )
        limit = int(limit_text)
    return Query(
        metrics=tuple(metrics),
        branch=_name(params, "branch"),
        machine_type=_name(params, "machine_type"),
        since=since,
        until=until,
        limit=limit,
    )


# ---------------------------------------------------------------------- the exports


def _order(result: BenchmarkResult) -> tuple[float, int, str, str, str]:
    return (result.recorded_at, result.run_id, result.machine_type, result.metric, result.sha)


def read_results(
    conn: sqlite3.Connection, repo: str, query: Query
) -> tuple[list[BenchmarkResult], bool]:
    """The newest `query.limit` results that match, oldest first, and whether older ones were
    left out. Runs on the store's connection."""
    wanted = query.limit + 1  # one more than asked: tells whether any were left out
    found: list[BenchmarkResult] = []
    for metric in query.metrics or (None,):
        found += benchmarks_db.benchmark_series(
            conn,
            repo,
            metric=metric,
            branch=query.branch,
            machine_type=query.machine_type,
            since=query.since,
            until=query.until,
            limit=wanted,
        )
    if len(query.metrics) > 1:
        found = sorted(found, key=_order)[-wanted:]
    return found[-query.limit :], len(found) > query.limit


def result_json(result: BenchmarkResult) -> dict[str, Any]:
    return {
        "repo": result.repo,
        "sha": result.sha,
        "branch": result.branch,
        "machine_type": result.machine_type,
        "metric": result.metric,
        "unit": result.unit,
        "values": list(result.values),
        "median": result.median,
        "run_id": result.run_id,
        "pull_number": result.pull_number,
        "recorded_at": iso_time(result.recorded_at),
        "regression": result.regression,
    }


def safe_cell(text: str) -> str:
    """A text cell a spreadsheet shows as text: one that would start a formula (CSV
    injection) is prefixed with a quote, as OWASP advises."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_text(results: Iterable[BenchmarkResult]) -> str:
    """One line a result; the repeats in one cell, `;`-joined, as the values were measured."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for r in results:
        writer.writerow(
            (
                safe_cell(r.repo),
                safe_cell(r.sha),
                safe_cell(r.branch),
                safe_cell(r.machine_type),
                safe_cell(r.metric),
                safe_cell(r.unit),
                repr(r.median),
                ";".join(repr(v) for v in r.values),
                r.run_id,
                "" if r.pull_number is None else r.pull_number,
                iso_time(r.recorded_at),
                "true" if r.regression else "false",
            )
        )
    return out.getvalue()


def csv_filename(repo: str) -> str:
    """`owner-name-benchmarks.csv`, with anything but letters, digits, `.`, `_`, `-` made `_`:
    it is written inside a header's quotes."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", repo.replace("/", "-")) + "-benchmarks.csv"


# ---------------------------------------------------------------------- the chart


@dataclass(frozen=True)
class Mark:
    """A linked point: a commit's dot, or a pull request's result."""

    x: int
    y: int
    href: str
    title: str


@dataclass(frozen=True)
class Regression:
    """A result slower than the push before it: its mark links to the commit, and the list
    under the chart to the commit and the run."""

    x: int
    y: int
    sha: str
    commit_url: str
    run_id: int
    title: str


@dataclass(frozen=True)
class Panel:
    """One metric on one machine type along the branch's commits, oldest left."""

    metric: str
    unit: str
    machine_type: str
    #: SVG `points`: the line through the medians, and the band of the repeats' spread
    line: str
    band: str
    dots: tuple[Mark, ...]
    pulls: tuple[Mark, ...]
    regressions: tuple[Regression, ...]
    #: (y, label) of the horizontal lines at the highest, middle and lowest value drawn
    ticks: tuple[tuple[int, str], ...]
    latest: str


@dataclass(frozen=True)
class Chart:
    panels: tuple[Panel, ...] = ()
    commits: int = 0
    #: series left out past `MAX_PANELS`
    more: int = 0
    #: the first and the last commit, under the x axis
    first: str = ""
    last: str = ""
    width: int = CHART_W
    height: int = CHART_H
    plot_x: int = PLOT_X
    plot_w: int = PLOT_W

    @property
    def empty(self) -> bool:
        return not self.panels


@dataclass(frozen=True)
class Choice:
    name: str
    shown: str
    chosen: bool


def choices(names: Sequence[str], chosen: Sequence[str]) -> list[Choice]:
    """The metrics offered to choose from; one too long to ask for is not offered."""
    picked = set(chosen)
    return [
        Choice(name, shown(name), name in picked)
        for name in names[:MAX_CHOICES]
        if len(name) <= MAX_NAME_CHARS
    ]


SeriesKey = tuple[str, str, str]
T = TypeVar("T")


def chart(rows: BranchRows, pulls: Sequence[BenchmarkResult], *, repo: str, web_url: str) -> Chart:
    """Each (metric, unit, machine type) of `rows` over the branch's commits, in the order of the
    runs that first measured them; a commit measured again draws its newest run. `pulls` are
    marked among the commits by their runs' order, off the line."""
    if not len(rows):
        return Chart()
    width = _run_width(rows)
    runs, shas, times = rows.run_id, rows.sha, rows.recorded_at
    if width:  # a row a run stands for them all
        runs, shas, times = runs[::width], shas[::width], times[::width]
    # Each commit's first run and time; a run measures one commit, so this is a few thousand
    # distinct triples out of the rows, found without a Python step a row.
    first_run: dict[str, int] = {}
    first_at: dict[str, float] = {}
    for run_id, sha, at in sorted(set(zip(runs, shas, times, strict=True))):
        if sha not in first_run:
            first_run[sha], first_at[sha] = run_id, at
    order = sorted(first_run, key=lambda sha: (first_run[sha], sha))
    pulls_of: dict[SeriesKey, list[BenchmarkResult]] = {}
    for result in pulls:
        pulls_of.setdefault((result.metric, result.unit, result.machine_type), []).append(result)
    axis = _Axis(order, [first_run[sha] for sha in order], [first_at[sha] for sha in order])
    if width and list(shas) == order:
        series = _every_run_alike(rows, width, len(order))
    else:
        commit_of = {sha: k for k, sha in enumerate(order)}
        series = _series(rows, list(map(commit_of.__getitem__, rows.sha)))
    keys = sorted(series)
    commit_url = f"{web_url}/{repo}/commit/"
    panels = [
        axis.panel(key, *series[key](), rows, pulls_of.get(key, []), commit_url)
        for key in keys[:MAX_PANELS]
    ]
    return Chart(
        panels=tuple(panels),
        commits=len(order),
        more=max(0, len(keys) - MAX_PANELS),
        first=f"{order[0][:7]} · {_day(first_at[order[0]])}",
        last=f"{order[-1][:7]} · {_day(first_at[order[-1]])}",
    )


#: A series' commits (sorted) and the row drawn at each, worked out when its panel is drawn.
SeriesRows = Callable[[], tuple[Sequence[int], Sequence[int]]]


def _series(rows: BranchRows, commits: list[int]) -> dict[SeriesKey, SeriesRows]:
    """Each series' rows, whatever their order: a commit measured by several runs is drawn at
    its newest run."""
    series: dict[SeriesKey, list[int]] = {}
    found = series.get
    for i, key in enumerate(zip(rows.metric, rows.unit, rows.machine_type, strict=True)):
        indices = found(key)
        if indices is None:
            series[key] = [i]
        else:
            indices.append(i)

    def rows_of(indices: list[int]) -> tuple[Sequence[int], Sequence[int]]:
        by_commit = dict(zip(map(commits.__getitem__, indices), indices, strict=True))
        if len(by_commit) < len(indices):
            indices.sort(key=rows.run_id.__getitem__)
            by_commit = dict(zip(map(commits.__getitem__, indices), indices, strict=True))
        ks = sorted(by_commit)
        return ks, list(map(by_commit.__getitem__, ks))

    return {key: functools.partial(rows_of, indices) for key, indices in series.items()}


def _run_width(rows: BranchRows) -> int:
    """How many rows each run has where the rows are runs one after another, each of one
    commit at one time, and every run measured the same series in the same order (as
    `branch_rows` reads a branch whose benchmark did not change); 0 where they are not laid out
    so. Found by comparing whole columns, not by a Python step a row."""
    n = len(rows)
    width = rows.run_id.count(rows.run_id[0])
    if n % width:
        return 0
    for column in (rows.run_id, rows.sha, rows.recorded_at):
        head = column[::width]
        if any(column[j::width] != head for j in range(1, width)):
            return 0
    columns = (rows.metric, rows.unit, rows.machine_type)
    if any(column[width:] != column[:-width] for column in columns):
        return 0
    if len(set(zip(*(column[:width] for column in columns), strict=True))) < width:
        return 0
    return width


def _every_run_alike(rows: BranchRows, width: int, n_commits: int) -> dict[SeriesKey, SeriesRows]:
    """The series' rows where runs of `width` rows (`_run_width`) measured one commit each, in
    the commits' order: series j is every `width`-th row from row j, one a commit."""
    n = len(rows)
    every = range(n_commits)

    def rows_of(j: int) -> tuple[Sequence[int], Sequence[int]]:
        return every, range(j, n, width)

    first = zip(rows.metric[:width], rows.unit[:width], rows.machine_type[:width], strict=True)
    return {key: functools.partial(rows_of, j) for j, key in enumerate(first)}


def _pick(column: Sequence[T], chosen: Sequence[int]) -> Sequence[T]:
    if isinstance(chosen, range):
        return column[chosen.start : chosen.stop : chosen.step]
    return list(map(column.__getitem__, chosen))


class _Axis:
    """The x axis the panels share: commits to positions, many commits to one position when
    there are more of them than `MAX_BUCKETS`. A series measured at every commit (the usual
    one) takes its positions' bounds from here, worked out once for all the panels."""

    def __init__(self, shas: list[str], runs: list[int], times: list[float]) -> None:
        self.shas, self.runs, self.times = shas, runs, times
        n = len(shas)
        self.buckets = min(n, MAX_BUCKETS)
        self.bucket_of = [k * self.buckets // n for k in range(n)]
        step = PLOT_W / self.buckets
        self.bucket_x = [round(PLOT_X + (b + 0.5) * step) for b in range(self.buckets)]
        self.every_commit = self._spans(list(range(n)))

    def pull_x(self, run_id: int) -> int:
        """Between the last commit first measured before the pull request's run and the next."""
        return round(PLOT_X + PLOT_W * bisect_right(self.runs, run_id) / len(self.shas))

    def _spans(self, ks: Sequence[int]) -> tuple[list[int], list[slice]]:
        """The x of each position the commits `ks` (sorted) are drawn at, and which of them
        share it, as a slice of `ks`."""
        bucket_of = self.bucket_of
        starts = [0] + [i for i in range(1, len(ks)) if bucket_of[ks[i]] != bucket_of[ks[i - 1]]]
        ends = [*starts[1:], len(ks)]
        xs = [self.bucket_x[bucket_of[ks[a]]] for a in starts]
        return xs, [slice(a, b) for a, b in zip(starts, ends, strict=True)]

    def _positions(
        self, ks: Sequence[int], summaries: Sequence[Summary]
    ) -> tuple[list[int], list[float], list[float], list[float]]:
        """Per position drawn: its x, the lowest repeat, the median of the commits' medians,
        and the highest repeat of the commits `ks` (sorted) that share it."""
        lows, medians, highs = (list(map(itemgetter(i), summaries)) for i in range(3))
        if len(self.shas) <= MAX_BUCKETS:  # a position a commit
            return list(map(self.bucket_x.__getitem__, ks)), lows, medians, highs
        xs, spans = self.every_commit if len(ks) == len(self.shas) else self._spans(ks)
        shared = [sorted(medians[span]) for span in spans]
        return (
            xs,
            list(map(min, map(lows.__getitem__, spans))),
            [
                ordered[n // 2]
                if (n := len(ordered)) % 2
                else (ordered[n // 2 - 1] + ordered[n // 2]) / 2
                for ordered in shared
            ],
            list(map(max, map(highs.__getitem__, spans))),
        )

    def panel(
        self,
        key: SeriesKey,
        ks: Sequence[int],
        chosen: Sequence[int],
        rows: BranchRows,
        pulls: list[BenchmarkResult],
        commit_url: str,
    ) -> Panel:
        """The series `key`: the commits `ks` (sorted), drawn at the rows `chosen`."""
        metric, unit, machine_type = key
        summaries = _pick(rows.summary, chosen)
        at, lows, medians, highs = self._positions(ks, summaries)
        pulls = pulls[-MARKS_PER_PANEL:]
        pull_medians = [p.median for p in pulls]
        bottom = min([*lows, *pull_medians])
        top = max([*highs, *pull_medians])
        pad = (top - bottom) * 0.05 or abs(top) * 0.05 or 1.0
        bottom, top = bottom - pad, top + pad
        scale = PLOT_H / (top - bottom)
        origin = PLOT_TOP + top * scale  # y = origin - value * scale

        def y(value: float) -> int:
            return round(origin - value * scale)

        def points(xs: Iterable[int], values: Iterable[float]) -> list[str]:
            return [f"{x},{round(origin - v * scale)}" for x, v in zip(xs, values, strict=True)]

        # One point a position: the median of its commits' medians. A spike among commits
        # that share a position still shows in the band, and a regression has its own mark.
        line = " ".join(points(at, medians))
        band = " ".join(points(at, highs) + points(reversed(at), reversed(lows)))
        shown_unit = shown(unit, SHOWN_UNIT_CHARS)
        xs, bucket_of = self.bucket_x, self.bucket_of
        dots: tuple[Mark, ...] = ()
        if len(self.shas) <= DOTS_UP_TO:
            dots = tuple(
                Mark(
                    xs[bucket_of[k]],
                    y(summary[1]),
                    f"/runs/{rows.run_id[row]}",
                    self._title(k, row, rows, shown_unit),
                )
                for k, row, summary in zip(ks, chosen, summaries, strict=True)
            )
        flagged = list(compress(range(len(chosen)), _pick(rows.regression, chosen)))
        regressions = tuple(
            Regression(
                xs[bucket_of[ks[j]]],
                y(summaries[j][1]),
                self.shas[ks[j]],
                commit_url + self.shas[ks[j]],
                rows.run_id[chosen[j]],
                "regression: " + self._title(ks[j], chosen[j], rows, shown_unit),
            )
            for j in flagged[-MARKS_PER_PANEL:]
        )
        marks = tuple(
            Mark(
                self.pull_x(p.run_id),
                y(median),
                f"/runs/{p.run_id}",
                f"#{p.pull_number}, {p.sha[:7]} {_day(p.recorded_at)}: {_num(median)}"
                f" {shown_unit} ({_num(min(p.values))}–{_num(max(p.values))},"
                f" {len(p.values)}×) run {p.run_id}",
            )
            for p, median in zip(pulls, pull_medians, strict=True)
        )
        return Panel(
            metric=shown(metric),
            unit=shown_unit,
            machine_type=shown(machine_type, SHOWN_UNIT_CHARS),
            line=line,
            band=band,
            dots=dots,
            pulls=marks,
            regressions=regressions,
            ticks=tuple(
                (y(value), f"{_num(value)} {shown_unit}")
                for value in (top - pad, (top + bottom) / 2, bottom + pad)
            ),
            latest=f"{_num(summaries[-1][1])} {shown_unit} at {self.shas[ks[-1]][:7]}",
        )

    def _title(self, k: int, row: int, rows: BranchRows, unit: str) -> str:
        low, median, high, repeats = rows.summary[row]
        return (
            f"{self.shas[k][:7]} {_day(self.times[k])}: {_num(median)} {unit}"
            f" ({_num(low)}–{_num(high)}, {repeats}×) run {rows.run_id[row]}"
        )


# ---------------------------------------------------------------------- the chart's cache


@dataclass(frozen=True)
class ChartView:
    """What the chart page shows of a repository, apart from who is looking."""

    branches: tuple[str, ...]
    branch: str
    names: tuple[str, ...]
    chart: Chart


ChartKey = tuple[str, str | None, tuple[str, ...]]


class ChartCache:
    """Charts drawn lately, each kept with the `results_version` of its repository when it was
    read: a dashboard shown on a wall redraws a thousand commits only when a result was recorded
    (again) or removed since; and after `max_age_s` in any case. Bounded: the least recently
    shown goes first."""

    def __init__(
        self,
        size: int = 16,
        max_age_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.size = size
        self.max_age_s = max_age_s
        self.clock = clock
        self._views: OrderedDict[ChartKey, tuple[Hashable, float, ChartView]] = OrderedDict()

    def get(self, key: ChartKey, version: Hashable) -> ChartView | None:
        found = self._views.get(key)
        if found is None:
            return None
        if found[0] != version or self.clock() - found[1] > self.max_age_s:
            del self._views[key]
            return None
        self._views.move_to_end(key)
        return found[2]

    def put(self, key: ChartKey, version: Hashable, view: ChartView) -> None:
        self._views[key] = (version, self.clock(), view)
        self._views.move_to_end(key)
        while len(self._views) > self.size:
            self._views.popitem(last=False)


def chart_key(repo: str, query: Query) -> ChartKey:
    return (repo.lower(), query.branch, query.metrics)
