"""Following Actions runs as a table: this webhook, these runners, this job moved along or not.
A real job system over a real store; the runners are stand-ins that only follow webhooks."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from gidgethub.sansio import Event

from bot.config import RepoConfig
from bot.jobs.system import JobSystem
from bot.store.engine import Store
from handlers.actions_follow import FEATURE
from handlers.actions_follow.handler import on_workflow_event
from handlers.slow_ci.config import SlowCiConfig


@dataclass
class Following:
    """A runner that follows workflow runs by id through their webhooks, as Actions' does."""

    run_ids: set[int]
    name: str = "github-actions"
    seen: list[tuple[str, int]] = field(default_factory=list)

    def observe(self, event: str, data: Mapping[str, Any]) -> bool:
        item = data.get("workflow_run") or data.get("workflow_job") or {}
        run_id = item.get("id") if event == "workflow_run" else item.get("run_id")
        if run_id not in self.run_ids:
            return False
        self.seen.append((event, run_id))
        return True


class Deaf:
    """A runner that hears no webhooks (the local one): never offered one."""

    name = "local"


@pytest.fixture
async def jobs(tmp_path) -> AsyncIterator[tuple[JobSystem, Following]]:
    store = Store(str(tmp_path / "bot.sqlite3"))
    following = Following({42})
    system = JobSystem(store, {"local": Deaf(), "github-actions": following})  # type: ignore[dict-item]
    yield system, following
    store.close()


def workflow_event(event: str, run_id: int) -> Event:
    item = {"id": run_id} if event == "workflow_run" else {"id": 7, "run_id": run_id}
    data = {"action": "in_progress", event: item, "repository": {"full_name": "acme/widgets"}}
    return Event(data, event=event, delivery_id="d-1")


@pytest.mark.parametrize(
    ("event", "run_id", "followed"),
    [
        ("workflow_run", 42, True),
        ("workflow_job", 42, True),
        ("workflow_run", 43, False),
        ("workflow_job", 43, False),
    ],
    ids=["its-run", "its-job", "another-run", "another-runs-job"],
)
async def test_this_webhook_moves_the_followed_job_along_or_not(jobs, event, run_id, followed):
    system, following = jobs
    ctx = SimpleNamespace(services=SimpleNamespace(jobs=system), log=logging.getLogger("t"))
    await on_workflow_event(workflow_event(event, run_id), None, ctx=ctx)  # type: ignore[arg-type]
    assert following.seen == ([(event, run_id)] if followed else [])
    assert system.observe(event, workflow_event(event, run_id).data) is followed


def test_it_is_enabled_only_where_slow_tests_run_on_actions():
    assert FEATURE.router.fetch(workflow_event("workflow_job", 1))
    assert not FEATURE.is_enabled(RepoConfig())
    assert FEATURE.is_enabled(RepoConfig(slow_ci=SlowCiConfig(runner="github-actions")))
    off = SlowCiConfig(runner="github-actions", enabled=False)
    assert not FEATURE.is_enabled(RepoConfig(slow_ci=off))
