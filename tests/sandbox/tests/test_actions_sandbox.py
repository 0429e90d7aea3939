"""The sandbox's GitHub Actions: a dispatched `slow-tests.yml` really runs its tests, answers
GitHub's Actions API in GitHub's shapes and codes, and tells the App with signed webhooks."""

from __future__ import annotations

import asyncio
import io
import json
import os
import zipfile

import gidgethub
import pytest
from aiohttp import web
from gidgethub import ValidationFailure
from gidgethub.aiohttp import GitHubAPI
from gidgethub.apps import get_installation_access_token
from gidgethub.sansio import Event

from bot.jobs.runners.junit import parse_junit
from tests.sandbox import SandboxGitHub
from tests.sandbox.http import serve

REPO = "acme/models"
WORKFLOW = "slow-tests.yml"
DISPATCH = f"/repos/{REPO}/actions/workflows/{WORKFLOW}/dispatches"
SECRET = "hook-secret"
CORRELATION = "c0ffee12ab34cd56"
LABELS = ["self-hosted", "gpu-1"]
SLOW_TESTS_YML = """\
name: slow tests
run-name: >-
  slow tests ${{ inputs.folder }} (${{ inputs.machine_type }})
  [${{ inputs.correlation }}] run ${{ inputs.run_id }} job ${{ inputs.job_id }}
on:
  workflow_dispatch:
    inputs:
      folder: {type: string, required: true}
      machine_type: {type: choice, required: true, options: [single-gpu, multi-gpu]}
      sha: {type: string, required: true}
      run_id: {type: string, required: true}
      job_id: {type: string, required: true}
      correlation: {type: string, required: true}
      runner_labels: {type: string, required: true}
      tests: {type: string, required: false, default: ""}
      pr: {type: string, required: false}
permissions:
  contents: read
jobs:
  tests:
    runs-on: ${{ fromJSON(inputs.runner_labels) }}
    steps:
      - uses: actions/checkout@v4
        with: {ref: "${{ inputs.sha }}", persist-credentials: false}
      - run: >-
          RUN_SLOW=yes python -m pytest -v -rsfE --junitxml=reports/junit.xml
          tests/${{ inputs.folder }}
"""
TOY_TESTS = """\
import os


def test_passes():
    assert os.environ["RUN_SLOW"] == "yes"
    assert "GITHUB_TOKEN" not in os.environ  # nothing of the sandbox's environment


def test_fails():
    assert 1 + 1 == 3
"""
SLEEPY_TESTS = """\
import os
import pathlib
import time


def test_sleeps():
    pathlib.Path(%r).write_text(str(os.getpid()))
    time.sleep(120)
"""


@pytest.fixture
def pid_file(tmp_path):
    """Where the sleeping test writes its process id, to prove it is gone after a cancel."""
    return tmp_path / "sleepy.pid"


@pytest.fixture
def sha(github, pid_file):
    repo = github.create_repo(
        REPO,
        files={
            f".github/workflows/{WORKFLOW}": SLOW_TESTS_YML,
            ".github/workflows/lint.yml": "name: lint\non: push\njobs: {}\n",
            "tests/models/toy/test_toy.py": TOY_TESTS,
            "tests/models/sleepy/test_sleepy.py": SLEEPY_TESTS % str(pid_file),
        },
    )
    return repo.git.branch_sha("main")


@pytest.fixture
async def installation(github, session):
    """gidgethub with an installation token, as the bot's runner talks to GitHub."""
    minter = GitHubAPI(session, "t", base_url=github.url)
    answer = await get_installation_access_token(
        minter, installation_id="1", app_id="1", private_key=github.private_key_pem
    )
    return GitHubAPI(session, "t", oauth_token=answer["token"], base_url=github.url)


@pytest.fixture
async def hooks(github):
    """A receiver that accepts only deliveries signed with the App's secret."""
    received: list[Event] = []

    async def hook(request: web.Request) -> web.Response:
        try:
            event = Event.from_http(request.headers, await request.read(), secret=SECRET)
        except ValidationFailure:
            return web.Response(status=401)
        received.append(event)
        return web.Response(status=202)

    app = web.Application()
    app.router.add_post("/webhook", hook)
    runner, url = await serve(app, "127.0.0.1", 0)
    github.webhook_target(f"{url}/webhook", SECRET)
    yield received
    await runner.cleanup()


def inputs(sha: str, folder: str = "models/toy", **extra: str) -> dict[str, str]:
    return {
        "folder": folder,
        "machine_type": "single-gpu",
        "sha": sha,
        "run_id": "12",
        "job_id": "34",
        "correlation": CORRELATION,
        "runner_labels": json.dumps(LABELS),
        "tests": "",
        "pr": "7",
        **extra,
    }


