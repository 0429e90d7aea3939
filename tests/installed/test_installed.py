"""The whole scenario through an installed bot: reviewers, `run-slow` passing, failing and with
an optional dependency group, `/style`, the new-model alert, a restart in the middle of a job,
and a redelivery. See conftest.py for how the two processes are started."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
import time
from typing import Any

import pytest

from tests.installed.conftest import Installed
from tests.installed.processes import (
    BASICS,
    Sandbox,
    next_second,
    procfile_command,
    readme_variables,
    unit_command,
    wait_for,
)

REPO = "acme/toy"
CONTEXT = "pytest/custom-tests"

#: The served repository: pytest only, and one optional group (six, small and available from
#: the machine's package index) that a test folder imports.
FILES = {
    "pyproject.toml": (
        '[project]\nname = "toy"\nversion = "0"\ndependencies = []\n\n'
        '[project.optional-dependencies]\nspeed = ["six"]\n'
    ),
    ".github/review-owners": "*  @alice @bob\n/tests/  @carol @dave\n",
    ".github/bot.toml": '[slow_ci]\nmachine_types = ["single-gpu"]\n',
    "toy/__init__.py": "def double(x):\n    return x * 2\n",
    "tests/passing/test_ok.py": (
        "from toy import double\n\n\ndef test_double():\n    assert double(2) == 4\n"
    ),
    "tests/failing/test_bad.py": (
        "from toy import double\n\n\ndef test_triple():\n"
        "    assert double(3) == 9, 'double is not triple'\n"
    ),
    "tests/optional/test_six.py": (
        "import six\n\n\ndef test_six_is_installed():\n    assert six.PY3\n"
    ),
    "tests/slow/test_sleep.py": "import time\n\n\ndef test_sleep():\n    time.sleep(4)\n",
    "model_lib/models/base/modeling_base.py": "class Base:\n    pass\n",
}
PEOPLE = {
    "alice": "write",
    "bob": "write",
    "carol": "write",
    "dave": "write",
    "maintainer": "write",
    "admin": "admin",
}


@pytest.fixture(scope="module")
def world(installed: Installed) -> Installed:
    installed.sandbox.call("create_repo", REPO, files=FILES, collaborators=PEOPLE)
    return installed


def open_pull(sandbox: Sandbox, branch: str, files: dict[str, str], title: str) -> int:
    """A contributor's pull request, its `opened` delivery handled before anyone comments."""
    sandbox.call("commit", REPO, branch, files, author="contributor", message=title)
    number = sandbox.call("open_pull", REPO, branch, title=title, author="contributor")
    payload = sandbox.call("pull_request_payload", REPO, number, "opened")
    assert sandbox.deliver("pull_request", payload)["status"] == 202
    return number


def comment(sandbox: Sandbox, number: int, body: str, user: str) -> dict[str, Any]:
    payload = sandbox.call("issue_comment_payload", REPO, number, body, user)
    return sandbox.deliver("issue_comment", payload)


def head_sha(sandbox: Sandbox, number: int) -> str:
    return sandbox.call("pull_request_payload", REPO, number, "edited")["pull_request"]["head"][
        "sha"
    ]


def final_status(sandbox: Sandbox, sha: str, within: float = 60.0) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        ours = [s for s in sandbox.call("statuses", REPO, sha) if s["context"] == CONTEXT]
        return ours[0] if ours and ours[0]["state"] != "pending" else None  # newest first

    return wait_for(f"a final {CONTEXT} status on {sha[:12]}", done, within=within)


def bot_comments(sandbox: Sandbox, number: int) -> list[str]:
    return [
        c["body"]
        for c in sandbox.call("comments", REPO, number)
        if c["user"]["login"].endswith("[bot]")
    ]


def test_started_as_installed(world: Installed) -> None:
    """The command is the unit's (and the Procfile's), the variables only README's, and every
    path the bot uses lies under the folder it was started in."""
    bot = world.bot
    assert procfile_command()[:4] == ["python", "-m", "bot", "serve"]
    assert unit_command(bot.port)[1:4] == ["-m", "bot", "serve"]
    settings = set(bot.env) - set(BASICS) - {"HOME"}
    assert settings <= readme_variables(), settings - readme_variables()
    for name in ("BOT_DATABASE", "BOT_JOB_DIR", "BOT_ENV_CACHE", "BOT_TEST_PYTHON"):
        assert name not in bot.env
    assert "GITHUB_TOKEN" not in bot.env and bot.env["GITHUB_PRIVATE_KEY_PATH"]
    (paths,) = [line for line in bot.log_lines() if line["msg"] == "paths"][:1]
    assert paths["database"] == str(bot.folder / "var" / "bot.sqlite3")
    assert paths["job_dir"] == str(bot.folder / "var" / "jobs")
    assert paths["env_cache"] == str(bot.folder / "var" / "envs")
    assert (bot.folder / "var" / "bot.sqlite3").is_file()


