"""The sandbox GitHub's credentials: the App's key pair, App JWTs, installation tokens, a static
token for token mode, the App's OAuth client with its sign-in codes and user-to-server tokens,
and GitHub's per-token rate limit headers.

The checks are GitHub's own, so a client that would be refused by GitHub is refused here too:
an App JWT must be RS256-signed by the App's key, name the App in `iss`, be unexpired and expire
at most ten minutes ahead; an installation token expires after an hour; a sign-in code is good
once, for ten minutes, with the `redirect_uri` it was given for.
"""

from __future__ import annotations

import functools
import math
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

TOKEN_LIFETIME_S = 3600
#: GitHub refuses App JWTs that expire more than ten minutes ahead; clients backdate `iat`
#: by up to a minute for clock drift, which the same allowance covers.
JWT_MAX_LIFETIME_S = 600
CLOCK_DRIFT_S = 60
RATE_WINDOW_S = 3600
CODE_LIFETIME_S = 600


class AuthError(Exception):
    """A credential GitHub would refuse; the message is GitHub's."""

    def __init__(self, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class CodeRefused(Exception):
    """A sign-in code GitHub would not exchange; the message is GitHub's error code."""


@dataclass
class Credential:
    """Who a request speaks for: the App itself (JWT), an installation / the static token, or a
    person signed in through the App's OAuth client (a user-to-server token)."""

    kind: str  # "app" | "installation" | "token" | "user"
    key: str  # what the rate limit is counted against
    login: str | None = None  # the person a user token speaks for


@dataclass
class _Code:
    """A sign-in code the authorize page handed a browser, for one exchange."""

    login: str
    redirect_uri: str
    expires_at: float


@dataclass
class _Bucket:
    used: int
    reset_at: int


@functools.cache
def _app_key() -> rsa.RSAPrivateKey:
    """The App's key pair, made once per process: a 2,048-bit key costs a tenth of a second,
    every test builds a sandbox, and the key guards nothing but the sandbox itself."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class AppAuth:
    def __init__(
        self,
        *,
        app_id: int,
        installation_id: int,
        permissions: dict[str, str],
        rate_limit: int,
    ) -> None:
        self.app_id = app_id
        self.installation_id = installation_id
        self.permissions = dict(permissions)
        self.rate_limit = rate_limit
        key = _app_key()
        self.private_key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ).decode()
        self._public_key = key.public_key()
        self.static_token = "ghp_sandbox" + secrets.token_hex(15)
        self._tokens: dict[str, float] = {}
        #: What each installation token may do (narrowed at minting, or the App's grants).
        self._token_permissions: dict[str, dict[str, str]] = {}
        self._buckets: dict[str, _Bucket] = {}
        #: The App's OAuth client, as on its settings page (`Iv1.` ids are GitHub Apps').
        self.client_id = "Iv1." + secrets.token_hex(8)
        self.client_secret = secrets.token_hex(20)
        #: Who is signed in to the sandbox GitHub in the browser (`sign_in_as`).
        self.browser_login: str | None = None
        self._codes: dict[str, _Code] = {}
        #: User-to-server tokens: token -> (login, expiry).
        self.user_tokens: dict[str, tuple[str, float]] = {}

    # ------------------------------------------------------------------ credentials

    def mint(self, permissions: dict[str, str] | None = None) -> dict[str, Any]:
        """A new installation token, shaped like GitHub's answer; `permissions` narrows it
        (the caller checked they are within the App's)."""
        token = "ghs_" + secrets.token_urlsafe(27)[:36]
        expires = time.time() + TOKEN_LIFETIME_S
        self._tokens[token] = expires
        self._token_permissions[token] = dict(permissions or self.permissions)
        return {
            "token": token,
            "expires_at": _iso(expires),
            "permissions": dict(permissions or self.permissions),
            "repository_selection": "all",
        }

    def token_permissions(self, token: str) -> dict[str, str]:
        """What an installation token was granted when it was minted (the static token, a
        personal access token, may do everything)."""
        if token == self.static_token:
            return {"contents": "write", "metadata": "read"}
        return dict(self._token_permissions.get(token, {}))

    def expire(self, token: str) -> None:
        """Makes an installation or user token expire now (a test of the client's refresh, or
        of a person's token revoked on GitHub)."""
        if token in self._tokens:
            self._tokens[token] = 0.0
        if token in self.user_tokens:
            self.user_tokens[token] = (self.user_tokens[token][0], 0.0)

    # ------------------------------------------------------------------ OAuth web flow

    def grant_code(self, login: str, redirect_uri: str) -> str:
        """The code the authorize page sends the browser back with."""
        code = secrets.token_hex(10)
        self._codes[code] = _Code(login, redirect_uri, time.time() + CODE_LIFETIME_S)
        return code

    def redeem_code(self, code: str, redirect_uri: str | None) -> str:
        """Whom a code signs in; a code is used up even when refused, as GitHub's are."""
        found = self._codes.pop(code, None)
        if found is None or found.expires_at <= time.time():
            raise CodeRefused("bad_verification_code")
        if redirect_uri is not None and redirect_uri != found.redirect_uri:
            raise CodeRefused("redirect_uri_mismatch")
        return found.login

    def mint_user_token(self, login: str) -> dict[str, Any]:
        """A user-to-server token for `login`, shaped like the token exchange's answer (with
        token expiration turned off, so no refresh token)."""
        token = "ghu_" + secrets.token_urlsafe(27)[:36]
        self.user_tokens[token] = (login, math.inf)  # until revoked (`expire`)
        return {"access_token": token, "token_type": "bearer", "scope": ""}

    def check_jwt(self, authorization: str) -> Credential:
        scheme, _, credential = authorization.partition(" ")
        if scheme.lower() != "bearer" or credential.count(".") != 2:
            raise AuthError("A JSON web token could not be decoded")
        try:
            claims = jwt.decode(
                credential.strip(),
                self._public_key,
                algorithms=["RS256"],
                options={"verify_exp": False, "verify_iat": False, "require": ["iat", "exp"]},
            )
        except jwt.PyJWTError:
            raise AuthError("A JSON web token could not be decoded") from None
        now = time.time()
        exp, iat = claims.get("exp"), claims.get("iat")
        if not isinstance(exp, int | float) or exp <= now:
            raise AuthError(
                "'Expiration time' claim ('exp') must be a numeric value representing the future"
                " time at which the assertion expires"
            )
        if exp > now + JWT_MAX_LIFETIME_S + CLOCK_DRIFT_S:
            raise AuthError("'Expiration time' claim ('exp') is too far in the future")
        if not isinstance(iat, int | float) or iat > now + CLOCK_DRIFT_S:
            raise AuthError(
                "'Issued at' claim ('iat') must be an Integer representing the time that the"
                " assertion was issued"
            )
        if str(claims.get("iss")) != str(self.app_id):
            raise AuthError("A JSON web token could not be decoded")
        return Credential("app", f"app:{self.app_id}")

    def check_token(self, authorization: str) -> Credential:
        scheme, _, credential = authorization.partition(" ")
        credential = credential.strip()
        if scheme.lower() not in ("token", "bearer") or not credential:
            raise AuthError("Requires authentication")
        if credential == self.static_token:
            return Credential("token", "token")
        user = self.user_tokens.get(credential)
        if user is not None:
            if user[1] <= time.time():
                raise AuthError("Bad credentials")
            return Credential("user", f"user:{user[0].lower()}", login=user[0])
        expires = self._tokens.get(credential)
        if expires is None or expires <= time.time():
            raise AuthError("Bad credentials")
        return Credential("installation", f"installation:{self.installation_id}")

    # ------------------------------------------------------------------ rate limits

    def _bucket(self, credential: Credential) -> _Bucket:
        now = int(time.time())
        bucket = self._buckets.get(credential.key)
        if bucket is None or bucket.reset_at <= now:
            bucket = self._buckets[credential.key] = _Bucket(0, now + RATE_WINDOW_S)
        return bucket

    def spend(self, credential: Credential) -> tuple[bool, dict[str, str]]:
        """Counts one request; False when the limit was already spent. The headers are GitHub's."""
        bucket = self._bucket(credential)
        allowed = bucket.used < self.rate_limit
        if allowed:
            bucket.used += 1
        return allowed, self.headers(credential)

    def status(self, credential: Credential) -> dict[str, int]:
        """The `GET /rate_limit` view of a credential's budget (asking costs nothing)."""
        bucket = self._bucket(credential)
        return {
            "limit": self.rate_limit,
            "remaining": max(self.rate_limit - bucket.used, 0),
            "reset": bucket.reset_at,
            "used": bucket.used,
        }

    def headers(self, credential: Credential) -> dict[str, str]:
        bucket = self._bucket(credential)
        return {
            "X-RateLimit-Limit": str(self.rate_limit),
            "X-RateLimit-Remaining": str(max(self.rate_limit - bucket.used, 0)),
            "X-RateLimit-Reset": str(bucket.reset_at),
            "X-RateLimit-Used": str(bucket.used),
            "X-RateLimit-Resource": "core",
        }

    def rate_limited_message(self, credential: Credential) -> str:
        if credential.kind == "installation":
            return f"API rate limit exceeded for installation ID {self.installation_id}."
        return "API rate limit exceeded for user."
