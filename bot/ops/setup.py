"""`bot setup`: register the GitHub App from `app.yml` through GitHub's manifest flow, and write
the environment file `make run` reads.

A small page on loopback holds a form whose button posts the manifest to GitHub's "new App"
page (a person's or an organisation's); GitHub creates the App and sends the browser back to
this page's `/callback` with a code, which is exchanged, once and within the hour, for the new
App's id, private key, webhook secret and OAuth client. Those go to the environment file (mode
0600) and the key file beside it; nothing secret is printed or logged. The `state` the form
carries is random and checked on the way back, so only the browser this command sent can finish
it.

The manifest is read with a loader for the small YAML subset `app.yml` is written in (mappings,
lists of scalars, comments), so the bot's runtime needs no YAML library.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import html
import json
import os
import re
import secrets
import sys
import webbrowser
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import gidgethub
from aiohttp import web

from bot import logs
from bot.config import ConfigError, Settings, load_env_file
from bot.kit.checkout import UsageError

#: The repository's manifest (beside the `bot` package in a checkout).
MANIFEST_PATH = Path(__file__).resolve().parents[2] / "app.yml"
DEFAULT_ENV_FILE = ".env"
_GITHUB_API = Settings.github_api_url


# --------------------------------------------------------------------------- .env files


#: A value written without quotes.
_ENV_PLAIN = re.compile(r"[A-Za-z0-9_./:@%+,=-]*")


def _env_line(key: str, value: str) -> str:
    if _ENV_PLAIN.fullmatch(value):
        return f"{key}={value}"
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'{key}="{escaped}"'


# --------------------------------------------------------------------------- the manifest


class _Line:
    __slots__ = ("indent", "number", "text")

    def __init__(self, number: int, indent: int, text: str) -> None:
        self.number, self.indent, self.text = number, indent, text

    @property
    def is_item(self) -> bool:
        return self.text == "-" or self.text.startswith("- ")


_KEY = re.compile(r"([A-Za-z_][A-Za-z0-9_-]*)\s*:(?:\s+(.*))?")
_TRUE = frozenset({"true", "yes", "on"})
_FALSE = frozenset({"false", "no", "off"})


def parse_manifest_yaml(text: str, *, source: str = "app.yml") -> dict[str, Any]:
    """The YAML subset `app.yml` uses: nested mappings, block lists of scalars, comments, plain
    or quoted strings, booleans, integers and null. Anything else is refused, naming its line,
    rather than read differently from a YAML library."""

    def fail(line: _Line | None, message: str) -> ConfigError:
        return ConfigError(f"{source}:{line.number if line else 1}: {message}")

    lines: list[_Line] = []
    for number, raw in enumerate(text.splitlines(), 1):
        content = _strip_comment(raw).rstrip()
        stripped = content.lstrip(" ")
        if not stripped:
            continue
        if stripped.startswith("\t") or content[: len(content) - len(stripped)].count("\t"):
            raise fail(_Line(number, 0, ""), "indent with spaces, not tabs")
        lines.append(_Line(number, len(content) - len(stripped), stripped))

    def scalar(line: _Line, value: str) -> Any:
        if value[0] == '"':
            try:
                parsed = json.loads(value)
            except ValueError:
                raise fail(line, "a double-quoted string this reader cannot read") from None
            if not isinstance(parsed, str):
                raise fail(line, "a double-quoted string this reader cannot read")
            return parsed
        if value[0] == "'":
            if len(value) < 2 or not value.endswith("'"):
                raise fail(line, "the closing ' is missing")
            return value[1:-1].replace("''", "'")
        if value in ("[]", "{}"):
            return [] if value == "[]" else {}
        if value[0] in "[{|>&*!%@`" or ": " in value or value.endswith(":"):
            raise fail(line, f"YAML this reader does not support: {value!r}")
        lowered = value.lower()
        if lowered in _TRUE and value in (lowered, lowered.title(), lowered.upper()):
            return True
        if lowered in _FALSE and value in (lowered, lowered.title(), lowered.upper()):
            return False
        if value in ("~", "null", "Null", "NULL"):
            return None
        if re.fullmatch(r"[-+]?(0|[1-9][0-9]*)", value):
            return int(value)
        return value

    def block(i: int, indent: int) -> tuple[Any, int]:
        if lines[i].is_item:
            items: list[Any] = []
            while i < len(lines) and lines[i].indent == indent and lines[i].is_item:
                value = lines[i].text[1:].strip()
                if not value or _KEY.fullmatch(value):
                    raise fail(lines[i], "only scalars are supported in lists")
                items.append(scalar(lines[i], value))
                i += 1
            return items, i
        mapping: dict[str, Any] = {}
        while i < len(lines) and lines[i].indent == indent and not lines[i].is_item:
            line = lines[i]
            match = _KEY.fullmatch(line.text)
            if match is None:
                raise fail(line, "expected `key: value`")
            key, value = match.group(1), (match.group(2) or "").strip()
            if key in mapping:
                raise fail(line, f"{key!r} appears twice")
            i += 1
            if value:
                mapping[key] = scalar(line, value)
            elif i < len(lines) and (
                lines[i].indent > indent or (lines[i].indent == indent and lines[i].is_item)
            ):
                mapping[key], i = block(i, lines[i].indent)
            else:
                mapping[key] = None
        return mapping, i

    if not lines:
        raise fail(None, "the manifest is empty")
    document, end = block(0, lines[0].indent)
    if end < len(lines):
        raise fail(lines[end], "unexpected indentation")
    if not isinstance(document, dict):
        raise fail(lines[0], "the manifest must be a mapping")
    return document


def _strip_comment(line: str) -> str:
    quote = None
    for index, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"" and (index == 0 or line[index - 1] in " \t:-["):
            quote = char
        elif char == "#" and (index == 0 or line[index - 1] in " \t"):
            return line[:index]
    return line


def read_manifest(path: str | os.PathLike[str] = MANIFEST_PATH) -> dict[str, Any]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"manifest not found: {path} (give --manifest)") from None
    return parse_manifest_yaml(text, source=str(path))


def build_manifest(
    base: Mapping[str, Any], *, webhook_url: str, redirect_url: str, public_url: str = ""
) -> dict[str, Any]:
    """`app.yml` with this deployment's URLs: where webhooks go, where GitHub sends the browser
    back (this command's page), and the sign-in callback of the bot's pages when known."""
    for key in ("name", "url"):
        if not isinstance(base.get(key), str) or not base[key].strip():
            raise UsageError(f"the manifest has no {key!r}")
    manifest = dict(base)
    hook = base.get("hook_attributes")
    manifest["hook_attributes"] = {**(hook if isinstance(hook, dict) else {}), "url": webhook_url}
    manifest["redirect_url"] = redirect_url
    manifest.setdefault("public", False)
    manifest.setdefault("default_permissions", {})
    manifest.setdefault("default_events", [])
    if public_url:
        manifest["callback_urls"] = [f"{public_url}/login/callback"]
    else:
        manifest.pop("callback_urls", None)
    return manifest


def _absolute_url(value: str, what: str) -> str:
    from yarl import URL

    url = URL(value)
    if not url.is_absolute() or url.scheme not in ("http", "https") or not url.host:
        raise UsageError(f"{what} must be an absolute http(s) URL, got {value!r}")
    return value


# --------------------------------------------------------------------------- the flow


@dataclass(frozen=True)
class SetupOptions:
    env_file: Path = Path(DEFAULT_ENV_FILE)
    org: str | None = None
    force: bool = False
    host: str = "127.0.0.1"
    port: int = 0
    webhook_url: str | None = None
    #: BOT_PUBLIC_URL: None reads it from the environment.
    public_url: str | None = None
    manifest: Path = MANIFEST_PATH


@dataclass(frozen=True)
class Created:
    """What the conversion gave, less the secrets: for the closing message."""

    slug: str
    app_id: int
    html_url: str
    env_file: Path
    key_file: Path

    @property
    def install_url(self) -> str:
        return f"{self.html_url.rstrip('/')}/installations/new"


class SetupServer:
    """The loopback page of one manifest flow; `wait()` ends with the command's exit code."""

    def __init__(self, options: SetupOptions, environ: Mapping[str, str] | None = None) -> None:
        env = dict(os.environ if environ is None else environ)
        self.options = options
        self.env_file = options.env_file.expanduser().absolute()
        # Refused up front, before anything is served or registered.
        if self.env_file.exists() and not options.force:
            raise UsageError(
                f"{self.env_file} exists: pass --force to replace it (its App stays registered"
                " on GitHub), or --env-file to write elsewhere"
            )
        if not self.env_file.parent.is_dir():
            raise UsageError(f"{self.env_file.parent} is not a folder")
        if options.org is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]*", options.org):
            raise UsageError(f"{options.org!r} is not an organisation's login")
        public = options.public_url
        if public is None:
            public = env.get("BOT_PUBLIC_URL", "").strip()
        public = public.rstrip("/")
        if public:
            _absolute_url(public, "BOT_PUBLIC_URL")
        webhook = options.webhook_url or (f"{public}/webhook" if public else "")
        if not webhook:
            raise UsageError(
                "where should GitHub send webhooks? give --webhook-url URL or set BOT_PUBLIC_URL"
            )
        self.webhook_url = _absolute_url(webhook, "--webhook-url")
        api = (env.get("GITHUB_API_URL", "").strip() or _GITHUB_API).rstrip("/")
        self.settings = Settings(github_api_url=_absolute_url(api, "GITHUB_API_URL"))
        self.public_url = public
        self.base_manifest = read_manifest(options.manifest)
        self.state = secrets.token_urlsafe(24)
        self.url = ""
        self.created: Created | None = None
        self._result: asyncio.Future[int] | None = None
        self._runner: web.AppRunner | None = None

    # ------------------------------------------------------------------ serving

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/", self._form)
        app.router.add_get("/callback", self._callback)
        self._result = asyncio.get_running_loop().create_future()
        self._runner = web.AppRunner(app, access_log=None)  # the callback's URL holds the code
        await self._runner.setup()
        try:
            site = web.TCPSite(self._runner, self.options.host, self.options.port)
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            where = f"{self.options.host}:{self.options.port}"
            raise UsageError(f"cannot listen on {where}: {exc.strerror}") from None
        host, port = self._runner.addresses[0][:2]
        host = f"[{host}]" if ":" in host else host
        self.url = f"http://{host}:{port}"
        return self.url

    async def wait(self) -> int:
        assert self._result is not None, "start() first"
        try:
            return await self._result
        finally:
            await self.close()

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def manifest(self) -> dict[str, Any]:
        return build_manifest(
            self.base_manifest,
            webhook_url=self.webhook_url,
            redirect_url=f"{self.url}/callback",
            public_url=self.public_url,
        )

    @property
    def form_action(self) -> str:
        web_url = self.settings.github_web_url.rstrip("/")
        where = f"/organizations/{self.options.org}" if self.options.org else ""
        return f"{web_url}{where}/settings/apps/new?state={self.state}"

    async def _form(self, _request: web.Request) -> web.Response:
        manifest = self.manifest
        owner = f"the organisation {self.options.org}" if self.options.org else "your account"
        body = (
            f"<h1>Register {html.escape(manifest['name'])}</h1>"
            f"<p>GitHub creates the App on {html.escape(owner)} with the permissions and events"
            " of <code>app.yml</code>; its webhooks go to"
            f" <code>{html.escape(self.webhook_url)}</code>.</p>"
            f'<form method="post" action="{html.escape(self.form_action)}">'
            f'<input type="hidden" name="manifest" value="{html.escape(json.dumps(manifest))}">'
            '<button type="submit">Create the GitHub App</button></form>'
        )
        return _page("Register the GitHub App", body)

    async def _callback(self, request: web.Request) -> web.StreamResponse:
        state = request.query.get("state", "")
        if not hmac.compare_digest(state.encode(), self.state.encode()):
            return _page(
                "Not this setup",
                "<p>This link did not come from the form this <code>bot setup</code> served"
                " (its state does not match). Start again from that page.</p>",
                status=400,
            )
        code = request.query.get("code", "")
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,100}", code):
            return _page("No code", "<p>GitHub sent no usable code back.</p>", status=400)
        assert self._result is not None
        if self._result.done():
            return _page("Already done", "<p>This setup has finished.</p>", status=409)
        if self.env_file.exists() and not self.options.force:
            # Before the code is used up: move the file away and reload this page.
            return _page(
                "The environment file appeared",
                f"<p>{html.escape(str(self.env_file))} exists now; move it away and reload this"
                " page (GitHub's code stays good for an hour).</p>",
                status=409,
            )
        try:
            app = await self._convert(request, code)
        except _ConversionFailed as failed:
            print(f"error: {failed}", file=sys.stderr)
            response = _page(
                "GitHub did not hand over the App",
                f"<p>{html.escape(str(failed))}</p><p>Run <code>bot setup</code> again.</p>",
                status=502,
            )
            return await self._finish(request, response, 1)
        try:
            self.created = self._write(app)
        except (OSError, UsageError) as exc:
            message = f"the App was created on GitHub but its credentials were not saved: {exc}"
            print(f"error: {message}", file=sys.stderr)
            response = _page("Not saved", f"<p>{html.escape(message)}</p>", status=500)
            return await self._finish(request, response, 1)
        created = self.created
        print(f"Created the GitHub App {created.slug} (id {created.app_id}).")
        print(f"Wrote {created.env_file} and {created.key_file} (both mode 0600).")
        print(f"Install it on your repositories: {created.install_url}")
        print("Then run `make run`: it reads the environment file.")
        install = html.escape(created.install_url)
        body = (
            f"<p>The GitHub App <strong>{html.escape(created.slug)}</strong> exists and its"
            f" credentials are in <code>{html.escape(str(created.env_file))}</code>.</p>"
            f'<p>Next: <a href="{install}">install it on your repositories</a>, then run'
            " <code>make run</code>. You can close this page.</p>"
        )
        return await self._finish(request, _page("Done", body), 0)

    async def _finish(
        self, request: web.Request, response: web.Response, code: int
    ) -> web.Response:
        """Sends the page before the command ends, so the browser sees it."""
        await response.prepare(request)
        await response.write_eof()
        assert self._result is not None
        if not self._result.done():
            self._result.set_result(code)
        return response

    async def _convert(self, request: web.Request, code: str) -> dict[str, Any]:
        from bot.clients.github import GitHubAPI

        async with aiohttp.ClientSession() as session:
            gh = GitHubAPI(session, base_url=self.settings.github_api_url, max_retries=0)
            try:
                app = await gh.post(
                    "/app-manifests/{code}/conversions", url_vars={"code": code}, data=b""
                )
            except gidgethub.GitHubException as exc:
                status = getattr(exc, "status_code", None)
                reason = {
                    404: "GitHub does not know this code: it was used already or is over an"
                    " hour old",
                    422: "GitHub refused the manifest",
                }.get(int(status) if status is not None else 0, "GitHub refused the code")
                detail = str(exc).strip()
                raise _ConversionFailed(
                    f"{reason} ({int(status) if status else '?'}{': ' + detail if detail else ''})"
                ) from None
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise _ConversionFailed(f"cannot reach GitHub: {exc}") from None
        if not isinstance(app, dict):
            raise _ConversionFailed("GitHub's answer is not an App")
        for key in ("pem", "webhook_secret", "client_secret"):
            if isinstance(app.get(key), str):
                logs.add_secret(app[key])
        if not isinstance(app.get("id"), int) or not isinstance(app.get("pem"), str):
            raise _ConversionFailed("GitHub's answer has no App id or private key")
        if not re.fullmatch(r"[A-Za-z0-9_-]+", str(app.get("slug", ""))):
            raise _ConversionFailed("GitHub's answer has no usable App slug")
        return app

    def _write(self, app: Mapping[str, Any]) -> Created:
        slug = str(app["slug"])
        key_file = self.env_file.parent / f"{slug}.private-key.pem"
        values = {
            "GITHUB_APP_ID": str(app["id"]),
            "GITHUB_PRIVATE_KEY_PATH": str(key_file),
        }
        for key, field_name in (
            ("GITHUB_WEBHOOK_SECRET", "webhook_secret"),
            ("GITHUB_CLIENT_ID", "client_id"),
            ("GITHUB_CLIENT_SECRET", "client_secret"),
        ):
            if isinstance(app.get(field_name), str) and app[field_name]:
                values[key] = app[field_name]
        if self.settings.github_api_url != _GITHUB_API:
            values["GITHUB_API_URL"] = self.settings.github_api_url
        if self.public_url:
            values["BOT_PUBLIC_URL"] = self.public_url
        html_url = str(app.get("html_url") or f"{self.settings.github_web_url}/apps/{slug}")
        text = "\n".join(
            [
                f"# The GitHub App {slug} ({html_url}), written by `bot setup`.",
                "# Secrets: keep this file to yourself and out of version control.",
                *(_env_line(key, value) for key, value in values.items()),
                "",
            ]
        )
        # The key first: the environment file names it. The key is shown once by GitHub, so
        # it replaces an older key of the same App rather than be lost.
        _write_private(key_file, str(app["pem"]), replace=True)
        _write_private(self.env_file, text, replace=self.options.force)
        return Created(slug, int(app["id"]), html_url, self.env_file, key_file)


