"""Scheduled runs end to end: the real server and scheduler, the sandbox GitHub and Slack, real
git and real pytest, confined.

A schedule fires on the default branch; a merged pull request then breaks a test; the next fire
finds the new failure, re-runs it (not flaky), runs it at the previous run's commit (it passed:
not pre-existing), bisects the commits between the two runs to the merge that broke it, and
tells the schedule's channel, naming the pull request and its author.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.scheduled import fire, posted, until_phase
from tests.support.slow_ci import PAST

REPO = "acme/models"
SCHEDULE = """
[[scheduled_ci]]
name = "nightly"
cron = "17 2 * * *"
folders = ["models/*"]
machine_types = ["single-gpu"]
channel = "ci-daily"
reruns = 2
mentions = { carol = "U024BE7LH" }
notify_pr = true
"""
FILES = {
    "README.md": "toy\n",
    "tests/models/toy/test_toy.py": (
        "from toy_lib import value\n\n\ndef test_value():\n    assert value() == 2\n\n\n"
        "def test_other():\n    assert True\n"
    ),
    "tests/models/toy/toy_lib.py": "def value():\n    return 2\n",
    "tests/models/toy/conftest.py": (
        "import sys, pathlib\nsys.path.insert(0, str(pathlib.Path(__file__).parent))\n"
    ),
    "tests/models/steady/test_steady.py": "def test_steady():\n    assert 1 + 1 == 2\n",
    ".github/bot.toml": "[slow_ci]\nreminder = false\n" + SCHEDULE,
}


@pytest.fixture
async def repo(harness):
    harness.github.create_repo(REPO, files=FILES, collaborators={"maint": "write"}, pushed_at=PAST)
    runtime = harness.runtime
    gh = await runtime.services.github.for_installation(None)
    await runtime.scheduler.sync_repo(gh, REPO, None, "main")
    return REPO


async def _fire_and_settle(harness) -> int:
    row = await fire(harness, REPO, "nightly")
    assert row.run_id is not None, row.note
    await until_phase(harness.runtime, row.run_id, "done")
    return row.run_id


async def _slack(harness, wanted: int) -> list[dict[str, Any]]:
    return await posted(harness, "ci-daily", wanted)


async def test_a_merge_that_breaks_a_test_is_named_with_its_author(harness, repo):
    first = await _fire_and_settle(harness)
    runtime = harness.runtime
    run = await runtime.jobs.get_run(first)
    assert run.state == "finished" and run.number is None
    jobs = await runtime.jobs.jobs_of(first)
    assert sorted(j.name for j in jobs) == [
        "models/steady (single-gpu)",
        "models/toy (single-gpu)",
    ]
    assert all(j.state == "passed" for j in jobs)
    (summary,) = await _slack(harness, 1)
    assert "0 failures out of 3 tests" in summary["text"]

    # A harmless merge, then the one that breaks test_value, then another harmless one.
    git = harness.github
    git.commit(REPO, "docs", {"README.md": "toy, documented\n"}, author="dave")
    docs = git.open_pull(REPO, "docs", author="dave")
    git.merge_pull(REPO, docs, merged_by="maint")
    git.commit(
        REPO,
        "speedup",
        {"tests/models/toy/toy_lib.py": "def value():\n    return 3\n"},
        author="carol",
    )
    speedup = git.open_pull(REPO, "speedup", author="carol")
    _, broken = git.merge_pull(REPO, speedup, merged_by="maint")
    git.commit(REPO, "more-docs", {"README.md": "toy, documented twice\n"}, author="dave")
    more = git.open_pull(REPO, "more-docs", author="dave")
    git.merge_pull(REPO, more, merged_by="maint")

    second = await _fire_and_settle(harness)
    verdicts = {v.test: v for v in await runtime.services.records.verdicts_of(second)}
    failing = "tests/models/toy/test_toy.py::test_value"
    assert set(verdicts) == {failing}
    verdict = verdicts[failing]
    assert (verdict.status, verdict.verdict, verdict.first_bad) == ("new", "new", broken)
    # Every probe is a run of the job system at the commit it names, and the evidence says so.
    outcomes = {(e["sha"], e["outcome"]) for e in verdict.evidence}
    assert (broken, "failed") in outcomes
    checks = [r for r in await runtime.jobs.runs_of(REPO, None) if r.kind == "scheduled_ci.check"]
    assert {r.spec["parent"] for r in checks} == {second}

    messages = await _slack(harness, 4)
    summary, *rest = messages[1:]
    assert "1 failure out of 3 tests" in summary["text"]
    news = next(m for m in rest if m["text"].startswith("New failures"))
    shown = str(news["blocks"])
    assert f"#{speedup}" in shown and "<@U024BE7LH>" in shown and "test_value" in shown
    reply = next(m for m in rest if m.get("thread_ts"))
    assert reply["thread_ts"] == summary["ts"] and "test_value" in str(reply["blocks"])
    # notify_pr: the breaking pull request is told, once, with the run's page; the others not.
    (told,) = [c["body"] for c in git.comments(REPO, speedup)]
    assert "`tests/models/toy/test_toy.py::test_value`" in told
    assert f"/runs/{second}" in told
    assert git.comments(REPO, docs) == [] and git.comments(REPO, more) == []


async def test_a_schedule_that_matches_no_folder_says_so_once(harness):
    files = {**FILES, ".github/bot.toml": SCHEDULE.replace('["models/*"]', '["models/nope*"]')}
    harness.github.create_repo(REPO, files=files, collaborators={"maint": "write"})
    runtime = harness.runtime
    gh = await runtime.services.github.for_installation(None)
    await runtime.scheduler.sync_repo(gh, REPO, None, "main")
    row = await fire(harness, REPO, "nightly")
    assert row.run_id is None and "no test folder" in row.note
    (message,) = await _slack(harness, 1)
    assert "could not start" in message["text"].lower() or "no test folder" in message["text"]
    assert await runtime.jobs.runs_of(REPO, None) == []


async def test_a_cancelled_run_is_reported_as_not_run_not_as_zero_failures(harness, repo):
    runtime = harness.runtime
    row = await fire(harness, REPO, "nightly")
    await runtime.jobs.cancel_run(row.run_id, "cancelled by an operator")
    await until_phase(runtime, row.run_id, "done")
    (message,) = await _slack(harness, 1)
    assert "did not run" in message["text"] and "cancelled" in message["text"]
    assert await runtime.services.records.verdicts_of(row.run_id) == []
    assert [r for r in await runtime.jobs.runs_of(REPO, None) if r.kind != "scheduled_ci"] == []


async def test_a_restart_mid_bisect_resumes_from_the_stored_steps(harness, repo):
    await _fire_and_settle(harness)
    git = harness.github
    # Each probe takes a moment, so the restart lands inside the bisect.
    slow_break = "import time\n\n\ndef value():\n    time.sleep(1.5)\n    return 3\n"
    for branch, files, author in (
        ("docs", {"README.md": "toy, documented\n"}, "dave"),
        ("speedup", {"tests/models/toy/toy_lib.py": slow_break}, "carol"),
        ("more-docs", {"README.md": "toy, documented twice\n"}, "dave"),
        ("even-more", {"README.md": "toy, documented thrice\n"}, "dave"),
    ):
        git.commit(REPO, branch, files, author=author)
        number = git.open_pull(REPO, branch, author=author)
        _, merged = git.merge_pull(REPO, number, merged_by="maint")
        if branch == "speedup":
            broken = merged
    runtime = harness.runtime
    row = await fire(harness, REPO, "nightly")
    await until_phase(runtime, row.run_id, "bisect")
    await harness.stop_bot()
    await harness.start_bot()
    runtime = harness.runtime
    await until_phase(runtime, row.run_id, "done")
    (verdict,) = await runtime.services.records.verdicts_of(row.run_id)
    assert (verdict.verdict, verdict.first_bad) == ("new", broken)
    checks = [r for r in await runtime.jobs.runs_of(REPO, None) if r.kind == "scheduled_ci.check"]
    keys = [r.key for r in checks if r.spec["parent"] == row.run_id]
    assert len(keys) == len(set(keys))  # no step was started twice across the restart
