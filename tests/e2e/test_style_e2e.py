"""`@bot /style` end to end: the real server, the sandbox GitHub with real git remotes, real ruff.

The base branch's `pyproject.toml` asks for `line-length = 60` and import sorting, so whether a
result follows the base configuration shows in every file ruff touches. A PR that tries to run
its own code leaves a marker file behind if any of it ran; none ever does.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from bot.kit.comments import MARKER_PREFIX
from handlers.style.plan import COMMIT_MESSAGE

REPO = "acme/tools"
BASE_PYPROJECT = '[project]\nname = "tools"\n\n[tool.ruff]\nline-length = 60\n\n'
BASE_PYPROJECT += '[tool.ruff.lint]\nselect = ["F", "I"]\n'
#: The same settings, as someone would write them by hand to check the bot's result.
BY_HAND_CONFIG = 'line-length = 60\n\n[lint]\nselect = ["F", "I"]\n'
UGLY = (
    "import sys\nimport os\n\n\n"
    "def greet(name,greeting='hello',punctuation='!',times=1):\n"
    "  return greeting+' '+name+punctuation*times\n"
)
CLEAN = "def double(x):\n    return 2 * x\n"


def _evil(marker: Path) -> dict[str, str]:
    """Everything a PR could add to run its code, each writing `marker` if it ever runs."""
    write = f"open({str(marker)!r}, 'w').write('ran')\n"
    return {
        "conftest.py": write,
        "setup.py": write,
        "pkg/__init__.py": write,
        "Makefile": f"style:\n\ttouch {marker}\nquality:\n\ttouch {marker}\n",
        ".githooks/pre-commit": f"#!/bin/sh\ntouch {marker}\n",
        ".pre-commit-config.yaml": "repos: []\n",
        "pyproject.toml": (
            '[tool.ruff]\nline-length = 200\nextend = "evil.toml"\n\n'
            "[tool.ruff.lint]\nselect = []\n"
        ),
        "evil.toml": "line-length = 300\n",
        "pkg/ruff.toml": "line-length = 250\n",
    }


@pytest.fixture
def repo(harness):
    harness.github.create_repo(
        REPO,
        files={"pyproject.toml": BASE_PYPROJECT, "pkg/__init__.py": "", "README.md": "tools\n"},
        collaborators={"boss": "admin", "maint": "write"},
    )
    return REPO


def _pull(harness, files: dict[str, str], *, branch: str = "feature", **kw) -> int:
    harness.github.commit(REPO, branch, files, author="carol")
    return harness.github.open_pull(REPO, branch, author="carol", **kw)


async def _comment(harness, number: int, body: str = "@bot /style", user: str = "boss"):
    payload = harness.github.issue_comment_payload(REPO, number, body, user)
    sent = await harness.deliver("issue_comment", payload)
    assert sent.status == 202
    await harness.settle()
    return payload


def _bot_comments(harness, number: int) -> list[str]:
    return [c["body"] for c in harness.github.comments(REPO, number) if MARKER_PREFIX in c["body"]]


def _reactions(harness, comment_id: int) -> list[str]:
    return [r["content"] for r in harness.github.reactions(REPO, comment_id)]


def _tip(harness, full_name: str, branch: str) -> str:
    return harness.github.git(full_name).resolve(branch)


def _by_hand(tmp_path: Path, files: dict[str, str]) -> dict[str, str]:
    """What `ruff check --fix` + `ruff format` with the base settings make of `files`."""
    work = tmp_path / "by-hand"
    for name, text in files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(text)
    config = tmp_path / "by-hand.toml"
    config.write_text(BY_HAND_CONFIG)
    names = [n for n in files if n.endswith(".py")]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    ruff = [sys.executable, "-m", "ruff"]
    for args in (["check", "--fix", "--exit-zero"], ["format"]):
        subprocess.run(
            [*ruff, *args, "--config", str(config), "--no-cache", *names],
            cwd=work, env=env, check=False, capture_output=True,
        )  # fmt: skip
    return {name: (work / name).read_text() for name in names}


async def test_a_badly_formatted_pr_gets_one_commit_equal_to_ruff_by_hand(harness, repo, tmp_path):
    files = {"pkg/ugly.py": UGLY, "pkg/clean.py": CLEAN}
    number = _pull(harness, files)
    head = _tip(harness, REPO, "feature")
    payload = await _comment(harness, number)
    await harness.settle_runs()

    git = harness.github.git(REPO)
    tip = _tip(harness, REPO, "feature")
    (commit,) = git.log(tip, exclude=[head])
    assert commit.message.strip() == COMMIT_MESSAGE
    assert commit.parents == (head,)
    assert commit.author_name == "maintainer-bot"
    expected = _by_hand(tmp_path, files)
    assert expected["pkg/ugly.py"] != UGLY
    for name, text in expected.items():
        assert git.read(tip, name).decode() == text, name
    (reply,) = _bot_comments(harness, number)
    assert "Style fixes have been applied to 1 file" in reply
    assert "`pkg/ugly.py`" in reply and "pkg/clean.py" not in reply
    assert f"/{REPO}/commit/{tip}" in reply
    assert _reactions(harness, payload["comment"]["id"]) == ["eyes", "rocket"]


async def test_a_redelivered_comment_pushes_and_replies_once(harness, repo):
    number = _pull(harness, {"pkg/ugly.py": UGLY})
    head = _tip(harness, REPO, "feature")
    payload = harness.github.issue_comment_payload(REPO, number, "@bot /style", "boss")
    for _ in range(2):
        assert (await harness.deliver("issue_comment", payload)).status == 202
        await harness.settle()
        await harness.settle_runs()
    tip = _tip(harness, REPO, "feature")
    assert len(harness.github.git(REPO).log(tip, exclude=[head])) == 1
    assert len(_bot_comments(harness, number)) == 1
    assert len(await harness.runtime.jobs.runs_of(REPO, number)) == 1


async def test_a_clean_pr_gets_nothing_to_fix_and_no_commit(harness, repo):
    number = _pull(harness, {"pkg/clean.py": CLEAN})
    head = _tip(harness, REPO, "feature")
    await _comment(harness, number)
    await harness.settle_runs()
    assert _tip(harness, REPO, "feature") == head
    (reply,) = _bot_comments(harness, number)
    assert reply.startswith("Nothing to fix")


async def test_a_non_admin_is_refused_and_no_job_runs(harness, repo):
    number = _pull(harness, {"pkg/ugly.py": UGLY})
    payload = await _comment(harness, number, user="maint")
    (reply,) = _bot_comments(harness, number)
    assert "`/style` runs only for people with `admin` permission" in reply
    assert await harness.runtime.jobs.runs_of(REPO, number) == []
    assert _reactions(harness, payload["comment"]["id"]) == []


async def test_quoted_commands_and_issues_are_ignored_and_a_closed_pr_gets_a_reply(harness, repo):
    number = _pull(harness, {"pkg/ugly.py": UGLY})
    await _comment(harness, number, "> @bot /style\n\n```\n@bot /style\n```\nthanks")
    assert _bot_comments(harness, number) == []
    # The bot's own marked reply (its `/help` table names the command), posted as a user.
    await _comment(harness, number, "| `@bot /style` | fix |\n\n<!-- maintainer-bot:help:1 -->")
    assert await harness.runtime.jobs.runs_of(REPO, number) == []
    issue = harness.github.open_issue(REPO, "a question")
    await _comment(harness, issue)
    assert _bot_comments(harness, issue) == []
    harness.github.close_issue(REPO, number)
    await _comment(harness, number)
    (reply,) = [c for c in _bot_comments(harness, number) if "style:reply" in c]
    assert "closed" in reply
    assert await harness.runtime.jobs.runs_of(REPO, number) == []


async def test_an_author_push_after_the_comment_is_never_overwritten(harness, repo):
    number = _pull(harness, {"pkg/ugly.py": UGLY})
    jobs = harness.runtime.jobs
    await jobs.stop()  # the job waits in the queue while the author pushes
    payload = await _comment(harness, number)
    theirs = harness.github.commit(REPO, "feature", {"pkg/more.py": CLEAN}, author="carol")
    await jobs.start()
    await harness.settle_runs()
    assert _tip(harness, REPO, "feature") == theirs
    (reply,) = _bot_comments(harness, number)
    assert "nothing was pushed and nothing was overwritten" in reply
    assert "Run `/style` again" in reply
    assert _reactions(harness, payload["comment"]["id"]) == ["eyes", "confused"]


async def _fork_pull(harness, *, maintainer_can_modify: bool) -> int:
    harness.github.fork(REPO, "dave")
    harness.github.commit("dave/tools", "fix", {"pkg/ugly.py": UGLY}, author="dave")
    return harness.github.open_pull(
        REPO,
        "fix",
        author="dave",
        head_repo="dave/tools",
        maintainer_can_modify=maintainer_can_modify,
    )


async def test_a_fork_without_maintainer_edits_gets_a_suggestion_and_no_push(harness, repo):
    number = await _fork_pull(harness, maintainer_can_modify=False)
    head = _tip(harness, "dave/tools", "fix")
    await _comment(harness, number)
    await harness.settle_runs()
    assert _tip(harness, "dave/tools", "fix") == head
    assert harness.github.git(REPO).resolve("fix") is None
    (reply,) = _bot_comments(harness, number)
    assert "does not allow edits from maintainers" in reply
    assert "<details><summary>Suggested diff" in reply
    assert "+def greet(" in reply and "-import sys" in reply


async def test_a_fork_with_maintainer_edits_gets_the_commit_pushed_to_it(harness, repo):
    number = await _fork_pull(harness, maintainer_can_modify=True)
    head = _tip(harness, "dave/tools", "fix")
    await _comment(harness, number)
    await harness.settle_runs()
    fork = harness.github.git("dave/tools")
    tip = _tip(harness, "dave/tools", "fix")
    (commit,) = fork.log(tip, exclude=[head])
    assert commit.message.strip() == COMMIT_MESSAGE
    (reply,) = _bot_comments(harness, number)
    assert "/dave/tools/commit/" in reply


async def test_a_pr_cannot_change_the_rules_or_run_its_code(harness, repo, tmp_path):
    marker = tmp_path / "PR-CODE-RAN"
    long_line = "def f():\n    return ['aaaaaaaaaa', 'bbbbbbbbbb', 'cccccccccc', 'dddd']\n"
    files = {**_evil(marker), "pkg/long.py": "import os\n" + long_line, "pkg/ugly.py": UGLY}
    harness.github.commit(REPO, "evil", files, author="carol", executable=[".githooks/pre-commit"])
    number = harness.github.open_pull(REPO, "evil", author="carol")
    head = _tip(harness, REPO, "evil")
    await _comment(harness, number)
    await harness.settle_runs()
    git = harness.github.git(REPO)
    tip = _tip(harness, REPO, "evil")
    assert tip != head
    expected = _by_hand(tmp_path, {"pkg/long.py": files["pkg/long.py"], "pkg/ugly.py": UGLY})
    for name, text in expected.items():
        assert git.read(tip, name).decode() == text, name
    assert "import os" not in expected["pkg/long.py"]  # the base's F401 applied, not `select=[]`
    assert "    return [\n" in expected["pkg/long.py"]  # 60 columns, not 200/250/300
    assert not marker.exists()
    # The PR's own files are untouched data: its pyproject, hooks and Makefile as it wrote them.
    assert git.read(tip, "pyproject.toml").decode() == files["pyproject.toml"]


async def test_a_syntax_error_is_reported_and_the_other_files_are_fixed(harness, repo):
    number = _pull(harness, {"pkg/ugly.py": UGLY, "pkg/broken.py": "def f(:\n    pass\n"})
    head = _tip(harness, REPO, "feature")
    await _comment(harness, number)
    await harness.settle_runs()
    git = harness.github.git(REPO)
    tip = _tip(harness, REPO, "feature")
    assert tip != head
    assert git.read(tip, "pkg/broken.py").decode() == "def f(:\n    pass\n"
    assert git.read(tip, "pkg/ugly.py").decode() != UGLY
    (reply,) = _bot_comments(harness, number)
    assert "pkg/broken.py:1 invalid-syntax" in reply
    assert "`pkg/ugly.py`" in reply


async def test_the_reply_moves_from_queued_to_the_result(harness, repo):
    number = _pull(harness, {"pkg/ugly.py": UGLY})
    jobs = harness.runtime.jobs
    await jobs.stop()
    await _comment(harness, number)
    async with asyncio.timeout(10):
        while not _bot_comments(harness, number):
            await asyncio.sleep(0.05)
    (queued,) = _bot_comments(harness, number)
    assert "`/style` is queued" in queued
    await jobs.start()
    await harness.settle_runs()
    (final,) = _bot_comments(harness, number)
    assert final.startswith("Style fixes have been applied")


async def test_a_restart_before_the_job_ran_still_pushes_once_and_edits_the_same_reply(
    harness, repo
):
    number = _pull(harness, {"pkg/ugly.py": UGLY})
    head = _tip(harness, REPO, "feature")
    await harness.runtime.jobs.stop()  # accepted and queued, then the process goes away
    await _comment(harness, number)
    await harness.stop_bot()
    await harness.start_bot()
    await harness.settle_runs()
    tip = _tip(harness, REPO, "feature")
    assert len(harness.github.git(REPO).log(tip, exclude=[head])) == 1
    (reply,) = _bot_comments(harness, number)
    assert reply.startswith("Style fixes have been applied")
