"""The `slow tests` check run end to end: the real server, the sandbox GitHub's Checks API, real
git and real pytest, as in `test_slow_ci_e2e.py`.

Each run-slow gets a check run beside its `pytest/custom-tests` status: in progress while it
runs, then completed with the run's conclusion, its result table, the failing tests as
annotations at their line, and a Re-run failed button whose click re-runs what failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator

import aiohttp
import gidgethub
import pytest
from gidgethub.aiohttp import GitHubAPI

from bot.jobs.runners.junit import parse_junit
from tests.support.slow_ci import REPO, bot_comments, head, open_slow_pull

MANY = 60
FILES = {
    "README.md": "toy\n",
    "tests/models/toy/test_toy.py": "def test_one():\n    assert 1 + 1 == 2\n",
    "tests/models/broken/test_broken.py": "def test_sums():\n    assert 6 == 7\n",
    "tests/models/mixed/test_mixed.py": (
        "import pytest\n\n\ndef test_a():\n    pass\n\n\ndef test_b():\n    pass\n\n\n"
        "def test_c():\n    assert [1] == [2]\n\n\ndef test_d():\n    pytest.skip('not here')\n"
    ),
    "tests/models/slow/test_slow.py": "import time\n\n\ndef test_waits():\n    time.sleep(2)\n",
    "tests/models/many/test_many.py": (
        f"import pytest\n\n\n@pytest.mark.parametrize('i', range({MANY}))\n"
        "def test_fails(i):\n    assert i < 0\n"
    ),
}
BROKEN = "tests/models/broken/test_broken.py::test_sums"


@pytest.fixture
def repo(harness):
    return open_slow_pull(harness, FILES)


async def _run_slow(harness, number: int, body: str, user: str = "maint") -> None:
    payload = harness.github.issue_comment_payload(REPO, number, body, user)
    assert (await harness.deliver("issue_comment", payload)).status == 202
    await harness.settle_runs()


async def _click(harness, check_run_id: int, user: str, **kw):
    payload = harness.github.check_run_action_payload(REPO, check_run_id, "rerun_failed", user)
    sent = await harness.deliver("check_run", payload, **kw)
    await harness.settle_runs()
    return sent


@contextlib.asynccontextmanager
async def _client(harness) -> AsyncIterator[GitHubAPI]:
    """gidgethub on the bot's token: another client of the same sandbox GitHub."""
    async with aiohttp.ClientSession() as session:
        yield GitHubAPI(
            session, "checks-tests", oauth_token=harness.github.token, base_url=harness.github.url
        )


def _check_requests(harness) -> list:
    return [r for r in harness.github.requests if "/check-runs" in r.path and r.method != "GET"]


async def _runs(harness, number: int):
    return await harness.runtime.jobs.runs_of(REPO, number)  # newest first


def _row(summary: str, folder: str, machine: str) -> list[str]:
    """A row of the summary's table, as its cells."""
    for line in summary.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[:2] == [f"`{folder}`", f"`{machine}`"]:
            return cells
    raise AssertionError(f"no row for {folder} on {machine} in:\n{summary}")