async def until(predicate, within: float = 20.0) -> None:
    async with asyncio.timeout(within):
        while not await predicate():
            await asyncio.sleep(0.02)


async def test_a_dispatched_run_tests_the_pinned_commit_and_keeps_its_reports(
    github, sha, installation, session, hooks, monkeypatch
):
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_must_not_reach_the_tests")
    hold = github.hold_next_run()
    answer = await installation.post(
        DISPATCH, data={"ref": "main", "inputs": inputs(sha), "return_run_details": True}
    )
    run_id = answer["workflow_run_id"]
    assert answer["run_url"] == f"{github.url}/repos/{REPO}/actions/runs/{run_id}"
    assert answer["html_url"] == f"https://github.com/{REPO}/actions/runs/{run_id}"
    await asyncio.wait_for(hold.reached.wait(), 10)
    run = await installation.getitem(f"/repos/{REPO}/actions/runs/{run_id}")
    assert (run["status"], run["conclusion"], run["event"]) == ("queued", None, "workflow_dispatch")
    assert run["display_title"] == (
        f"slow tests models/toy (single-gpu) [{CORRELATION}] run 12 job 34"
    )
    assert (run["name"], run["path"], run["head_sha"], run["head_branch"]) == (
        "slow tests",
        f".github/workflows/{WORKFLOW}",
        sha,
        "main",
    )
    (job,) = (await installation.getitem(run["jobs_url"]))["jobs"]
    assert (job["status"], job["runner_name"], job["labels"]) == ("queued", None, LABELS)

    hold.release()

    async def moved() -> bool:
        return (await installation.getitem(run["url"]))["status"] != "queued"

    await until(moved)
    assert (await installation.getitem(run["url"]))["status"] == "in_progress"
    await github.actions_idle(within=60)

    run = await installation.getitem(run["url"])
    assert (run["status"], run["conclusion"]) == ("completed", "failure")
    jobs = await installation.getitem(run["jobs_url"])
    assert jobs["total_count"] == 1
    assert jobs["jobs"][0]["name"] == "tests"
    assert jobs["jobs"][0]["conclusion"] == "failure"
    assert jobs["jobs"][0]["runner_name"] == "sandbox-runner-1"
    assert jobs["jobs"][0]["labels"] == LABELS

    artifacts = await installation.getitem(run["artifacts_url"])
    (artifact,) = artifacts["artifacts"]
    assert (artifacts["total_count"], artifact["name"], artifact["expired"]) == (
        1,
        f"slow-tests-{CORRELATION}",
        False,
    )
    assert artifact["workflow_run"]["id"] == run_id
    token = {"Authorization": f"token {installation.oauth_token}"}
    async with session.get(
        artifact["archive_download_url"], headers=token, allow_redirects=False
    ) as redirect:
        assert redirect.status == 302
        location = redirect.headers["Location"]
    assert not location.startswith(github.url)  # blob storage: another origin
    async with session.get(location) as blob:
        assert (blob.status, blob.content_type) == (200, "application/zip")
        data = await blob.read()
    assert len(data) == artifact["size_in_bytes"]
    async with session.get(location, headers=token) as refused:
        assert refused.status == 400  # the storage refuses a GitHub token
    async with session.get(artifact["archive_download_url"], headers=token) as followed:
        assert await followed.read() == data  # aiohttp drops the token on the way
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert sorted(archive.namelist()) == ["junit.xml", "log.txt"]
        report = parse_junit(archive.read("junit.xml"))
        log = archive.read("log.txt").decode()
    assert (report.passed, report.failed) == (1, 1)
    assert [t.node_id for t in report.problems] == ["tests/models/toy/test_toy.py::test_fails"]
    assert "test_toy.py::test_passes PASSED" in log
    assert "FAILED tests/models/toy/test_toy.py::test_fails" in log

    github.expire_download_links()
    async with session.get(location) as stale:
        assert stale.status == 403
    github.expire_artifact(REPO, artifact["id"])
    async with session.get(artifact["archive_download_url"], headers=token) as gone:
        assert (gone.status, (await gone.json())["message"]) == (410, "Artifact has expired")

    assert [(e.event, e.data["action"]) for e in hooks] == [
        ("workflow_run", "requested"),
        ("workflow_job", "queued"),
        ("workflow_run", "in_progress"),
        ("workflow_job", "in_progress"),
        ("workflow_job", "completed"),
        ("workflow_run", "completed"),
    ]
    assert {e.data["installation"]["id"] for e in hooks} == {github.installation_id}
    assert {e.data["repository"]["full_name"] for e in hooks} == {REPO}
    assert hooks[0].data["workflow"]["path"] == f".github/workflows/{WORKFLOW}"
    assert hooks[0].data["workflow_run"]["status"] == "queued"
    assert hooks[3].data["workflow_job"]["runner_name"] == "sandbox-runner-1"
    assert hooks[-1].data["workflow_run"]["conclusion"] == "failure"
    assert all(d.status == 202 for d in github.sent_webhooks())