class _ConversionFailed(Exception):
    """GitHub did not exchange the code; the message says why, with nothing secret in it."""


def _write_private(path: Path, text: str, *, replace: bool) -> None:
    """Writes a file only its owner may read; without `replace`, never over an existing one."""
    if not replace:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(text)
        return
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(text)
        temporary.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise


def _page(title: str, body: str, *, status: int = 200) -> web.Response:
    text = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title></head><body>{body}</body></html>"
    )
    return web.Response(status=status, text=text, content_type="text/html")


async def run_setup(
    options: SetupOptions,
    *,
    environ: Mapping[str, str] | None = None,
    open_browser: bool = False,
    ready: Callable[[str], None] | None = None,
) -> int:
    """The whole command: check, serve the form, wait for GitHub's callback; the exit code."""
    server = SetupServer(options, environ)
    url = await server.start()
    print(f"Open {url}/ in a browser and press the button to create the GitHub App on GitHub.")
    print("Waiting for GitHub to send the browser back (Ctrl-C to give up).", flush=True)
    if open_browser:
        with contextlib.suppress(webbrowser.Error):
            webbrowser.open(f"{url}/")
    if ready is not None:
        ready(url)
    return await server.wait()


# --------------------------------------------------------------------------- command line


def cmd_setup(args: argparse.Namespace) -> int:
    options = SetupOptions(
        env_file=Path(args.env_file),
        org=args.org,
        force=args.force,
        host=args.host,
        port=args.port,
        webhook_url=args.webhook_url,
        public_url=args.public_url,
        manifest=Path(args.manifest),
    )
    environ: Mapping[str, str] = os.environ
    if args.force:  # the file being replaced still says which GitHub and where the bot lives
        environ = {**load_env_file(options.env_file), **os.environ}
    return asyncio.run(run_setup(options, environ=environ, open_browser=args.open))


def register_cli(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds `bot setup` to `bot`'s subparsers."""
    text = "register the GitHub App from app.yml (GitHub's manifest flow) and write .env"
    setup = sub.add_parser("setup", help=text, description=text)
    setup.set_defaults(func=cmd_setup)
    setup.add_argument("--org", help="create the App on this organisation (default: your account)")
    setup.add_argument("--env-file", default=DEFAULT_ENV_FILE, help="where to write (.env)")
    setup.add_argument("--force", action="store_true", help="replace an existing env file")
    setup.add_argument("--host", default="127.0.0.1", help="the local page's address (loopback)")
    setup.add_argument("--port", type=int, default=0, help="the local page's port (0: any)")
    setup.add_argument(
        "--webhook-url", help="where GitHub sends webhooks (default: $BOT_PUBLIC_URL/webhook)"
    )
    setup.add_argument("--public-url", help="where the bot is reachable (default: $BOT_PUBLIC_URL)")
    setup.add_argument("--manifest", default=str(MANIFEST_PATH), help="the App manifest (app.yml)")
    setup.add_argument(
        "--open",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="open the page in a browser (default: yes)",
    )