def test_reviewers_and_run_slow_with_the_repository_dependencies(world: Installed) -> None:
    sandbox = world.sandbox
    number = open_pull(
        sandbox,
        "more-tests",
        {"tests/passing/test_more.py": "def test_more():\n    assert True\n"},
        "More tests",
    )
    users, _teams = wait_for(
        "reviewers to be requested",
        lambda: (found := sandbox.call("requested_reviewers", REPO, number))[0] and found,
    )
    assert sorted(users) == ["carol", "dave"]
    sha = head_sha(sandbox, number)

    # Passing, and the optional group installed although nothing asked for it.
    next_second()
    assert comment(sandbox, number, "run-slow: passing, optional", "maintainer")["status"] == 202
    status = final_status(sandbox, sha, within=90)
    body = bot_comments(sandbox, number)[-1]
    assert status["state"] == "success", body
    assert "optional" in body and "passing" in body
    assert status["target_url"].startswith(world.bot.url + "/runs/")

    # Failing: the run fails, the comment names the test.
    next_second()
    assert comment(sandbox, number, "run-slow: failing", "maintainer")["status"] == 202
    wait_for(
        "the failing run's status",
        lambda: final_status(sandbox, sha)["state"] == "failure",
        within=60,
    )
    assert "test_triple" in bot_comments(sandbox, number)[-1]
    assert (world.bot.folder / "var" / "envs").is_dir()  # built here, from pyproject.toml


def test_style_pushes_the_fixes(world: Installed) -> None:
    sandbox = world.sandbox
    ugly = "import sys\nimport os\n\ndef f(x,y):\n  return os.path.join(x,y)\n"
    number = open_pull(sandbox, "hurried", {"toy/paths.py": ugly}, "Paths")
    before = head_sha(sandbox, number)
    next_second()
    sent = comment(sandbox, number, "@bot /style", "admin")
    assert sent["status"] == 202

    def fixed() -> str | None:
        replies = [b for b in bot_comments(sandbox, number) if "Style fixes" in b]
        return replies[-1] if replies else None

    reply = wait_for("the /style reply", fixed, within=60)
    assert "Style fixes have been applied to 1 file" in reply and "`toy/paths.py`" in reply
    assert head_sha(sandbox, number) != before


def test_new_model_alert(world: Installed) -> None:
    sandbox = world.sandbox
    number = open_pull(
        sandbox,
        "add-tiny",
        {"model_lib/models/tiny/modeling_tiny.py": "class Tiny:\n    pass\n"},
        "Add Tiny",
    )
    before, after = sandbox.call("merge_pull", REPO, number, merged_by="alice")
    assert (
        sandbox.deliver(
            "push", sandbox.call("push_payload", REPO, "refs/heads/main", before, after)
        )["status"]
        == 202
    )

    def alert() -> dict[str, Any] | None:
        messages = sandbox.call("messages", on="slack")
        return next((m for m in messages if "tiny" in m.get("text", "")), None)

    message = wait_for("the new-model alert on Slack", alert, within=30)
    assert message["channel"] == "new-model-notification"
    assert "New model!" in str(message.get("blocks"))


def test_restart_in_the_middle_of_a_job_and_redelivery(world: Installed) -> None:
    sandbox, bot = world.sandbox, world.bot
    number = open_pull(
        sandbox, "slower", {"tests/slow/test_more.py": "def test_quick():\n    pass\n"}, "Slow"
    )
    sha = head_sha(sandbox, number)
    next_second()
    assert comment(sandbox, number, "run-slow: slow", "maintainer")["status"] == 202
    wait_for(
        "the job to start",
        lambda: any(c["status"] == "in_progress" for c in sandbox.call("check_runs", REPO, sha)),
        within=60,
    )
    time.sleep(1.5)  # the environment is reused: the test is sleeping by now
    bot.stop()  # SIGTERM while the tests sleep

    # While the bot is down a comment is delivered and fails, as GitHub would log it.
    missed = comment(sandbox, number, "@bot /help", "contributor")
    assert missed["status"] == 0

    restarted_at = time.time()
    bot.start()
    status = final_status(sandbox, sha, within=60)
    assert status["state"] == "success", bot_comments(sandbox, number)[-1]
    # The first process had the job running (its check run in progress); the second ran it
    # again from the start, as its own store, on the bot's disk, says.
    store = sqlite3.connect(f"file:{bot.folder / 'var' / 'bot.sqlite3'}?mode=ro", uri=True)
    with contextlib.closing(store):
        (started_at, state) = store.execute(
            "SELECT started_at, state FROM jobs WHERE name LIKE '%_slow' ORDER BY id DESC"
        ).fetchone()
    assert state == "passed" and started_at > restarted_at

    # `bot doctor --redeliver`, in the bot's folder with its variables, asks for the missed one.
    before = len(bot_comments(sandbox, number))
    doctor = subprocess.run(
        [sys.executable, "-m", "bot", "doctor", "--redeliver"],
        cwd=bot.folder, env=bot.env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    said = doctor.stdout + doctor.stderr
    assert f"asked GitHub to redeliver {missed['guid']}" in said, said
    wait_for(
        "the redelivered /help to be answered",
        lambda: len(bot_comments(sandbox, number)) == before + 1,
        within=30,
    )
    assert "reply with this list" in bot_comments(sandbox, number)[-1]  # the /help reply

    # Redelivering one the bot has already stored is answered "seen" and handled no more.
    again = sandbox.call("redeliver", missed["hook_id"])
    assert again["status_code"] == 200
    assert len(bot_comments(sandbox, number)) == before + 1
