"""The bot's Prometheus metrics, through `prometheus_client`.

Each process (and each test's runtime) has a registry of its own, so two runtimes in one test
session never share a series. Label values come only from a fixed set or from deliveries whose
signature was verified: an unverified header never becomes a series, so nobody can grow
`/metrics` from outside.
"""

from __future__ import annotations

from collections.abc import Mapping

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# The `_created` series double the output and nothing here reads them.
prometheus_client.disable_created_metrics()

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
CONTENT_TYPE = prometheus_client.CONTENT_TYPE_LATEST
#: The `what` of `bot_pruned_total`: the fields of `bot.store.retention.PruneCounts`.
PRUNED_KINDS = ("delivery_bodies", "job_logs", "junit", "results")


class Metrics:
    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self.deliveries = Counter(
            "bot_deliveries",
            "Webhook deliveries received, by event (`unverified` before the signature check)"
            " and outcome.",
            ["event", "outcome"],
            registry=registry,
        )
        self.processed = Counter(
            "bot_deliveries_processed",
            "Deliveries the worker finished an attempt of, by event and resulting status.",
            ["event", "outcome"],
            registry=registry,
        )
        self.handler_runs = Counter(
            "bot_handler_runs",
            "Handler calls, by handler and outcome.",
            ["handler", "outcome"],
            registry=registry,
        )
        self.handler_seconds = Histogram(
            "bot_handler_duration_seconds",
            "Time spent in each handler.",
            ["handler"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.outbox_sends = Counter(
            "bot_outbox_sends",
            "Outbox delivery attempts, by kind and outcome.",
            ["kind", "outcome"],
            registry=registry,
        )
        # Read from the store at each scrape (`set_store_figures`).
        self.queue_depth = Gauge(
            "bot_queue_depth", "Deliveries waiting or being processed.", registry=registry
        )
        self.stored = Gauge(
            "bot_deliveries_stored",
            "Stored deliveries, by status.",
            ["status"],
            registry=registry,
        )
        self.jobs = Gauge("bot_jobs", "Jobs, by status.", ["status"], registry=registry)
        self.outbox_items = Gauge(
            "bot_outbox_items", "Outbox items, by status.", ["status"], registry=registry
        )
        self.store_commits = Gauge(
            "bot_store_commits",
            "Transactions committed since start; many deliveries share one under load.",
            registry=registry,
        )
        self.pruned = Counter(
            "bot_pruned",
            "What retention dropped from finished work: delivery bodies, job logs, JUnit files"
            " and per-test results.",
            ["what"],
            registry=registry,
        )
        for what in PRUNED_KINDS:
            self.pruned.labels(what)  # at 0 from the start, so a rate() has a first sample

    def count_pruned(self, counts: Mapping[str, int]) -> None:
        for what, count in counts.items():
            if count:
                self.pruned.labels(what).inc(count)

    def set_store_figures(
        self, counts: Mapping[str, Mapping[str, int]], *, depth: int, commits: int
    ) -> None:
        self.queue_depth.set(depth)
        self.store_commits.set(commits)
        for gauge, table in (
            (self.stored, "deliveries"),
            (self.jobs, "jobs"),
            (self.outbox_items, "outbox"),
        ):
            gauge.clear()  # a status with no rows left is gone, not stuck at its last count
            for status, count in counts.get(table, {}).items():
                gauge.labels(status).set(count)

    def render(self) -> bytes:
        return prometheus_client.generate_latest(self.registry)
