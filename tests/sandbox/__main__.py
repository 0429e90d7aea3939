"""`python -m tests.sandbox serve --dir DIR`: the sandbox GitHub and Slack as a process
of their own.

The in-process harness wires the bot to the stand-ins by hand, which is exactly what an installed
bot does not get: it has its variables, a key file and a working folder, and GitHub reaches it
over HTTP. Run as a separate process, the stand-ins let a person (or the installed-shape tests)
start `python -m bot serve` the way the Procfile and the systemd unit do and watch it work.

At start it writes `DIR/sandbox.json` (and prints the same JSON on one line of stdout): the API
URL, the Slack API URL and bot token, the App id, the App's private key file, the webhook
secret, the URL the bot's webhook is at, and `bot_env`, the variables to start the bot with
(also written as `DIR/bot.env`, the format of the `.env` that `bot serve` reads). Its own
webhooks (GitHub Actions runs, redeliveries) go to `webhook_url`, read again from the file when
it changes, so a bot started later on another port is reached by editing one line.

Everything else goes through a small control API at `control_url`, with
`Authorization: Bearer <control_token>`:

- `POST /call {"method": NAME, "args": [...], "kwargs": {...}}` calls one of the sandbox
  GitHub's staging and reading methods (`create_repo`, `commit`, `open_pull`, `comments`, ...;
  `"on": "slack"` for Slack's `messages`), as the Python API of `tests/sandbox/` documents them;
- `POST /deliver {"event": NAME, "payload": {...}}` signs a payload as GitHub does, posts it to
  the bot and logs the attempt in the App's hook log, where `bot doctor --redeliver` finds what
  did not arrive.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import secrets
import signal
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from tests.sandbox.github_server import SandboxGitHub
from tests.sandbox.http import serve
from tests.sandbox.slack_server import SandboxSlack
from tests.sandbox.webhooks import send_webhook

INFO_FILE = "sandbox.json"
ENV_FILE = "bot.env"
KEY_FILE = "app-private-key.pem"
DEMO_REPO = "sandbox-org/demo"

#: What the control API may call: staging the world and reading what the bot did. Nothing that
#: would reach outside the sandbox's own folder.
GITHUB_CALLS = frozenset(
    {
        "add_collaborator",
        "add_label",
        "add_review",
        "add_team",
        "add_user",
        "check_runs",
        "close_issue",
        "comments",
        "commit",
        "create_repo",
        "fork",
        "hook_log",
        "issue_comment_payload",
        "labels",
        "mark_ready",
        "merge_pull",
        "open_pull",
        "pull_request_payload",
        "push_payload",
        "reactions",
        "redeliver",
        "requested_reviewers",
        "reviews",
        "statuses",
    }
)
SLACK_CALLS = frozenset({"messages", "create_channel"})


def _jsonable(value: Any) -> Any:
    """A result as JSON: dataclasses as their fields, anything else without a JSON form as None
    (`create_repo` returns the repository object, which a caller does not need)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return None