async def test_dispatches_are_refused_as_github_refuses_them(github, sha, installation):
    async def refused(body: dict, workflow: str = WORKFLOW) -> tuple[int, str]:
        path = f"/repos/{REPO}/actions/workflows/{workflow}/dispatches"
        with pytest.raises(gidgethub.BadRequest) as caught:
            await installation.post(path, data=body)
        return caught.value.status_code, str(caught.value)

    good = inputs(sha)
    assert await refused({"ref": "main", "inputs": good}, "nope.yml") == (404, "Not Found")
    assert await refused({"ref": "main", "inputs": {**good, "x": "1"}}) == (
        422,
        'Unexpected inputs provided: ["x"]',
    )
    missing = {k: v for k, v in good.items() if k != "folder"}
    assert await refused({"ref": "main", "inputs": missing}) == (
        422,
        "Required input 'folder' not provided",
    )
    assert await refused({"ref": "nope", "inputs": good}) == (422, "No ref found for: nope")
    assert await refused({"ref": "main"}, "lint.yml") == (
        422,
        "Workflow does not have 'workflow_dispatch' trigger",
    )
    assert github.workflow_runs(REPO) == []
    assert len(github.dispatches(REPO)) == 5  # every body that reached the endpoint


async def test_an_older_server_refuses_return_run_details_and_the_run_is_found_by_title(
    github, sha, installation
):
    github.actions_run_details = False
    body = {"ref": "main", "inputs": inputs(sha, tests="tests/models/toy/test_toy.py::test_passes")}
    with pytest.raises(gidgethub.BadRequest) as caught:
        await installation.post(DISPATCH, data={**body, "return_run_details": True})
    assert caught.value.status_code == 422
    assert str(caught.value) == 'Invalid request.\n\n"return_run_details" is not a permitted key.'
    assert await installation.post(DISPATCH, data=body) is None  # 204
    assert [b.get("return_run_details") for b in github.dispatches(REPO)] == [True, None]

    listed = await installation.getitem(
        f"/repos/{REPO}/actions/workflows/{WORKFLOW}/runs?event=workflow_dispatch&per_page=10"
    )
    (run,) = [r for r in listed["workflow_runs"] if f"[{CORRELATION}]" in r["display_title"]]
    assert listed["total_count"] == 1
    await github.actions_idle(within=60)
    run = await installation.getitem(run["url"])
    assert (run["status"], run["conclusion"]) == ("completed", "success")  # the one node id
    done = await installation.getitem(
        f"/repos/{REPO}/actions/workflows/{WORKFLOW}/runs?status=success"
    )
    assert [r["id"] for r in done["workflow_runs"]] == [run["id"]]


async def test_a_cancel_kills_the_running_tests_and_a_completed_run_cannot_be_cancelled(
    github, sha, installation, hooks, pid_file
):
    answer = await installation.post(
        DISPATCH,
        data={"ref": "main", "inputs": inputs(sha, "models/sleepy"), "return_run_details": True},
    )
    url = answer["run_url"]

    async def sleeping() -> bool:
        return pid_file.exists() and pid_file.read_text().isdigit()

    await until(sleeping)
    pid = int(pid_file.read_text())
    assert (await installation.getitem(url))["status"] == "in_progress"
    assert await installation.post(f"{url}/cancel", data={}) == {}
    await github.actions_idle(within=30)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the test's process is gone, not left sleeping
    run = await installation.getitem(url)
    assert (run["status"], run["conclusion"]) == ("completed", "cancelled")
    assert hooks[-1].data["workflow_run"]["conclusion"] == "cancelled"
    with pytest.raises(gidgethub.BadRequest) as caught:
        await installation.post(f"{url}/cancel", data={})
    assert caught.value.status_code == 409
    assert str(caught.value) == "Cannot cancel a workflow run that is completed."
    assert "The operation was canceled." in github.job_log(REPO, answer["workflow_run_id"])


