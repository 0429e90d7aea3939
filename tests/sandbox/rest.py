"""The HTTP face of the sandbox GitHub: parsing, recording, programmed failures, credentials,
rate limits and routing to the endpoint groups.

Endpoints run on a worker thread under the sandbox's lock, so git never blocks the event loop
the bot under test shares, and a test's set-up never interleaves with half an answer. Errors
carry GitHub's status codes and bodies (`{"message", "documentation_url", "status"}`, plus
`errors` for validation failures).
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tests.sandbox.api import DOCS, Call, Endpoints, GitHubError, Reply, Route, not_found
from tests.sandbox.api_accounts import AccountEndpoints
from tests.sandbox.api_actions import ActionEndpoints
from tests.sandbox.api_app import AppEndpoints
from tests.sandbox.api_checks import CheckEndpoints
from tests.sandbox.api_git import GitEndpoints
from tests.sandbox.api_issues import IssueEndpoints
from tests.sandbox.api_manifest import ManifestEndpoints
from tests.sandbox.api_oauth import OAuthEndpoints, WebRoute
from tests.sandbox.api_pulls import PullEndpoints
from tests.sandbox.auth import AuthError
from tests.sandbox.state import RecordedRequest

if TYPE_CHECKING:
    from tests.sandbox.github_server import SandboxGitHub

_REPO_PATH = re.compile(r"/repos/([^/]+)/([^/]+)(/.*)?")
_GROUPS: tuple[type[Endpoints], ...] = (
    AppEndpoints,  # before AccountEndpoints: an installation's grants and events as the test set
    AccountEndpoints,
    PullEndpoints,
    IssueEndpoints,
    CheckEndpoints,  # before GitEndpoints, whose `/commits/(.+)` would take its `/check-runs`
    ActionEndpoints,  # `/actions/...`: no other group's pattern reaches it; kept beside checks
    GitEndpoints,
    OAuthEndpoints,
    ManifestEndpoints,  # GitHub's App manifest form and `/app-manifests/{code}/conversions`
)

Handler = Callable[[Call], Reply]
#: Not kept with a recorded request: tests look at requests, and tokens have no place there.
_CREDENTIAL_HEADERS = frozenset({"authorization", "cookie"})


class Rest:
    def __init__(self, hub: SandboxGitHub) -> None:
        self.hub = hub
        self._top: list[tuple[Route, Handler]] = []
        self._repo: list[tuple[Route, Handler]] = []
        for group_type in _GROUPS:
            group = group_type(hub)
            self._top += [(route, getattr(group, route.handler)) for route in group.TOP_ROUTES]
            self._repo += [(route, getattr(group, route.handler)) for route in group.REPO_ROUTES]

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        self.hub.git_http.add_routes(app)  # `/{owner}/{repo}.git/...`, before the API's
        app.router.add_route("*", "/{tail:.*}", self.answer)
        return app

    async def answer(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body: Any = None
        bad_json = False
        if raw.strip():
            try:
                body = json.loads(raw)
            except ValueError:
                # A browser's form (GitHub's web pages take them) is text for its page to read.
                bad_json = request.content_type != "application/x-www-form-urlencoded"
                body = raw.decode("utf-8", "replace")
        record = RecordedRequest(
            request.method,
            request.path,
            dict(request.query),
            body,
            headers={
                key.lower(): value
                for key, value in request.headers.items()
                if key.lower() not in _CREDENTIAL_HEADERS
            },
        )
        hub = self.hub
        if not hub.url:  # served by a test server: links in answers point where it listens
            hub.url = f"{request.scheme}://{request.host}"
        with hub.lock:
            hub.requests.append(record)
            hold = hub.take_hold(request.method, request.path)
        if hold is not None:
            hold.reached.set()
            await hold.released.wait()  # a slow GitHub, for this request alone
        with hub.lock:
            failure = self._programmed_failure(request.method, request.path)
        if failure is not None:
            reply = failure
        elif bad_json:
            reply = Reply(400, _error_body(400, "Problems parsing JSON"))
        else:
            call = Call(
                request.method,
                request.path,
                dict(request.query),
                body,
                request.url,
                {key.lower(): value for key, value in request.headers.items()},
            )
            try:
                reply = await asyncio.to_thread(self._answer_locked, call)
            except Exception:
                record.status = 500
                raise
        record.status = reply.status
        if hub.record_answers and not isinstance(reply.body, bytes | str):
            record.answer = reply.body
        return _response(reply)

    def _programmed_failure(self, method: str, path: str) -> Reply | None:
        for failure in self.hub.failures:
            if failure.method in (method, "*") and failure.pattern.search(path):
                failure.times -= 1
                if failure.times <= 0:
                    self.hub.failures.remove(failure)
                return Reply(failure.status, failure.body, dict(failure.headers))
        return None

    def _answer_locked(self, call: Call) -> Reply:
        with self.hub.lock:
            return self._answer(call)

    def _find(self, call: Call) -> tuple[Route | None, Handler | None, str | None]:
        """The route and handler of a call and, for a repository route, the repository."""
        for route, handler in self._top:
            if route.method == call.method and (found := route.pattern.fullmatch(call.path)):
                call.args = found.groups()
                return route, handler, None
        match = _REPO_PATH.fullmatch(call.path)
        if match is None:
            return None, None, None
        full_name, rest = f"{match.group(1)}/{match.group(2)}", match.group(3) or ""
        for route, handler in self._repo:
            if route.method == call.method and (found := route.pattern.fullmatch(rest)):
                call.args = found.groups()
                return route, handler, full_name
        return None, None, full_name

    def _answer(self, call: Call) -> Reply:
        route, handler, full_name = self._find(call)
        if isinstance(route, WebRoute) and handler is not None:  # GitHub's web pages
            try:
                return handler(call)
            except GitHubError as exc:
                return Reply(exc.status, _error_body(exc.status, exc.message, exc.errors))
        auth = self.hub.auth
        authorization = call.headers.get("authorization", "")
        try:
            if route is not None and route.jwt:
                credential = auth.check_jwt(authorization)
            else:
                credential = auth.check_token(authorization)
        except AuthError as exc:
            return Reply(exc.status, _error_body(exc.status, exc.message))
        call.credential = credential
        if route is not None and route.handler == "rate_limit":
            headers = auth.headers(credential)  # asking for the rate limit costs nothing
        else:
            allowed, headers = auth.spend(credential)
            if not allowed:
                message = auth.rate_limited_message(credential)
                return Reply(403, _error_body(403, message), headers)
        try:
            if handler is None:
                raise not_found()
            if full_name is not None:
                try:
                    call.repo = self.hub.repo(full_name)
                except KeyError:
                    raise not_found() from None
                if credential.login and not self.hub.can_read(call.repo, credential.login):
                    raise not_found()  # a person's token sees no private repository of others
            reply = handler(call)
        except GitHubError as exc:
            reply = Reply(exc.status, _error_body(exc.status, exc.message, exc.errors))
        reply.headers = {**headers, **reply.headers}
        return reply


def _error_body(
    status: int, message: str, errors: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"message": message}
    if errors:
        body["errors"] = errors
    body["documentation_url"] = DOCS
    body["status"] = str(status)
    return body


def _response(reply: Reply) -> web.Response:
    headers = {
        "X-GitHub-Media-Type": "github.v3; format=json",
        "X-GitHub-Request-Id": secrets.token_hex(8).upper(),
        **reply.headers,
    }
    if reply.status == 204 or reply.body is None:
        return web.Response(status=reply.status, headers=headers)
    if isinstance(reply.body, bytes):
        return web.Response(
            status=reply.status,
            body=reply.body,
            headers=headers,
            content_type="application/vnd.github.raw",
        )
    if isinstance(reply.body, str):
        return web.Response(status=reply.status, text=reply.body, headers=headers)
    return web.Response(
        status=reply.status,
        text=json.dumps(reply.body),
        headers=headers,
        content_type="application/json",
        charset="utf-8",
    )
