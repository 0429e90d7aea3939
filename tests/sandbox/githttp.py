"""git over smart HTTP, as GitHub serves it: `{sandbox url}/{owner}/{repo}.git`.

The bot's runners fetch a pull request from its `clone_url` with the installation token as an
HTTP `Authorization` header, and `/style` pushes its fixes the same way; GitHub's rules apply
here too, so a runner that sends the token wrongly, or to the wrong place, fails in the tests:
HTTP Basic with any user name and the token as password; a public repository may be read
anonymously, a private one is 401 without a token and 404 to a token that cannot see it; a push
needs a token that may write contents (403 otherwise).

`git http-backend` (CGI) does the protocol work, run with an argv list and an explicit minimal
environment, its request body streamed in and its answer streamed out (packs can be large),
within a time limit. Before a fetch, the pull requests' `refs/pull/N/head` and `/merge` are
brought up to date, and after a push the test merges are made again, as GitHub does as soon as a
branch moves.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from bot.clients.git import git_env
from bot.jobs.runners.base import close_pipes
from tests.sandbox.auth import AuthError, Credential
from tests.sandbox.state import SandboxRepo

if TYPE_CHECKING:
    from tests.sandbox.github_server import SandboxGitHub

#: `/{owner}/{repo}.git/{what}`: only the smart protocol's three endpoints.
GIT_PATH = re.compile(
    r"/([A-Za-z0-9][A-Za-z0-9-]*)/([A-Za-z0-9_.-]+)\.git/(info/refs|git-upload-pack|git-receive-pack)"
)
SERVICES = ("git-upload-pack", "git-receive-pack")
#: One git exchange may take this long at most (a whole clone of a large repository included).
GIT_HTTP_TIMEOUT_S = 600.0
#: The largest request body taken (a push's pack); GitHub refuses pushes over 2 GiB.
MAX_BODY_BYTES = 2 * 1024**3
_CHUNK = 64 * 1024
_REALM = {"WWW-Authenticate": 'Basic realm="GitHub"'}


@dataclass
class GitHttpRequest:
    """One git request the sandbox answered, for assertions: which repository, which service,
    whether it carried a token (and of which kind), and how it ended."""

    method: str
    full_name: str
    service: str
    credential: str | None  # the credential's kind, None: anonymous
    status: int = 0
    #: how git encoded the request body (`gzip` for a large negotiation), as it arrived
    content_encoding: str | None = None
    #: what http-backend wrote on stderr, or why it was stopped
    error: str = ""


class Refused(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


class GitHttp:
    """The smart HTTP endpoints of every sandbox repository."""

    def __init__(self, hub: SandboxGitHub) -> None:
        self.hub = hub
        self.requests: list[GitHttpRequest] = []
        self.timeout_s = GIT_HTTP_TIMEOUT_S

    def add_routes(self, app: web.Application) -> None:
        app.router.add_route("*", r"/{owner}/{name:[^/]+\.git}/{what:.+}", self.answer)

    # ------------------------------------------------------------------ access

    def _credential(self, request: web.Request) -> tuple[Credential | None, str | None]:
        """Who a request speaks for, and the token it carries (None, None: anonymous)."""
        header = request.headers.get("Authorization", "")
        if not header:
            return None, None
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            raise Refused(401, "Invalid username or token.", _REALM)
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise Refused(401, "Invalid username or token.", _REALM) from None
        _, _, token = decoded.partition(":")
        try:
            return self.hub.auth.check_token(f"token {token}"), token
        except AuthError:
            message = (
                "Invalid username or token."
                " Password authentication is not supported for Git operations."
            )
            raise Refused(401, message, _REALM) from None

    def _may(self, repo: SandboxRepo, credential: Credential, token: str, *, write: bool) -> bool:
        hub = self.hub
        if credential.kind == "user":
            role = hub.role(repo, credential.login or "")
            if write:
                return role in ("write", "maintain", "admin")
            return hub.can_read(repo, credential.login or "")
        level = hub.auth.token_permissions(token).get("contents")
        return level == "write" if write else level in ("read", "write")

    def _authorize(
        self, full_name: str, service: str, credential: Credential | None, token: str | None
    ) -> SandboxRepo:
        write = service == "git-receive-pack"
        hub = self.hub
        with hub.lock:
            try:
                repo: SandboxRepo | None = hub.repo(full_name)
            except KeyError:
                repo = None
            if credential is None or token is None:
                if repo is None or repo.private or write:
                    raise Refused(401, "Authentication required.", _REALM)
                return repo
            if repo is None or not self._may(repo, credential, token, write=False):
                raise Refused(404, "Repository not found.")
            if write and not self._may(repo, credential, token, write=True):
                who = credential.login or hub.bot_login
                raise Refused(403, f"Permission to {repo.full_name}.git denied to {who}.")
            return repo

    # ------------------------------------------------------------------ serving

    async def answer(self, request: web.Request) -> web.StreamResponse:
        match = GIT_PATH.fullmatch(request.path)
        service = request.query.get("service", "") if match else ""
        if match is not None and match.group(3) != "info/refs":
            service = match.group(3)
        valid_method = match is not None and (
            (match.group(3) == "info/refs" and request.method == "GET")
            or (match.group(3) != "info/refs" and request.method == "POST")
        )
        if match is None or service not in SERVICES or not valid_method:
            return web.Response(status=404, text="Not Found\n")
        full_name = f"{match.group(1)}/{match.group(2)}"
        record = GitHttpRequest(request.method, full_name, service, None)
        self.requests.append(record)
        try:
            credential, token = self._credential(request)
            record.credential = credential.kind if credential else None
            repo = await asyncio.to_thread(self._authorize, full_name, service, credential, token)
        except Refused as refused:
            record.status = refused.status
            return web.Response(
                status=refused.status, text=refused.message + "\n", headers=refused.headers
            )
        if service == "git-upload-pack":
            await asyncio.to_thread(self._refresh, repo)
        record.content_encoding = request.headers.get("Content-Encoding")
        response = await self._backend(request, repo, match.group(3), credential, record)
        record.status = response.status
        if service == "git-receive-pack" and request.method == "POST":
            await asyncio.to_thread(self._refresh, repo)
        return response

    def _refresh(self, repo: SandboxRepo) -> None:
        with self.hub.lock:
            self.hub.refresh_pulls(repo)

    def _env(
        self, request: web.Request, repo: SandboxRepo, what: str, credential: Credential | None
    ) -> dict[str, str]:
        root = self.hub.root / "repos"
        relative = repo.git.path.relative_to(root).as_posix()
        env = git_env(
            self.hub.root / "home",
            {
                "GIT_PROJECT_ROOT": str(root),
                "GIT_HTTP_EXPORT_ALL": "1",
                "GATEWAY_INTERFACE": "CGI/1.1",
                "SERVER_PROTOCOL": "HTTP/1.1",
                "REQUEST_METHOD": request.method,
                "PATH_INFO": f"/{relative}/{what}",
                "QUERY_STRING": request.query_string,
                "CONTENT_TYPE": request.headers.get("Content-Type", ""),
                "REMOTE_ADDR": request.remote or "127.0.0.1",
            },
        )
        if credential is not None:
            # http-backend takes pushes only from an authenticated user; git logs who pushed.
            env["REMOTE_USER"] = credential.login or self.hub.bot_login
        protocol = request.headers.get("Git-Protocol")
        if protocol:
            env["HTTP_GIT_PROTOCOL"] = protocol
        return env

    async def _backend(
        self,
        request: web.Request,
        repo: SandboxRepo,
        what: str,
        credential: Credential | None,
        record: GitHttpRequest,
    ) -> web.StreamResponse:
        env = self._env(request, repo, what, credential)
        process = await asyncio.create_subprocess_exec(
            "git",
            "http-backend",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=self.hub.root,
        )
        assert process.stdout is not None
        feeding = asyncio.create_task(self._feed(request, process))
        errors = asyncio.create_task(_drain(process.stderr))
        response: web.StreamResponse | None = None
        try:
            async with asyncio.timeout(self.timeout_s):
                status, headers, rest = await _read_cgi_headers(process.stdout)
                response = web.StreamResponse(status=status, headers=headers)
                await response.prepare(request)
                if rest:
                    await response.write(rest)
                while chunk := await process.stdout.read(_CHUNK):
                    await response.write(chunk)
                await feeding
                await process.wait()
                record.error = (await errors).decode("utf-8", "replace").strip()
                await response.write_eof()
                return response
        except (TimeoutError, ConnectionError, _BadCgi) as exc:
            record.error = f"{type(exc).__name__}: {exc}"
            if response is None:
                return web.Response(status=500, text="git http-backend failed\n")
            raise
        finally:
            for task in (feeding, errors):
                task.cancel()
            try:
                if process.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
                    await process.wait()
                await asyncio.gather(feeding, errors, return_exceptions=True)
            finally:
                # A client that went away (a fetch killed with its job) leaves the pipes open
                # until the loop sees their end, which can be after the server is gone.
                close_pipes(process)

    async def _feed(self, request: web.Request, process: asyncio.subprocess.Process) -> None:
        """Streams the request body into http-backend (aiohttp has already undone any gzip)."""
        stdin = process.stdin
        assert stdin is not None
        total = 0
        try:
            while chunk := await request.content.read(_CHUNK):
                total += len(chunk)
                if total > MAX_BODY_BYTES:
                    process.kill()
                    return
                stdin.write(chunk)
                await stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass  # http-backend answered without reading everything (an error of its own)
        finally:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                stdin.close()
                await stdin.wait_closed()


class _BadCgi(Exception):
    """http-backend's answer did not start with CGI headers."""