async def test_runs_beyond_the_runners_wait_queued_and_a_queued_run_can_be_cancelled(
    github, sha, installation, pid_file
):
    github.actions_concurrency = 1
    first = await installation.post(
        DISPATCH,
        data={"ref": "main", "inputs": inputs(sha, "models/sleepy"), "return_run_details": True},
    )

    async def sleeping() -> bool:
        return pid_file.exists()

    await until(sleeping)
    second = await installation.post(
        DISPATCH,
        data={"ref": "main", "inputs": inputs(sha), "return_run_details": True},
    )
    await asyncio.sleep(0.3)
    assert (await installation.getitem(second["run_url"]))["status"] == "queued"
    await installation.post(f"{second['run_url']}/cancel", data={})
    await installation.post(f"{first['run_url']}/cancel", data={})
    await github.actions_idle(within=30)
    queued = await installation.getitem(second["run_url"])
    assert (queued["status"], queued["conclusion"]) == ("completed", "cancelled")
    (job,) = (await installation.getitem(queued["jobs_url"]))["jobs"]
    assert (job["conclusion"], job["runner_name"]) == ("cancelled", None)


async def test_a_run_past_its_time_limit_is_killed_and_timed_out(github, sha, installation):
    github.actions_timeout_s = 1.5
    answer = await installation.post(
        DISPATCH,
        data={"ref": "main", "inputs": inputs(sha, "models/sleepy"), "return_run_details": True},
    )
    await github.actions_idle(within=30)
    run = await installation.getitem(answer["run_url"])
    assert (run["status"], run["conclusion"]) == ("completed", "timed_out")
    (artifact,) = (await installation.getitem(run["artifacts_url"]))["artifacts"]
    assert artifact["name"] == f"slow-tests-{CORRELATION}"  # uploaded `if: always()`


async def test_an_app_without_the_actions_permission_may_not_dispatch(tmp_path, session):
    hub = SandboxGitHub(tmp_path / "narrow", permissions={"metadata": "read", "contents": "read"})
    await hub.start()
    try:
        hub.create_repo(REPO, files={f".github/workflows/{WORKFLOW}": SLOW_TESTS_YML})
        minter = GitHubAPI(session, "t", base_url=hub.url)
        answer = await get_installation_access_token(
            minter, installation_id="1", app_id="1", private_key=hub.private_key_pem
        )
        app = GitHubAPI(session, "t", oauth_token=answer["token"], base_url=hub.url)
        with pytest.raises(gidgethub.BadRequest) as caught:
            await app.post(DISPATCH, data={"ref": "main", "inputs": {}})
        assert (caught.value.status_code, str(caught.value)) == (
            403,
            "Resource not accessible by integration",
        )
    finally:
        await hub.close()


async def test_a_dropped_webhook_is_not_sent_but_the_run_still_completes(
    github, sha, installation, hooks
):
    github.drop_webhooks("workflow_job", "completed")
    answer = await installation.post(
        DISPATCH,
        data={"ref": "main", "inputs": inputs("0" * 40), "return_run_details": True},
    )
    await github.actions_idle(within=30)
    assert ("workflow_job", "completed") not in [(e.event, e.data["action"]) for e in hooks]
    assert [d.dropped for d in github.sent_webhooks("workflow_job", "completed")] == [True]
    (job,) = (await installation.getitem(f"{answer['run_url']}/jobs"))["jobs"]
    assert (job["status"], job["conclusion"]) == ("completed", "failure")
    log = github.job_log(REPO, answer["workflow_run_id"])
    assert f"The commit {'0' * 40} is not in {REPO}" in log
    artifacts = await installation.getitem(f"{answer['run_url']}/artifacts")
    assert artifacts["total_count"] == 0  # no test ran, no reports to keep


@pytest.mark.parametrize(
    ("conclusion", "words"),
    [("failure", "lost communication with the server"), ("cancelled", "shutdown signal")],
)
async def test_a_lost_runner_ends_the_job_with_githubs_words_and_uploads_nothing(
    github, sha, installation, conclusion, words
):
    github.lose_runner(conclusion)
    answer = await installation.post(
        DISPATCH, data={"ref": "main", "inputs": inputs(sha), "return_run_details": True}
    )
    await github.actions_idle(within=30)
    run = await installation.getitem(answer["run_url"])
    assert (run["status"], run["conclusion"]) == ("completed", conclusion)
    (job,) = (await installation.getitem(run["jobs_url"]))["jobs"]
    assert (job["conclusion"], job["runner_name"]) == (conclusion, "sandbox-runner-1")
    assert words in github.job_log(REPO, answer["workflow_run_id"])
    assert (await installation.getitem(run["artifacts_url"]))["total_count"] == 0
    # Only the next run: the one after it has its runner.
    again = await installation.post(
        DISPATCH, data={"ref": "main", "inputs": inputs(sha), "return_run_details": True}
    )
    await github.actions_idle(within=30)
    assert (await installation.getitem(again["run_url"]))["conclusion"] == "failure"  # a test fails
    assert len(github.artifacts(REPO, again["workflow_run_id"])) == 1