async def test_a_run_gets_a_check_run_that_ends_with_its_conclusion_and_annotations(harness, repo):
    sha = head(harness, repo)
    await _run_slow(harness, repo, "run-slow: toy, broken, mixed")
    (run,) = await _runs(harness, repo)
    (check,) = harness.github.check_runs(REPO, sha)
    assert check["name"] == "slow tests"
    assert check["external_id"] == str(run.id)
    assert check["details_url"] == f"{harness.settings.public_url}/runs/{run.id}"
    assert (check["status"], check["conclusion"]) == ("completed", "failure")
    assert check["output"]["title"].startswith("Failed:")
    assert (await harness.runtime.jobs.report_state(run.id)).check_run_id == check["id"]
    assert run.private is False  # the sandbox repository is public

    # queued or in progress first, in progress while running, completed last
    states = [r.json.get("status") for r in _check_requests(harness) if r.json.get("status")]
    assert states[0] in ("queued", "in_progress")
    assert "in_progress" in states and states[-1] == "completed"
    order = {"queued": 0, "in_progress": 1, "completed": 2}
    assert [order[s] for s in states] == sorted(order[s] for s in states)

    # the table says what the JUnit reports say
    summary = check["output"]["summary"]
    for job in await harness.runtime.jobs.jobs_of(run.id):
        if job.spec["machine_type"] != "single-gpu":
            continue
        report = parse_junit(await harness.runtime.jobs.job_junit(job.id) or "")
        cells = _row(summary, job.spec["folder"], "single-gpu")
        counts = [report.passed, report.failed, report.errors, report.skipped]
        assert cells[3:7] == [str(n) for n in counts]
    assert _row(summary, "models/mixed", "single-gpu")[3:7] == ["2", "1", "0", "1"]
    assert "no multi-GPU machine" in _row(summary, "models/toy", "multi-gpu")[2]

    # each failing test is an annotation at its file and line
    annotations = harness.github.check_run_annotations(REPO, check["id"])
    by_title = {a["title"]: a for a in annotations}
    assert set(by_title) == {BROKEN, "tests/models/mixed/test_mixed.py::test_c"}
    broken = by_title[BROKEN]
    assert (broken["path"], broken["start_line"], broken["end_line"]) == (
        "tests/models/broken/test_broken.py",
        2,
        2,
    )
    assert broken["annotation_level"] == "failure"
    assert "assert 6 == 7" in broken["message"]
    assert "AssertionError" in broken["raw_details"]
    assert by_title["tests/models/mixed/test_mixed.py::test_c"]["start_line"] == 13

    # the button, and the commit status untouched beside it
    assert [a["identifier"] for a in check["actions"]] == ["rerun_failed"]
    (status, *_) = harness.github.statuses(REPO, sha)
    assert (status["context"], status["state"]) == ("pytest/custom-tests", "failure")


async def test_a_passing_run_concludes_success_with_no_button_and_no_annotation(harness, repo):
    await _run_slow(harness, repo, "run-slow: toy")
    (check,) = harness.github.check_runs(REPO, head(harness, repo))
    assert (check["status"], check["conclusion"]) == ("completed", "success")
    assert check["actions"] == []
    assert check["output"]["annotations_count"] == 0
    assert check["output"]["title"] == "Passed: 1 passed"


async def test_more_than_fifty_failures_are_annotated_fifty_a_request(harness, repo):
    await _run_slow(harness, repo, "run-slow: many")
    (check,) = harness.github.check_runs(REPO, head(harness, repo))
    annotations = harness.github.check_run_annotations(REPO, check["id"])
    assert len(annotations) == MANY
    assert len({a["title"] for a in annotations}) == MANY  # each sent once
    sent = [
        len(r.json["output"]["annotations"])
        for r in _check_requests(harness)
        if (r.json.get("output") or {}).get("annotations")
    ]
    assert sent == [50, MANY - 50]
    assert all(r.status in (200, 201) for r in _check_requests(harness))
    assert f"{MANY} failing tests: {MANY} annotated" in check["output"]["summary"]


async def test_a_maintainers_click_on_re_run_failed_reruns_only_the_failed_tests(harness, repo):
    sha = head(harness, repo)
    await _run_slow(harness, repo, "run-slow: toy, broken")
    (first,) = harness.github.check_runs(REPO, sha)
    sent = await _click(harness, first["id"], "maint")
    assert sent.status == 202
    rerun, _ = await _runs(harness, repo)
    assert rerun.spec["failed_only"] is True and rerun.requested_by == "maint"
    assert rerun.head_sha == sha
    jobs = await harness.runtime.jobs.jobs_of(rerun.id)
    assert [(j.spec["folder"], j.spec["tests"]) for j in jobs] == [("models/broken", [BROKEN])]
    # the re-run has a check run of its own, with the button again: it still fails
    older, newer = harness.github.check_runs(REPO, sha)
    assert older["id"] == first["id"] and newer["external_id"] == str(rerun.id)
    assert newer["conclusion"] == "failure"
    assert [a["identifier"] for a in newer["actions"]] == ["rerun_failed"]
    assert any("only the jobs that failed" in body for body in bot_comments(harness, repo))


