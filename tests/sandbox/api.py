"""What every endpoint of the sandbox GitHub is built from: a `Call` in, a `Reply` out, errors
in GitHub's shapes, and the lookups endpoints share (a pull request, an issue, a commit).

Endpoints are grouped by subject (`api_accounts`, `api_pulls`, `api_issues`, `api_git`,
`api_checks`, `api_oauth`); each group lists its routes, and `rest.Rest` serves them all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from yarl import URL

from tests.sandbox.auth import Credential
from tests.sandbox.pagination import paginate
from tests.sandbox.state import Comment, Issue, Pull, SandboxRepo

if TYPE_CHECKING:
    from tests.sandbox.github_server import SandboxGitHub

DOCS = "https://docs.github.com/rest"


class GitHubError(Exception):
    """An answer other than success, shaped like GitHub's."""

    def __init__(
        self, status: int, message: str, *, errors: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors


def not_found(message: str = "Not Found") -> GitHubError:
    return GitHubError(404, message)


def invalid(resource: str, field_name: str, message: str, code: str = "custom") -> GitHubError:
    """GitHub's 422 "Validation Failed" naming the field at fault."""
    return GitHubError(
        422,
        "Validation Failed",
        errors=[{"resource": resource, "code": code, "field": field_name, "message": message}],
    )


@dataclass
class Call:
    """One request as an endpoint sees it."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    url: URL
    headers: dict[str, str]  # names lower-cased
    args: tuple[str, ...] = ()
    credential: Credential | None = None
    repo: SandboxRepo | None = None

    @property
    def here(self) -> SandboxRepo:
        """The repository of a `/repos/{owner}/{repo}/...` call."""
        if self.repo is None:
            raise RuntimeError(f"{self.path} is not a repository route")
        return self.repo

    def number(self, index: int = 0) -> int:
        return int(self.args[index])

    def object(self) -> dict[str, Any]:
        if not isinstance(self.body, dict):
            raise GitHubError(422, "Invalid request.\n\nThe request body must be a JSON object.")
        return self.body

    def text_field(self, name: str, *, required: bool = True) -> str | None:
        value = self.object().get(name)
        if value is None and not required:
            return None
        if value is None:
            raise GitHubError(422, f'Invalid request.\n\n"{name}" wasn\'t supplied.')
        if not isinstance(value, str):
            raise GitHubError(422, f'Invalid request.\n\nFor "{name}", {value!r} is not a string.')
        return value

    def string_list(self, name: str) -> list[str]:
        value = self.object().get(name, [])
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise GitHubError(
                422, f'Invalid request.\n\nFor "{name}", {value!r} is not an array of strings.'
            )
        return value


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # JSON, or bytes for a raw file, or text
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Route:
    """`pattern` matches the whole path (top-level routes) or what follows `/repos/{o}/{r}`."""

    method: str
    pattern: re.Pattern[str]
    handler: str
    jwt: bool = False  # an App endpoint, authenticated with the App's JWT


def routes(*specs: tuple[str, str, str] | tuple[str, str, str, bool]) -> tuple[Route, ...]:
    return tuple(
        Route(spec[0], re.compile(spec[1]), spec[2], bool(spec[3]) if len(spec) > 3 else False)
        for spec in specs
    )


class Endpoints:
    """A group of endpoints; subclasses list theirs in TOP_ROUTES and REPO_ROUTES."""

    TOP_ROUTES: tuple[Route, ...] = ()
    REPO_ROUTES: tuple[Route, ...] = ()

    def __init__(self, hub: SandboxGitHub) -> None:
        self.hub = hub
        self.shapes = hub.shapes

    @property
    def actor(self) -> str:
        """Who the App's writes are attributed to: its bot account."""
        return self.hub.bot_login

    def page(self, call: Call, items: list[Any], **options: Any) -> Reply:
        """One page of `items` as GitHub paginates (`per_page`, `page`, a `Link` header)."""
        found = paginate(call.url, call.query, items, **options)
        return Reply(200, found.items, {"Link": found.links} if found.links else {})

    def find_pull(self, call: Call, index: int = 0) -> Pull:
        issue = call.here.issues.get(call.number(index))
        if not isinstance(issue, Pull):
            raise not_found()
        return issue

    def find_issue(self, call: Call, index: int = 0) -> Issue:
        issue = call.here.issues.get(call.number(index))
        if issue is None:
            raise not_found()
        return issue

    def find_comment(self, call: Call) -> Comment:
        comment = call.here.comments.get(call.number())
        if comment is None:
            raise not_found()
        return comment

    def find_commit(self, call: Call, ref: str, *, status: int = 422) -> str:
        """The commit `ref` names; GitHub's "No commit found" (422, or 404 where GitHub says so)."""
        sha = call.here.git.resolve(ref)
        if sha is None:
            raise GitHubError(status, f"No commit found for SHA: {ref}")
        return sha
