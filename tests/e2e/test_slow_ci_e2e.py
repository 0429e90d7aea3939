"""`run-slow` end to end: the real server, the sandbox GitHub, real git and real pytest.

The served repository is small and made here: a passing folder, a failing one, one that prints
its environment, and slow ones, so each behaviour is one short run on this machine (no GPU:
`multi-gpu` jobs are skipped with the reason, as on any machine without one).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from tests.support.slow_ci import PAST, REPO, bot_comments, head, open_slow_pull

FILES = {
    "README.md": "toy\n",
    "tests/models/toy/test_toy.py": "def test_one():\n    assert 1 + 1 == 2\n",
    "tests/models/broken/test_broken.py": "def test_sums():\n    assert 6 == 7\n",
    "tests/models/envdump/test_env.py": (
        "import os\n\n\ndef test_shows_its_environment():\n"
        "    shown = [f'ENV {key}={value}' for key, value in sorted(os.environ.items())]\n"
        "    raise AssertionError('\\n'.join(shown))  # a failure's output is in the log\n"
    ),
    "tests/models/sleepy/test_sleep.py": (
        "import time\n\n\ndef test_sleeps():\n    time.sleep(60)\n"
    ),
    "tests/models/slow3/test_slow3.py": (
        "import time\n\n\ndef test_sleeps_a_little():\n    time.sleep(3)\n"
    ),
}


@pytest.fixture
def repo(harness):
    return open_slow_pull(harness, FILES)


async def _comment(harness, number: int, body: str, user: str = "maint", **kw) -> None:
    payload = harness.github.issue_comment_payload(REPO, number, body, user, **kw)
    sent = await harness.deliver("issue_comment", payload)
    assert sent.status == 202
    await harness.settle()


async def _until_a_job_runs(runtime, number: int) -> None:
    async with asyncio.timeout(30):
        while True:
            for run in await runtime.jobs.runs_of(REPO, number):
                if any(j.state == "running" for j in await runtime.jobs.jobs_of(run.id)):
                    return
            await asyncio.sleep(0.05)


def _statuses(harness, sha: str) -> list[tuple[str, str]]:
    """Newest first, as GitHub lists them."""
    return [(s["state"], s["description"]) for s in harness.github.statuses(REPO, sha)]


async def test_an_unauthorised_user_gets_one_line_and_nothing_runs(harness, repo):
    await _comment(harness, repo, "run-slow: toy", user="reader")
    (reply,) = bot_comments(harness, repo)
    assert "slow tests run only for people with `write` permission" in reply.splitlines()[0]
    assert _statuses(harness, head(harness, repo)) == []


async def test_a_comment_older_than_the_head_commit_runs_nothing(harness, repo):
    opened = harness.github.pull_request_payload(REPO, repo, "opened")
    assert (await harness.deliver("pull_request", opened)).status == 202  # the bot's record
    await harness.settle()
    older = (datetime.now(UTC) - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    await _comment(harness, repo, "run-slow: toy", created_at=older)
    (reply,) = bot_comments(harness, repo)
    assert "older than the pull request's latest commit" in reply
    assert _statuses(harness, head(harness, repo)) == []


async def test_a_passing_folder_reaches_success_with_one_comment_and_a_page(harness, repo):
    sha = head(harness, repo)
    await _comment(harness, repo, "run-slow: toy, nope")
    await harness.settle_runs()
    (comment,) = bot_comments(harness, repo)
    assert "This comment contains run-slow, running the specified jobs:" in comment
    assert "Finished, passed" in comment
    assert "nope" in comment  # dropped, with its reason
    states = _statuses(harness, sha)
    assert states[0][0] == "success", states
    assert ("pending", "Slow CI job") in states
    (status,) = [s for s in harness.github.statuses(REPO, sha) if s["state"] == "success"]
    assert status["context"] == "pytest/custom-tests"
    async with aiohttp.ClientSession() as session, session.get(status["target_url"]) as page:
        text = await page.text()
    assert page.status == 200
    assert "single-gpu" in text and "passed" in text
    assert "no multi-GPU machine" in text  # the multi-gpu job says why it was skipped


async def test_a_failing_slow_test_reaches_failure_with_its_assertion(harness, repo):
    sha = head(harness, repo)
    await _comment(harness, repo, "run-slow: broken")
    await harness.settle_runs()
    (comment,) = bot_comments(harness, repo)
    assert "Finished, failed" in comment
    assert "assert 6 == 7" in comment
    assert _statuses(harness, sha)[0][0] == "failure"


async def test_a_test_printing_its_environment_sees_no_token_or_secret(harness, repo):
    await _comment(harness, repo, "run-slow: envdump")
    await harness.settle_runs()
    runtime = harness.runtime
    (run,) = await runtime.jobs.runs_of(REPO, repo)
    jobs = await runtime.jobs.jobs_of(run.id)
    log = "\n".join([await runtime.jobs.job_log(j.id) or "" for j in jobs])
    assert "ENV RUN_SLOW=yes" in log
    for secret in harness.settings.secrets:
        assert secret not in log
    assert "GITHUB_" not in log and "SLACK_" not in log and "BOT_" not in log


async def test_a_newer_comment_cancels_the_running_run_and_its_process(harness, repo):
    sha = head(harness, repo)
    await _comment(harness, repo, "run-slow: sleepy")
    runtime = harness.runtime
    await _until_a_job_runs(runtime, repo)
    await _comment(harness, repo, "run-slow: toy")
    await harness.settle_runs(within=30)  # far less than the 60 s the sleeping test wants
    first, second = sorted(bot_comments(harness, repo), key=lambda body: "Superseded" in body)
    assert "Superseded" in second and "Finished, passed" in first
    older = (await runtime.jobs.runs_of(REPO, repo))[-1]
    assert older.state == "cancelled"
    assert {j.state for j in await runtime.jobs.jobs_of(older.id)} <= {"cancelled", "skipped"}
    assert _statuses(harness, sha)[0][0] == "success"


async def test_the_head_moving_before_the_checkout_ends_the_run_in_error(harness, repo):
    # slow3 holds the machine for a while and toy waits for it checked out: both job slots are
    # taken, so the next run's checkout starts only after the head below has moved
    await _comment(harness, repo, "run-slow: slow3, toy")
    harness.github.commit(REPO, "other", {"b.py": "y\n"}, author="dave", date=PAST, pushed_at=PAST)
    other = harness.github.open_pull(REPO, "other", author="dave")
    approved = head(harness, other)
    await _comment(harness, other, "run-slow: toy")
    harness.github.commit(REPO, "other", {"b.py": "z\n"}, author="dave")  # after the approval
    await harness.settle_runs()
    (comment,) = bot_comments(harness, other)
    assert "Could not run" in comment and "head moved" in comment
    assert _statuses(harness, approved)[0][0] == "error"
    assert _statuses(harness, head(harness, other)) == []  # the new commit never ran


async def test_a_restart_mid_run_leaves_no_pending_status(harness, repo):
    sha = head(harness, repo)
    await _comment(harness, repo, "run-slow: slow3")
    runtime = harness.runtime
    await _until_a_job_runs(runtime, repo)
    await harness.stop_bot()
    await harness.start_bot()
    await harness.settle_runs()
    runs = await harness.runtime.jobs.runs_of(REPO, repo)
    jobs = [(j.state, j.reason) for r in runs for j in await harness.runtime.jobs.jobs_of(r.id)]
    assert _statuses(harness, sha)[0][0] == "success", (_statuses(harness, sha), jobs)


async def test_a_redelivered_comment_starts_no_second_run(harness, repo):
    payload = harness.github.issue_comment_payload(REPO, repo, "run-slow: toy", "maint")
    await harness.deliver("issue_comment", payload)
    await harness.deliver("issue_comment", payload)  # a replay under a new delivery id
    await harness.settle_runs()
    assert len(await harness.runtime.jobs.runs_of(REPO, repo)) == 1
    assert len(bot_comments(harness, repo)) == 1


async def test_the_run_slow_label_runs_the_models_named_in_the_head_commit(harness, repo):
    harness.github.commit(
        REPO, "feature", {"src.py": "x = 2\n"}, author="carol", message="[run-slow] toy",
        date=PAST,
    )  # fmt: skip
    sha = head(harness, repo)
    harness.github.add_label(REPO, repo, "run-slow")
    payload = harness.github.pull_request_payload(
        REPO, repo, "labeled", sender="maint", label="run-slow"
    )
    await harness.deliver("pull_request", payload)
    await harness.settle_runs()
    (comment,) = bot_comments(harness, repo)
    assert "models/toy" in comment and "Finished, passed" in comment
    assert _statuses(harness, sha)[0][0] == "success"


async def test_a_later_push_by_someone_not_authorised_asks_a_maintainer(harness, repo):
    harness.github.add_label(REPO, repo, "run-slow")
    before = head(harness, repo)
    harness.github.commit(REPO, "feature", {"src.py": "evil\n"}, author="reader")
    payload = harness.github.pull_request_payload(
        REPO, repo, "synchronize", sender="reader", before=before
    )
    await harness.deliver("pull_request", payload)
    await harness.settle_runs()
    (reply,) = bot_comments(harness, repo)
    assert "maintainer" in reply.lower()
    assert _statuses(harness, head(harness, repo)) == []
    assert await harness.runtime.jobs.runs_of(REPO, repo) == []


async def test_a_pr_changing_model_tests_gets_one_reminder_ever(harness):
    harness.github.create_repo(REPO, files=FILES, collaborators={"maint": "write"})
    harness.github.commit(
        REPO, "tune", {"tests/models/toy/test_toy.py": "def test_two():\n    pass\n"},
        author="carol",
    )  # fmt: skip
    number = harness.github.open_pull(REPO, "tune", author="carol")
    payload = harness.github.pull_request_payload(REPO, number, "opened")
    await harness.deliver("pull_request", payload)
    before = head(harness, number)
    harness.github.commit(REPO, "tune", {"tests/models/toy/test_toy.py": "x = 3\n"}, author="carol")
    payload = harness.github.pull_request_payload(REPO, number, "synchronize", before=before)
    await harness.deliver("pull_request", payload)
    await harness.settle()
    (reminder,) = bot_comments(harness, number)
    assert "run-slow: toy" in reminder


async def test_run_slow_failed_reruns_only_what_failed_before(harness, repo):
    await _comment(harness, repo, "run-slow: toy, broken")
    await harness.settle_runs()
    await _comment(harness, repo, "run-slow --failed")
    await harness.settle_runs()
    runs = await harness.runtime.jobs.runs_of(REPO, repo)  # newest first
    rerun = await harness.runtime.jobs.jobs_of(runs[0].id)
    assert [(j.spec["folder"], j.spec["tests"]) for j in rerun] == [
        ("models/broken", ["tests/models/broken/test_broken.py::test_sums"])
    ]
    comment = next(b for b in bot_comments(harness, repo) if "only the jobs that failed" in b)
    assert "Finished, failed" in comment


async def test_a_finished_run_sends_its_summary_to_the_configured_slack_channel(harness):
    harness.github.create_repo(
        REPO,
        files={**FILES, ".github/bot.toml": '[slow_ci]\nreminder = false\nchannel = "ci"\n'},
        collaborators={"maint": "write"},
        pushed_at=PAST,
    )
    harness.github.commit(
        REPO, "feature", {"src.py": "x = 1\n"}, author="carol", date=PAST, pushed_at=PAST
    )
    number = harness.github.open_pull(REPO, "feature", author="carol")
    await _comment(harness, number, "run-slow: toy")
    await harness.settle_runs()
    (message,) = harness.slack.messages
    assert message["channel"] == "ci"
    assert "passed" in message["text"]