class SandboxProcess:
    """The stand-ins, their control API and the file that says how to reach them."""

    def __init__(self, root: Path, *, webhook_url: str) -> None:
        self.root = root
        self.github = SandboxGitHub(root / "github")
        self.slack = SandboxSlack()
        self.secret = "sandbox-" + secrets.token_hex(16)
        self.control_token = secrets.token_urlsafe(24)
        self.webhook_url = webhook_url
        self.info_path = root / INFO_FILE
        self._info_mtime = 0.0
        self._control: web.AppRunner | None = None
        self.control_url = ""
        self._session: aiohttp.ClientSession | None = None

    async def start(self, host: str, port: int) -> dict[str, Any]:
        await self.github.start(host, port)
        await self.slack.start(host)
        self._session = aiohttp.ClientSession()
        self._control, self.control_url = await serve(self._control_app(), host, 0)
        self.github.webhook_target(self.webhook_url, self.secret)
        info = self.info()
        self._write(info)
        return info

    def info(self) -> dict[str, Any]:
        key = self.root / KEY_FILE
        bot_env = {
            "GITHUB_APP_ID": str(self.github.app_id),
            "GITHUB_PRIVATE_KEY_PATH": str(key),
            "GITHUB_WEBHOOK_SECRET": self.secret,
            "GITHUB_API_URL": self.github.url,
            "SLACK_BOT_TOKEN": self.slack.token,
            "SLACK_API_URL": self.slack.api_url,
            # Links in the bot's comments and statuses: where the bot is, beside its webhook.
            "BOT_PUBLIC_URL": self.webhook_url.removesuffix("/webhook"),
        }
        return {
            "api_url": self.github.url,
            "slack_api_url": self.slack.api_url,
            "slack_bot_token": self.slack.token,
            "app_id": self.github.app_id,
            "private_key_path": str(key),
            "webhook_secret": self.secret,
            "webhook_url": self.webhook_url,
            "control_url": self.control_url,
            "control_token": self.control_token,
            "bot_env": bot_env,
        }

    def _write(self, info: Mapping[str, Any]) -> None:
        # Secrets in both files: readable by this user only, as `bot setup` writes its `.env`.
        _private(self.root / KEY_FILE, self.github.private_key_pem)
        lines = [f"{name}={value}" for name, value in info["bot_env"].items()]
        _private(self.root / ENV_FILE, "\n".join(lines) + "\n")
        _private(self.info_path, json.dumps(info, indent=2) + "\n")
        self._info_mtime = self.info_path.stat().st_mtime

    def follow_target(self) -> None:
        """Takes up a `webhook_url` edited in the file."""
        try:
            mtime = self.info_path.stat().st_mtime
            if mtime == self._info_mtime:
                return
            self._info_mtime = mtime
            url = json.loads(self.info_path.read_text()).get("webhook_url")
        except (OSError, ValueError):
            return
        if isinstance(url, str) and url and url != self.webhook_url:
            self.webhook_url = url
            self.github.webhook_target(url, self.secret)
            print(f"webhooks now go to {url}", file=sys.stderr, flush=True)

    async def watch_target(self) -> None:
        while True:
            self.follow_target()
            await asyncio.sleep(0.5)

    async def close(self) -> None:
        if self._control is not None:
            await self._control.cleanup()
        if self._session is not None:
            await self._session.close()
        await self.github.close()
        await self.slack.close()

    # ---------------------------------------------------------------- control API

    def _control_app(self) -> web.Application:
        @web.middleware
        async def authorised(request: web.Request, handler: Any) -> web.StreamResponse:
            given = request.headers.get("Authorization", "")
            if not secrets.compare_digest(given, f"Bearer {self.control_token}"):
                return web.json_response({"error": "bad control token"}, status=401)
            return await handler(request)

        app = web.Application(middlewares=[authorised], client_max_size=64 * 1024 * 1024)
        app.router.add_post("/call", self._call)
        app.router.add_post("/deliver", self._deliver)
        return app

    async def _call(self, request: web.Request) -> web.Response:
        body = await request.json()
        on, name = body.get("on", "github"), body.get("method")
        allowed = GITHUB_CALLS if on == "github" else SLACK_CALLS if on == "slack" else ()
        if name not in allowed:
            return web.json_response({"error": f"{on}.{name} is not callable here"}, status=404)
        target = self.github if on == "github" else self.slack
        member = getattr(target, name)
        args, kwargs = body.get("args") or [], body.get("kwargs") or {}
        try:
            # Off the loop: the stand-ins answer the bot on this same loop meanwhile.
            result = await asyncio.to_thread(
                lambda: member(*args, **kwargs) if callable(member) else list(member)
            )
        except (KeyError, ValueError, TypeError, RuntimeError) as exc:
            return web.json_response({"error": f"{type(exc).__name__}: {exc}"}, status=422)
        return web.json_response({"result": _jsonable(result)})

    async def _deliver(self, request: web.Request) -> web.Response:
        assert self._session is not None
        body = await request.json()
        event, payload = body["event"], body["payload"]
        self.follow_target()
        guid = str(uuid.uuid4())
        try:
            sent = await send_webhook(
                self._session,
                self.webhook_url,
                event,
                payload,
                self.secret,
                delivery_id=guid,
                app_id=self.github.app_id,
            )
            status = sent.status
        except (aiohttp.ClientError, OSError):
            status = 0  # nobody listening: GitHub logs the attempt as failed
        record = self.github.record_hook_delivery(
            guid, event, payload.get("action"), payload, status_code=status
        )
        return web.json_response({"guid": guid, "status": status, "hook_id": record.id})


def _private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    path.chmod(0o600)


def seed_demo(github: SandboxGitHub) -> None:
    """A small repository a person can try every feature on: owners, a passing and a failing
    test folder, and a maintainer and an admin who may ask for runs and `/style`."""
    github.create_repo(
        DEMO_REPO,
        files={
            "pyproject.toml": '[project]\nname = "demo"\nversion = "0"\ndependencies = []\n',
            ".github/review-owners": "*  @alice @bob\n/tests/  @carol\n",
            ".github/bot.toml": '[slow_ci]\nmachine_types = ["single-gpu"]\n',
            "tests/passing/test_ok.py": "def test_ok():\n    assert 1 + 1 == 2\n",
            "tests/failing/test_bad.py": (
                "def test_bad():\n    assert 1 + 1 == 3, 'arithmetic is broken'\n"
            ),
            "model_lib/models/base/modeling_base.py": "class Base:\n    pass\n",
        },
        collaborators={"alice": "write", "bob": "write", "carol": "write", "maintainer": "admin"},
    )


async def serve_until_stopped(args: argparse.Namespace, root: Path) -> int:
    webhook_url = args.bot_url or "http://127.0.0.1:8080/webhook"
    sandbox = SandboxProcess(root, webhook_url=webhook_url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    watcher: asyncio.Task[None] | None = None
    try:
        info = await sandbox.start(args.host, args.port)
        if args.demo:
            await asyncio.to_thread(seed_demo, sandbox.github)
        print(json.dumps(info), flush=True)
        print(
            f"sandbox GitHub at {info['api_url']}, Slack at {info['slack_api_url']};"
            f" webhooks go to {webhook_url}. Start the bot with the variables in"
            f" {root / ENV_FILE} (copy it to the bot's folder as .env).",
            file=sys.stderr,
            flush=True,
        )
        watcher = asyncio.create_task(sandbox.watch_target())
        await stop.wait()
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        await sandbox.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.sandbox", description="the sandbox GitHub and Slack, on loopback"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("serve", help="serve the sandbox GitHub and Slack until Ctrl-C")
    cmd.add_argument("--dir", required=True, help="where repositories and sandbox.json go")
    cmd.add_argument("--host", default="127.0.0.1")
    cmd.add_argument("--port", type=int, default=0, help="the GitHub API's port (0: any free)")
    cmd.add_argument(
        "--bot-url",
        help="the bot's webhook URL (default http://127.0.0.1:8080/webhook; or edit"
        " webhook_url in sandbox.json later)",
    )
    cmd.add_argument("--demo", action="store_true", help=f"seed a small {DEMO_REPO}")
    args = parser.parse_args(argv)
    root = Path(args.dir).absolute()
    root.mkdir(parents=True, exist_ok=True)
    return asyncio.run(serve_until_stopped(args, root))


if __name__ == "__main__":
    sys.exit(main())
