"""How a benchmark run is asked of the job system, whatever started it (a push to the default
branch, the `run-benchmark` label, a schedule): one shape, so every occasion is confined, pinned
and recorded the same way.

A run's jobs are one per (side, machine type): a pull request measures its head and its base,
a push or a schedule only the commit it is for. Each job names the commit it checks out and the
repository it fetches it from; the head of a pull request also names its branch, so the runner
refuses to start once the branch has moved past the approved commit.

Benchmarks run where the repository's slow tests run (`[slow_ci] runner`): on this machine,
confined, or as one dispatch per job of `[benchmarks] workflow` on the repository's GitHub
Actions runners, on the default branch so that the workflow that runs is the reviewed one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from handlers.benchmarks.config import BenchmarksConfig
from handlers.slow_ci.config import DEFAULT_RUNNER_LABELS, SlowCiConfig

__all__ = [
    "KIND",
    "RUNNERS",
    "Side",
    "job_rows",
    "request_spec",
    "runner_refusal",
]

KIND = "benchmarks"
#: The runners that run a command of the repository's choosing: this machine's, confined, and
#: the repository's own GitHub Actions runners.
RUNNERS = ("local", "github-actions")
ACTIONS = "github-actions"


@dataclass(frozen=True, slots=True)
class Side:
    """One commit a run measures: `head` (the commit the run is for) or `base` (a pull
    request's base, measured beside it). ``ref`` is a branch that must still point at ``sha``
    when the job starts (a pull request's head branch); None for a commit fetched as it is."""

    name: str
    sha: str
    clone_url: str
    ref: str | None = None


def runner_refusal(slow: SlowCiConfig) -> str | None:
    """Why the repository's runner cannot run benchmarks, for the log; None when it can."""
    if slow.runner not in RUNNERS:
        return f"[slow_ci] runner is {slow.runner}, which runs no benchmarks"
    return None


def request_spec(
    bench: BenchmarksConfig,
    slow: SlowCiConfig,
    *,
    default_branch: str | None = None,
    run_key: str | None = None,
) -> dict[str, Any]:
    """What every job of the run shares: the command and its repeats, the confinement the
    repository chose for its slow tests, and on GitHub Actions what the dispatch needs: the
    workflow, on `default_branch` (the reviewed one, never a pull request's), the runner labels
    per machine type, and `run_key` (the run's key, so a job finds its workflow run again
    after a restart)."""
    spec: dict[str, Any] = {
        "command": list(bench.command),
        "repeats": bench.repeats,
        "timeout_s": float(bench.timeout_seconds),
        "network": slow.network,
        "limits": slow.limits.as_json(),
        "extras": None if slow.extras is None else list(slow.extras),
    }
    if slow.runner == ACTIONS:
        labels = {**DEFAULT_RUNNER_LABELS, **slow.runner_labels}
        spec["options"] = {
            "workflow": bench.workflow,
            "ref": default_branch or "main",
            "labels": {machine: list(names) for machine, names in labels.items()},
            "run_key": run_key,
        }
    return spec


def job_rows(
    sides: Sequence[Side], machine_types: Sequence[str]
) -> list[tuple[str, Mapping[str, Any]]]:
    """The run's jobs: per side and machine type, named `head · single-gpu` where a run has two
    sides and by the machine type alone where it has one (as push runs always were)."""
    rows: list[tuple[str, Mapping[str, Any]]] = []
    for side in sides:
        for machine in machine_types:
            name = machine if len(sides) == 1 else f"{side.name} · {machine}"
            rows.append(
                (
                    name,
                    {
                        "machine_type": machine,
                        "side": side.name,
                        "head_sha": side.sha,
                        "head_clone_url": side.clone_url,
                        "head_ref": side.ref,
                    },
                )
            )
    return rows