async def test_a_click_by_someone_who_may_not_run_slow_tests_is_refused(harness, repo):
    await _run_slow(harness, repo, "run-slow: broken")
    (check,) = harness.github.check_runs(REPO, head(harness, repo))
    await _click(harness, check["id"], "reader")
    await _click(harness, check["id"], "reader")  # twice: one reply
    assert len(await _runs(harness, repo)) == 1
    replies = [b for b in bot_comments(harness, repo) if "slow tests run only for" in b]
    assert len(replies) == 1
    assert replies[0].startswith("@reader: slow tests run only for people with `write`")
    # the button is still the maintainers'
    await _click(harness, check["id"], "maint")
    assert len(await _runs(harness, repo)) == 2


async def test_a_replayed_click_starts_one_run(harness, repo):
    await _run_slow(harness, repo, "run-slow: broken")
    (check,) = harness.github.check_runs(REPO, head(harness, repo))
    payload = harness.github.check_run_action_payload(REPO, check["id"], "rerun_failed", "maint")
    first = await harness.deliver("check_run", payload)
    again = await harness.deliver("check_run", payload, delivery_id=first.delivery_id)
    await harness.deliver("check_run", payload)  # the same click under a new delivery id
    await harness.settle_runs()
    assert (first.status, again.status) == (202, 200)
    assert len(await _runs(harness, repo)) == 2


async def test_a_click_on_a_check_run_the_bot_did_not_make_is_ignored(harness, repo):
    sha = head(harness, repo)
    await _run_slow(harness, repo, "run-slow: broken")
    (run,) = await _runs(harness, repo)
    async with _client(harness) as gh:
        other = await gh.post(
            f"/repos/{REPO}/check-runs",
            data={
                "name": "someone else's",
                "head_sha": sha,
                "external_id": str(run.id),  # a number that happens to be a run of ours
                "conclusion": "failure",
                "output": {"title": "t", "summary": "s"},
                "actions": [{"label": "go", "description": "d", "identifier": "rerun_failed"}],
            },
        )
    await _click(harness, other["id"], "maint")
    assert len(await _runs(harness, repo)) == 1


async def test_a_click_after_the_pr_moved_runs_nothing_and_says_why(harness, repo):
    await _run_slow(harness, repo, "run-slow: broken")
    (check,) = harness.github.check_runs(REPO, head(harness, repo))
    harness.github.commit(REPO, "feature", {"src.py": "x = 2\n"}, author="carol")
    await _click(harness, check["id"], "maint")
    assert len(await _runs(harness, repo)) == 1
    assert any(
        "older than the pull request's latest commit" in b for b in bot_comments(harness, repo)
    )


async def test_with_a_personal_token_the_comment_and_status_complete_without_a_check_run(
    harness, repo
):
    harness.github.personal_token = True
    sha = head(harness, repo)
    await _run_slow(harness, repo, "run-slow: broken")
    (comment,) = bot_comments(harness, repo)
    assert "Finished, failed" in comment
    assert harness.github.statuses(REPO, sha)[0]["state"] == "failure"
    assert harness.github.check_runs(REPO) == []
    (refused,) = _check_requests(harness)  # asked once, not at every report
    assert (refused.method, refused.status) == ("POST", 403)
    (run,) = await _runs(harness, repo)
    assert run.reported
    assert (await harness.runtime.jobs.report_state(run.id)).check_run_id == 0


async def test_another_check_run_error_fails_the_report_which_is_retried(harness, repo):
    harness.runtime.jobs.report_retry_s = 0.05
    harness.github.fail_next("PATCH", r"/check-runs/\d+$", 422)
    sha = head(harness, repo)
    await _run_slow(harness, repo, "run-slow: broken")
    assert any(r.status == 422 for r in _check_requests(harness))
    (check,) = harness.github.check_runs(REPO, sha)
    assert (check["status"], check["conclusion"]) == ("completed", "failure")
    assert len(harness.github.check_run_annotations(REPO, check["id"])) == 1
    assert "Finished, failed" in bot_comments(harness, repo)[0]


