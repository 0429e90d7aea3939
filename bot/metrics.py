"""Prometheus text-format metrics without a client library: a few counters and one histogram."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

_HELP = {
    "bot_deliveries_total": ("counter", "Webhook deliveries received, by event and outcome."),
    "bot_handler_runs_total": ("counter", "Handler invocations, by handler and outcome."),
    "bot_handler_duration_seconds": ("histogram", "Time spent in each handler."),
    "bot_outbox_sends_total": ("counter", "Outbox delivery attempts, by kind and outcome."),
}

Labels = tuple[tuple[str, str], ...]


def _labels(labels: Mapping[str, str]) -> Labels:
    return tuple(sorted((k, str(v)) for k, v in labels.items()))


def _fmt(labels: Labels) -> str:
    if not labels:
        return ""
    body = ",".join(
        f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for k, v in labels
    )
    return "{" + body + "}"


class Metrics:
    def __init__(self) -> None:
        self.counters: dict[str, dict[Labels, float]] = defaultdict(lambda: defaultdict(float))
        self.histograms: dict[str, dict[Labels, list[float]]] = defaultdict(dict)

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        self.counters[name][_labels(labels)] += amount

    def observe(self, name: str, value: float, **labels: str) -> None:
        key = _labels(labels)
        # Per-bucket counts, then sum and count.
        slots = self.histograms[name].setdefault(key, [0.0] * (len(LATENCY_BUCKETS) + 2))
        for i, bound in enumerate(LATENCY_BUCKETS):
            if value <= bound:
                slots[i] += 1
        slots[-2] += value
        slots[-1] += 1

    def value(self, name: str, **labels: str) -> float:
        return self.counters.get(name, {}).get(_labels(labels), 0.0)

    def render(self, gauges: Mapping[str, tuple[str, Mapping[Labels, float]]]) -> str:
        """`gauges`: name -> (help text, {labels: value}) read fresh at scrape time."""
        out: list[str] = []
        for name, series in sorted(self.counters.items()):
            kind, text = _HELP.get(name, ("counter", name))
            out += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
            out += [f"{name}{_fmt(k)} {v:g}" for k, v in sorted(series.items())]
        for name, series in sorted(self.histograms.items()):
            kind, text = _HELP.get(name, ("histogram", name))
            out += [f"# HELP {name} {text}", f"# TYPE {name} histogram"]
            for key, slots in sorted(series.items()):
                for bound, count in zip(LATENCY_BUCKETS, slots, strict=False):
                    le = (*key, ("le", f"{bound:g}"))
                    out.append(f"{name}_bucket{_fmt(le)} {count:g}")
                out.append(f"{name}_bucket{_fmt((*key, ('le', '+Inf')))} {slots[-1]:g}")
                out.append(f"{name}_sum{_fmt(key)} {slots[-2]:g}")
                out.append(f"{name}_count{_fmt(key)} {slots[-1]:g}")
        for name, (text, series) in sorted(gauges.items()):
            out += [f"# HELP {name} {text}", f"# TYPE {name} gauge"]
            out += [f"{name}{_fmt(k)} {v:g}" for k, v in sorted(series.items())]
        return "\n".join(out) + "\n"
