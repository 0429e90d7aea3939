"""A hostile pull request against the real server, the real local runner and real bubblewrap.

Each test folder below is something a PR's author would try once a maintainer typed `run-slow`:
read the bot's secrets (its process's environment, its key file, its store, its `.env`), keep a
process alive after the job, hold the output pipe so the job never ends, or plant a `.pth` in
the test environment so the next PR's job runs it. `/style` gets a PR that ships its own `ruff`
package. Every attempt prints what it got into the job's log, which the public run page shows,
so "nothing leaked" is checked where the loot would be seen.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from bot.jobs.runners.confine import detect
from tests.support.processes import marked
from tests.support.slow_ci import REPO, bot_comments, head, open_slow_pull

pytestmark = pytest.mark.skipif(
    not detect().confined, reason=f"this host cannot confine: {detect().reason}"
)

SECRETS = {
    "GITHUB_WEBHOOK_SECRET": "whsec-hostile-suite-webhook-secret",
    "GITHUB_CLIENT_SECRET": "client-secret-hostile-suite-0042",
    "BOT_ADMIN_TOKEN": "admin-token-hostile-suite-0123456789abcdef",
    "SLACK_BOT_TOKEN": "xoxb-hostile-suite-slack-token",
}
KEY_TEXT = "-----BEGIN RSA PRIVATE KEY-----\nhostile-suite-key-material\n"

LOOT = """\
import glob, os, pathlib

TARGETS = {targets!r}


def grab(path):
    try:
        data = pathlib.Path(path).read_bytes()[:4096]
    except OSError as exc:
        return f"DENIED {{path}}: {{exc.strerror}}"
    return f"GOT {{path}}: {{data!r}}"


def test_takes_what_it_can():
    seen = [grab(p) for p in glob.glob("/proc/*/environ")]
    seen += [grab(p) for p in glob.glob("/proc/*/cmdline")]
    seen += [grab(p) for p in TARGETS]
    for fd in glob.glob("/proc/*/fd/*"):
        try:
            seen.append(f"FD {{fd}} -> {{os.readlink(fd)}}")
        except OSError:
            pass
    seen.append(f"PIDS {{sorted(int(p) for p in os.listdir('/proc') if p.isdigit())}}")
    seen.append(f"ROOT {{sorted(os.listdir('/'))}}")
    seen.append(f"UID {{os.getuid()}} {{os.geteuid()}}")
    raise AssertionError("\\n".join(seen))
"""

LINGER = """\
import os, subprocess


def test_leaves_a_daemon_and_holds_the_pipe():
    pipes = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{{fd}}").startswith("pipe:"):
                pipes.append(int(fd))
        except OSError:
            pass
    # One daemon in a session of its own, one child that keeps the job's output pipe open.
    subprocess.Popen([{mark!r}, "600"], executable="/bin/sleep", start_new_session=True)
    subprocess.Popen([{mark!r}, "600"], executable="/bin/sleep", pass_fds=pipes)
    raise AssertionError(f"LEFT BEHIND with pipes {{pipes}}")  # a failure's output is logged
"""

PLANT = """\
import pathlib, site, sys


def test_plants_a_pth():
    said = []
    for folder in [*site.getsitepackages(), sys.prefix, sys.base_prefix]:
        target = pathlib.Path(folder) / "zz_hostile.pth"
        try:
            target.write_text("import os; os.environ['PLANTED'] = 'yes'\\n")
            said.append(f"WROTE {target}")
        except OSError as exc:
            said.append(f"REFUSED {target}: {exc.strerror}")
    raise AssertionError("\\n".join(said))  # a failure's output is in the log
"""

CHECK_PLANT = """\
import os


def test_nothing_planted_runs():
    assert os.environ.get("PLANTED") is None, "a .pth from an earlier job ran"
"""


@pytest.fixture
def bot_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """What a deployment keeps beside the bot: a key file, a `.env`, the store; its secrets
    in the bot's own environment, as the systemd unit's EnvironmentFile puts them."""
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    key = tmp_path / "app.private-key.pem"
    key.write_text(KEY_TEXT)
    key.chmod(0o600)
    env = tmp_path / ".env"
    env.write_text("".join(f"{k}={v}\n" for k, v in SECRETS.items()))
    env.chmod(0o600)
    monkeypatch.setenv("GITHUB_PRIVATE_KEY_PATH", str(key))
    return {"key": key, "env": env, "store": tmp_path / "bot.sqlite3"}


async def _comment(harness, number: int, body: str, user: str = "maint") -> None:
    payload = harness.github.issue_comment_payload(REPO, number, body, user)
    assert (await harness.deliver("issue_comment", payload)).status == 202
    await harness.settle()


async def _page(url: str) -> str:
    async with aiohttp.ClientSession() as session, session.get(url) as page:
        assert page.status == 200
        return await page.text()


async def _logs(harness, number: int) -> str:
    """Every job's whole log, as the run pages serve it."""
    (run,) = await harness.runtime.jobs.runs_of(REPO, number)
    texts = []
    for job in await harness.runtime.jobs.jobs_of(run.id):
        texts.append(await _page(f"{harness.url}/runs/{run.id}/jobs/{job.id}/log?whole=1"))
    texts.append(await _page(f"{harness.url}/runs/{run.id}"))
    return "\n".join(texts)