async def _read_cgi_headers(
    stdout: asyncio.StreamReader,
) -> tuple[int, dict[str, str], bytes]:
    """The status and headers of a CGI answer, and what of its body was read with them."""
    buffer = b""
    while True:
        for separator in (b"\r\n\r\n", b"\n\n"):
            head, found, rest = buffer.partition(separator)
            if found:
                return (*_parse_cgi_headers(head), rest)
        chunk = await stdout.read(_CHUNK)
        if not chunk or len(buffer) > 64 * 1024:
            raise _BadCgi(buffer[:200].decode("utf-8", "replace"))
        buffer += chunk


def _parse_cgi_headers(head: bytes) -> tuple[int, dict[str, str]]:
    status = 200
    headers: dict[str, str] = {}
    for line in head.decode("latin-1").splitlines():
        name, _, value = line.partition(":")
        name, value = name.strip(), value.strip()
        if name.lower() == "status":
            status = int(value.split()[0])
        elif name:
            headers[name] = value
    return status, headers


async def _drain(stream: asyncio.StreamReader | None) -> bytes:
    """Reads http-backend's stderr so it never blocks on a full pipe; kept for errors."""
    if stream is None:
        return b""
    kept = b""
    while chunk := await stream.read(_CHUNK):
        kept = (kept + chunk)[-8192:]
    return kept
