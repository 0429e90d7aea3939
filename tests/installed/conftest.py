"""The installed-shape tier's one pair of processes, shared by its tests (see processes.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from bot.jobs.runners.envcache import DEFAULT_PASS_ENV
from tests.installed.processes import BASICS, Bot, Sandbox, free_port


class Installed:
    """The pair of processes and the bot's folder."""

    def __init__(self, sandbox: Sandbox, bot: Bot) -> None:
        self.sandbox, self.bot = sandbox, bot


#: pip's own configuration keys, and the variable the bot passes each one to its builds as.
_PIP_KEYS = {
    "global.index-url": "PIP_INDEX_URL",
    "global.extra-index-url": "PIP_EXTRA_INDEX_URL",
    "global.find-links": "PIP_FIND_LINKS",
}


def machine_pip_settings() -> dict[str, str]:
    """This machine's package index settings, as an operator gives them to the service: the
    variables, else what pip's configuration says (a user's pip.conf is not seen by a confined
    build, whose home is its own), so the environments build from a local index where there
    is one."""
    found = {name: os.environ[name] for name in DEFAULT_PASS_ENV if name in os.environ}
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"],
        env={"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root")},
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    for line in listed.stdout.splitlines():
        key, _, value = line.partition("=")
        if key in _PIP_KEYS and _PIP_KEYS[key] not in found:
            found[_PIP_KEYS[key]] = value.strip("'\"")
    return found


@pytest.fixture(scope="package")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    base = tmp_path_factory.mktemp("installed")
    port = free_port()
    bot_url = f"http://127.0.0.1:{port}"
    (base / "sandbox").mkdir()
    sandbox = Sandbox(base / "sandbox", bot_url)
    workdir = base / "bot"  # what the unit's WorkingDirectory= is: fresh, empty
    workdir.mkdir()
    (base / "home").mkdir()
    env = {**BASICS, "HOME": str(base / "home"), **sandbox.info["bot_env"]}
    env["BOT_PUBLIC_URL"] = bot_url
    env["BOT_LOG_FORMAT"] = "json"  # what the unit sets
    # A package mirror or a local wheel folder, where the machine has one: README lists these.
    env.update(machine_pip_settings())
    bot = Bot(workdir, port, env)
    try:
        bot.start()
        yield Installed(sandbox, bot)
    finally:
        bot.stop()
        sandbox.close()
