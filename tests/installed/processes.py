"""The bot as installed: `python -m bot serve` started the way the systemd unit and the Procfile
start it, against the sandbox GitHub and Slack running as their own process.

Nothing is wired in Python: the bot gets a fresh working folder, App credentials with a key
file and only the variables README's "Installing it for real" lists (no path variable, no
`BOT_TEST_PYTHON`), and the tests reach both processes over HTTP alone. That is the shape a
deployment has, and the one in which relative default paths or a test environment built
without its optional groups would show.
"""

from __future__ import annotations

import json
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
#: What a process needs to be a process at all; none of it is a setting of the bot.
BASICS = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}


def readme_variables() -> set[str]:
    """The variables README's "Installing it for real" table names."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Installing it for real", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for row in section.splitlines():
        if row.startswith("| `"):
            names.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split("|")[1]))
    return names


def unit_command(port: int) -> list[str]:
    """The systemd unit's ExecStart, with this checkout's interpreter and a free port."""
    unit = (ROOT / "deploy" / "maintainer-bot.service").read_text()
    line = next(ln for ln in unit.splitlines() if ln.startswith("ExecStart="))
    argv = shlex.split(line.removeprefix("ExecStart="))
    assert argv[0].endswith("/.venv/bin/python")
    argv[0] = sys.executable
    argv[argv.index("--port") + 1] = str(port)
    return argv


def procfile_command() -> list[str]:
    line = next(ln for ln in (ROOT / "Procfile").read_text().splitlines() if ln.startswith("web:"))
    return shlex.split(line.removeprefix("web:"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(what: str, check: Callable[[], Any], within: float = 30.0, every: float = 0.1) -> Any:
    """Polls `check` until it returns something truthy; fails with `what` past `within` s."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:g} s waiting for {what}")
        time.sleep(every)


def next_second() -> None:
    """GitHub dates comments to the second: a comment must fall in a later second than the
    delivery the bot judges it against."""
    time.sleep(int(time.time()) + 1.05 - time.time())


class Sandbox:
    """`python -m tests.sandbox serve`, and its control API."""

    def __init__(self, folder: Path, bot_url: str) -> None:
        argv = [sys.executable, "-m", "tests.sandbox", "serve", "--dir", str(folder)]
        argv += ["--bot-url", f"{bot_url}/webhook"]
        # The stand-in is not part of the installed package: it is found in the clone.
        env = {**BASICS, "HOME": str(folder), "PYTHONPATH": str(ROOT)}
        self.log = (folder.parent / "sandbox.log").open("w")
        self.process = subprocess.Popen(
            argv, cwd=folder.parent, env=env, stdout=subprocess.PIPE, stderr=self.log, text=True
        )
        assert self.process.stdout is not None
        first = self.process.stdout.readline()
        if not first:
            raise AssertionError(f"the sandbox did not start: {self.process.wait()}")
        self.info: dict[str, Any] = json.loads(first)
        # The file says the same as the line it printed.
        assert json.loads((folder / "sandbox.json").read_text()) == self.info

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        request = urllib.request.Request(  # noqa: S310 - the sandbox's own loopback URL
            self.info["control_url"] + path,
            json.dumps(body).encode(),
            {"Authorization": f"Bearer {self.info['control_token']}"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:  # noqa: S310
                return json.load(answer)
        except urllib.error.HTTPError as exc:
            raise AssertionError(
                f"sandbox {path} {body.get('method', '')}: {exc.read()!r}"
            ) from None

    def call(self, method: str, *args: Any, on: str = "github", **kwargs: Any) -> Any:
        body = {"on": on, "method": method, "args": list(args), "kwargs": kwargs}
        return self._post("/call", body)["result"]

    def deliver(self, event: str, payload: dict[str, Any]) -> dict[str, Any]:
        return self._post("/deliver", {"event": event, "payload": payload})

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


class Bot:
    """`python -m bot serve` in its own folder, as the unit starts it; restartable."""

    def __init__(self, folder: Path, port: int, env: dict[str, str]) -> None:
        self.folder, self.port, self.env = folder, port, env
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[str] | None = None
        self.logs: list[Path] = []

    def start(self) -> None:
        log = self.folder.parent / f"bot-{len(self.logs) + 1}.log"
        self.logs.append(log)
        with log.open("w") as out:
            self.process = subprocess.Popen(
                unit_command(self.port),
                cwd=self.folder,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
            )
        wait_for("the bot to answer /healthz", self.healthy, within=30)

    def healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"the bot exited {self.process.returncode}: {self.log_text()}")
        try:
            with urllib.request.urlopen(self.url + "/healthz", timeout=2) as answer:  # noqa: S310
                return answer.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        """SIGTERM, as systemd and every platform stop a service."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=45)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_text(self) -> str:
        return "".join(log.read_text() for log in self.logs if log.exists())

    def log_lines(self) -> list[dict[str, Any]]:
        return [json.loads(ln) for ln in self.log_text().splitlines() if ln.startswith("{")]