async def test_a_check_run_made_before_a_crash_is_found_again_not_made_twice(harness, repo):
    payload = harness.github.issue_comment_payload(REPO, repo, "run-slow: slow", "maint")
    await harness.deliver("issue_comment", payload)
    jobs = harness.runtime.jobs
    async with asyncio.timeout(30):
        while True:
            runs = await _runs(harness, repo)
            if runs and (await jobs.report_state(runs[0].id)).check_run_id:
                break
            await asyncio.sleep(0.02)
    # As if the process had died between creating the check run and storing its id.
    await jobs.edit_report_state(runs[0].id, lambda s: dataclasses.replace(s, check_run_id=None))
    await harness.settle_runs()
    (check,) = harness.github.check_runs(REPO, head(harness, repo))
    assert (check["status"], check["conclusion"]) == ("completed", "success")
    assert (await jobs.report_state(runs[0].id)).check_run_id == check["id"]
    lookups = [
        r for r in harness.github.requests if r.path.endswith(f"/{check['head_sha']}/check-runs")
    ]
    assert len(lookups) == 2  # before creating it, and after its id was lost


# --------------------------------------------------------------------------- the sandbox's rules


async def test_the_sandbox_checks_api_answers_as_github_does(harness, repo):
    sha = head(harness, repo)
    one = {"path": "a.py", "start_line": 1, "end_line": 1, "annotation_level": "failure"}
    output = {"title": "t", "summary": "s"}
    async with _client(harness) as gh:
        url = f"/repos/{REPO}/check-runs"
        refused = [
            {"head_sha": sha},
            {"name": "x"},
            {"name": "x", "head_sha": "0" * 40},
            {"name": "x", "head_sha": sha, "conclusion": "stale"},
            {"name": "x", "head_sha": sha, "status": "completed"},
            {"name": "x", "head_sha": sha, "output": {"title": "t"}},
            {
                "name": "x",
                "head_sha": sha,
                "output": {**output, "annotations": [{**one, "message": "m"}] * 51},
            },
            {"name": "x", "head_sha": sha, "output": {**output, "annotations": [one]}},
            {
                "name": "x",
                "head_sha": sha,
                "actions": [{"label": "x" * 21, "description": "d", "identifier": "i"}],
            },
            {
                "name": "x",
                "head_sha": sha,
                "actions": [{"label": "l", "description": "d" * 41, "identifier": "i"}],
            },
            {
                "name": "x",
                "head_sha": sha,
                "actions": [{"label": "l", "description": "d", "identifier": "i" * 21}],
            },
        ]
        for body in refused:
            with pytest.raises(gidgethub.BadRequest) as caught:
                await gh.post(url, data=body)
            assert caught.value.status_code == 422, body
        made = await gh.post(url, data={"name": "lint", "head_sha": sha, "external_id": "7"})
        assert (made["status"], made["conclusion"]) == ("queued", None)
        assert [p["number"] for p in made["pull_requests"]] == [repo]
        for n in (2, 3):  # annotations add up over requests
            batch = [{**one, "message": f"m{n}-{i}"} for i in range(n)]
            await gh.patch(made["url"], data={"output": {**output, "annotations": batch}})
        done = await gh.patch(made["url"], data={"conclusion": "success"})
        assert (done["status"], done["conclusion"]) == ("completed", "success")
        assert done["output"]["annotations_count"] == 5
        listed = [a async for a in gh.getiter(f"{made['url']}/annotations")]
        assert [a["message"] for a in listed] == ["m2-0", "m2-1", "m3-0", "m3-1", "m3-2"]
        found = [
            c
            async for c in gh.getiter(
                f"/repos/{REPO}/commits/{sha}/check-runs?check_name=lint",
                iterable_key="check_runs",
            )
        ]
        assert [c["id"] for c in found] == [made["id"]]
        harness.github.personal_token = True
        with pytest.raises(gidgethub.BadRequest) as caught:
            await gh.post(url, data={"name": "x", "head_sha": sha})
        assert caught.value.status_code == 403
        assert "personal access token" in str(caught.value)
        assert (await gh.getitem(made["url"]))["id"] == made["id"]  # reading is allowed
    with pytest.raises(ValueError, match="no button"):
        harness.github.check_run_action_payload(REPO, made["id"], "rerun_failed", "maint")