async def test_a_test_cannot_read_the_bots_secrets_key_or_store(harness, bot_files):
    targets = [str(p) for p in bot_files.values()] + [harness.settings.database]
    files = {"tests/models/loot/test_loot.py": LOOT.format(targets=targets)}
    number = open_slow_pull(harness, files)
    await _comment(harness, number, "run-slow: loot")
    await harness.settle_runs()

    text = await _logs(harness, number)
    assert not re.search(r"GOT /(?!proc/)", text)  # only its own namespace's /proc
    for secret in [*SECRETS.values(), "hostile-suite-key-material", harness.secret]:
        assert secret not in text
    for path in targets:
        assert f"DENIED {path}: No such file or directory" in text
    links = [line for line in text.splitlines() if "FD /proc/" in line]
    assert links and not [line for line in links if "sqlite3" in line.split("-&gt;")[-1]]
    pids = next(line for line in text.splitlines() if "PIDS [" in line)
    assert max(int(p) for p in pids.split("[", 1)[1].rstrip("]").split(",")) < 50
    assert "UID 0 " not in text  # an unprivileged user inside
    (comment,) = bot_comments(harness, number)
    assert "Finished, failed" in comment
    for secret in SECRETS.values():
        assert secret not in comment


async def test_nothing_a_job_starts_outlives_it(harness):
    mark = f"hostile-{time.time_ns()}"
    number = open_slow_pull(
        harness, {"tests/models/linger/test_linger.py": LINGER.format(mark=mark)}
    )
    started = time.monotonic()
    await _comment(harness, number, "run-slow: linger")
    await harness.settle_runs()
    # The job's own timeout is an hour: it ended because the sandbox ended with pytest.
    assert time.monotonic() - started < 60
    (comment,) = bot_comments(harness, number)
    assert "Finished, failed" in comment  # its own deliberate failure, nothing else
    assert "LEFT BEHIND with pipes [" in await _logs(harness, number)
    await asyncio.sleep(0.3)
    assert marked(mark) == []


async def test_a_test_cannot_change_the_environment_the_next_job_uses(harness):
    files = {
        "tests/models/plant/test_plant.py": PLANT,
        "tests/models/check/test_check.py": CHECK_PLANT,
    }
    number = open_slow_pull(harness, files)
    await _comment(harness, number, "run-slow: plant")
    await harness.settle_runs()
    text = await _logs(harness, number)
    assert "REFUSED /" in text and "WROTE /" not in text
    for folder in (sys.prefix, sys.base_prefix):
        assert not (Path(folder) / "zz_hostile.pth").exists()
    await _comment(harness, number, "run-slow: check")
    await harness.settle_runs()
    comments = bot_comments(harness, number)
    assert any("Finished, passed" in c for c in comments), comments
    assert head(harness, number)


async def test_style_never_imports_a_ruff_package_the_pull_request_ships(harness, tmp_path):
    marker = tmp_path / "ruff-ran"
    write = f"open({str(marker)!r}, 'w').write('ran')\n"
    repo = "acme/tools"
    harness.github.create_repo(
        repo,
        files={"pyproject.toml": '[project]\nname = "tools"\n', "README.md": "tools\n"},
        collaborators={"boss": "admin"},
    )
    files = {
        "ruff/__init__.py": write,
        "ruff/__main__.py": write,
        "app.py": "import sys\nimport os\nx=1\n",
    }
    harness.github.commit(repo, "feature", files, author="carol")
    number = harness.github.open_pull(repo, "feature", author="carol")
    payload = harness.github.issue_comment_payload(repo, number, "@bot /style", "boss")
    assert (await harness.deliver("issue_comment", payload)).status == 202
    await harness.settle()
    await harness.settle_runs()
    assert not marker.exists()
    replies = [c["body"] for c in harness.github.comments(repo, number)]
    assert any("fix" in body.lower() for body in replies), replies
    git = harness.github.git(repo)
    fixed = git.read(git.resolve("feature"), "app.py").decode()
    assert fixed != files["app.py"]  # ruff (the bot's) did its work


async def test_a_host_that_cannot_confine_runs_no_pull_request_code(harness, monkeypatch):
    from bot.jobs.runners.confine import Confinement

    unavailable = Confinement("unavailable", reason="bubblewrap (bwrap) is not installed")
    runner = harness.runtime.jobs.runners["local"]
    monkeypatch.setattr(runner, "confinement", unavailable)
    number = open_slow_pull(harness, {"tests/models/toy/test_toy.py": "def test_x():\n    pass\n"})
    await _comment(harness, number, "run-slow: toy")
    await harness.settle_runs()
    (reply,) = bot_comments(harness, number)
    assert "cannot confine pull-request code" in reply
    assert "apt-get install bubblewrap" in reply and "BOT_UNCONFINED_JOBS" in reply
    assert await harness.runtime.jobs.runs_of(REPO, number) == []


async def test_style_on_a_host_that_cannot_confine_is_refused_with_the_reason(harness, monkeypatch):
    from bot.jobs.runners.confine import Confinement

    unavailable = Confinement("unavailable", reason="bubblewrap (bwrap) is not installed")
    monkeypatch.setattr(harness.runtime.jobs.runners["style"], "confinement", unavailable)
    repo = "acme/tools"
    harness.github.create_repo(repo, files={"README.md": "x\n"}, collaborators={"boss": "admin"})
    harness.github.commit(repo, "feature", {"app.py": "import os\n"}, author="carol")
    number = harness.github.open_pull(repo, "feature", author="carol")
    payload = harness.github.issue_comment_payload(repo, number, "@bot /style", "boss")
    assert (await harness.deliver("issue_comment", payload)).status == 202
    await harness.settle()
    replies = [c["body"] for c in harness.github.comments(repo, number)]
    assert any("cannot confine pull-request code" in body for body in replies), replies
    assert await harness.runtime.jobs.runs_of(repo, number) == []
