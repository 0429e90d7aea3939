"""GitHub's OAuth web flow on the sandbox's web host (which is also its API host): the page a
browser is sent to to sign in, and the exchange of the code it comes back with for a
user-to-server token.

A real GitHub shows a login and consent page; here the browser is already signed in as whoever
the test named with `sign_in_as`, and is sent straight back. These are web pages, not API
endpoints: they take no credential and count against no rate limit, and the exchange answers
its errors as GitHub does, with 200 and an `error` field.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from yarl import URL

from tests.sandbox.api import Call, Endpoints, Reply, Route, not_found
from tests.sandbox.auth import CodeRefused

_OAUTH_DOCS = "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors"
_DESCRIPTIONS = {
    "incorrect_client_credentials": "The client_id and/or client_secret passed are incorrect.",
    "bad_verification_code": "The code passed is incorrect or expired.",
    "redirect_uri_mismatch": "The redirect_uri MUST match the registered callback URL for this"
    " application.",
}


@dataclass(frozen=True)
class WebRoute(Route):
    """A page or form of GitHub's web host: served without an API credential or rate limit."""


def _web_routes(*specs: tuple[str, str, str]) -> tuple[Route, ...]:
    return tuple(
        WebRoute(method, re.compile(pattern), handler) for method, pattern, handler in specs
    )


class OAuthEndpoints(Endpoints):
    TOP_ROUTES = _web_routes(
        ("GET", r"/login/oauth/authorize", "authorize"),
        ("POST", r"/login/oauth/access_token", "access_token"),
    )

    def authorize(self, call: Call) -> Reply:
        auth = self.hub.auth
        if call.query.get("client_id") != auth.client_id:
            raise not_found()  # GitHub shows its 404 page for an unknown client
        redirect_uri = call.query.get("redirect_uri", "")
        target = URL(redirect_uri)
        if not target.is_absolute() or target.scheme not in ("http", "https"):
            return Reply(400, "redirect_uri must be the absolute http(s) URL of the callback")
        if auth.browser_login is None:
            return Reply(401, "Nobody is signed in to the sandbox GitHub: call sign_in_as(login).")
        query = {"code": auth.grant_code(auth.browser_login, redirect_uri)}
        if "state" in call.query:
            query["state"] = call.query["state"]
        return Reply(302, None, {"Location": str(target.update_query(query))})

    def access_token(self, call: Call) -> Reply:
        # GitHub takes the parameters in the query or a JSON body alike.
        params: dict[str, Any] = dict(call.query)
        if isinstance(call.body, dict):
            params.update(call.body)
        auth = self.hub.auth
        secret = params.get("client_secret")
        if (
            params.get("client_id") != auth.client_id
            or not isinstance(secret, str)
            or not hmac.compare_digest(secret.encode(), auth.client_secret.encode())
        ):
            return _answer(call, _error("incorrect_client_credentials"))
        code, redirect_uri = params.get("code"), params.get("redirect_uri")
        try:
            login = auth.redeem_code(
                code if isinstance(code, str) else "",
                redirect_uri if isinstance(redirect_uri, str) else None,
            )
        except CodeRefused as refused:
            return _answer(call, _error(str(refused)))
        return _answer(call, auth.mint_user_token(login))


def _error(code: str) -> dict[str, str]:
    return {"error": code, "error_description": _DESCRIPTIONS[code], "error_uri": _OAUTH_DOCS}


def _answer(call: Call, body: dict[str, str]) -> Reply:
    """JSON when asked for (`Accept: application/json`), else a form, as GitHub answers."""
    if "json" in call.headers.get("accept", ""):
        return Reply(200, body)
    return Reply(200, urlencode(body), {"Content-Type": "application/x-www-form-urlencoded"})
