"""A local GitHub stand-in: the REST endpoints the bot uses, over real git repositories.

It answers the way GitHub does for the cases the bot relies on (401 for a bad token, 404 for an
unknown pull request, 422 for a reviewer who is not a collaborator, paginated lists with `Link`
headers, the compare API's file cap), so the bot's tests and `make run` exercise the real
gidgethub client over real HTTP.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import re
import secrets
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bot.sandbox.gitrepos import GitRepo
from bot.sandbox.http import LoopbackServer

COMPARE_FILE_CAP = 300
PULL_FILES_CAP = 3000
NOT_FOUND = {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}


def _not_found() -> web.HTTPNotFound:
    return web.HTTPNotFound(text=json.dumps(NOT_FOUND), content_type="application/json")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    json: Any
    status: int = 0


@dataclass
class Failure:
    method: str
    pattern: re.Pattern[str]
    status: int
    times: int
    headers: dict[str, str]
    body: Any


@dataclass
class Pull:
    number: int
    repo: str
    head: str
    base: str
    title: str
    body: str
    author: str
    draft: bool
    head_repo: str
    created_at: str = field(default_factory=_now)
    state: str = "open"
    merged: bool = False
    merged_at: str | None = None
    merge_commit_sha: str | None = None
    commits: tuple[str, ...] = ()
    requested_users: list[str] = field(default_factory=list)
    requested_teams: list[str] = field(default_factory=list)
    reviews: list[dict[str, Any]] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)


@dataclass
class Repo:
    git: GitRepo
    owner_type: str
    collaborators: dict[str, str]
    issues: dict[int, Pull] = field(default_factory=dict)
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    statuses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def _user(login: str) -> dict[str, Any]:
    kind = "Bot" if login.endswith("[bot]") else "User"
    return {
        "login": login,
        "id": zlib.crc32(login.encode()),
        "type": kind,
    }


class SandboxGitHub(LoopbackServer):
    """State and HTTP face of the fake; see the module docstring."""

    def __init__(self, root: Path, *, app_id: int = 1, installation_id: int = 1) -> None:
        self.root = Path(root)
        self.app_id = app_id
        self.installation_id = installation_id
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.private_key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ).decode()
        self._public_key = key.public_key()
        self.token = "ghp_sandbox_" + secrets.token_hex(12)
        self._tokens: dict[str, float] = {self.token: float("inf")}
        self.repos: dict[str, Repo] = {}
        self.teams: dict[str, set[str]] = {}
        self.requests: list[RecordedRequest] = []
        self._failures: list[Failure] = []
        self._ids = itertools.count(1000)

    # ------------------------------------------------------------------ lifecycle

    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_route("*", "/{tail:.*}", self._route)
        return app

    # ------------------------------------------------------------------ setting up state

    def create_repo(
        self,
        full_name: str,
        *,
        files: Mapping[str, str | bytes] | None = None,
        source: Path | None = None,
        default_branch: str = "main",
        collaborators: Mapping[str, str] | None = None,
        owner_type: str = "Organization",
    ) -> GitRepo:
        repo = GitRepo(self.root, full_name, default_branch)
        repo.create(files or {}, source)
        self.repos[full_name] = Repo(repo, owner_type, dict(collaborators or {}))
        return repo

    def git(self, full_name: str) -> GitRepo:
        return self.repos[full_name].git

    def commit(
        self,
        full_name: str,
        branch: str,
        changes: Mapping[str, str | bytes | None],
        *,
        message: str = "Update",
        author: str = "sandbox-user",
        base: str | None = None,
        renames: Mapping[str, str] | None = None,
    ) -> str:
        return self.git(full_name).commit(
            branch, changes, message=message, author=author, base=base, renames=renames
        )

    def open_pull(
        self,
        full_name: str,
        head: str,
        *,
        base: str | None = None,
        title: str = "A change",
        body: str = "",
        author: str = "contributor",
        draft: bool = False,
        head_repo: str | None = None,
    ) -> int:
        repo = self.repos[full_name]
        number = len(repo.issues) + 1
        repo.issues[number] = Pull(
            number,
            full_name,
            head,
            base or repo.git.default_branch,
            title,
            body,
            author,
            draft,
            head_repo or full_name,
        )
        return number

    def merge_pull(self, full_name: str, number: int, *, squash: bool = False) -> tuple[str, str]:
        repo = self.repos[full_name]
        pull = repo.issues[number]
        base_sha = repo.git.rev(pull.base)
        head_sha = repo.git.rev(pull.head)
        pull.commits = tuple(c.sha for c in repo.git.commits_between(base_sha, head_sha))
        before, after = repo.git.merge(
            pull.head,
            pull.base,
            message=f"{pull.title} (#{number})" if squash else f"Merge pull request #{number}",
            squash=squash,
        )
        pull.state, pull.merged, pull.merged_at, pull.merge_commit_sha = (
            "closed",
            True,
            _now(),
            after,
        )
        return before, after

    def force_push(self, full_name: str, branch: str, sha: str) -> tuple[str, str]:
        return self.git(full_name).set_ref(branch, sha)

    def add_review(self, full_name: str, number: int, user: str, state: str = "COMMENTED") -> None:
        pull = self.repos[full_name].issues[number]
        pull.reviews.append(
            {"id": next(self._ids), "user": _user(user), "state": state, "submitted_at": _now()}
        )

    def add_team(self, org: str, slug: str, members: list[str]) -> None:
        self.teams[f"{org}/{slug}"] = set(members)

    def fail_next(
        self,
        method: str,
        path_regex: str,
        status: int,
        *,
        times: int = 1,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> None:
        self._failures.append(
            Failure(
                method.upper(),
                re.compile(path_regex),
                status,
                times,
                dict(headers or {}),
                body if body is not None else {"message": "Server Error"},
            )
        )

    # state, for assertions
    def comments(self, full_name: str, number: int) -> list[dict[str, Any]]:
        return list(self.repos[full_name].comments.get(number, []))

    def requested_reviewers(self, full_name: str, number: int) -> tuple[list[str], list[str]]:
        pull = self.repos[full_name].issues[number]
        return list(pull.requested_users), list(pull.requested_teams)

    def statuses(self, full_name: str, sha: str) -> list[dict[str, Any]]:
        return list(self.repos[full_name].statuses.get(sha, []))

    def writes(self) -> list[RecordedRequest]:
        return [
            r for r in self.requests if r.method != "GET" and not r.path.endswith("/access_tokens")
        ]

    # ------------------------------------------------------------------ payloads

    def repository_json(self, full_name: str) -> dict[str, Any]:
        repo = self.repos[full_name]
        owner = full_name.split("/", 1)[0]
        return {
            "id": zlib.crc32(full_name.encode()),
            "name": full_name.split("/", 1)[1],
            "full_name": full_name,
            "private": False,
            "owner": {**_user(owner), "type": repo.owner_type},
            "html_url": f"https://github.com/{full_name}",
            "url": f"{self.url}/repos/{full_name}",
            "clone_url": str(repo.git.bare),
            "default_branch": repo.git.default_branch,
            "master_branch": repo.git.default_branch,
        }

    def pull_json(self, pull: Pull) -> dict[str, Any]:
        repo = self.repos[pull.repo]
        git = repo.git
        head_sha = git.rev(pull.head) if git.ref_exists(pull.head) else pull.merge_commit_sha
        base_sha = git.rev(pull.base)
        api = f"{self.url}/repos/{pull.repo}"
        return {
            "url": f"{api}/pulls/{pull.number}",
            "html_url": f"https://github.com/{pull.repo}/pull/{pull.number}",
            "issue_url": f"{api}/issues/{pull.number}",
            "comments_url": f"{api}/issues/{pull.number}/comments",
            "statuses_url": f"{api}/statuses/{head_sha}",
            "number": pull.number,
            "state": pull.state,
            "title": pull.title,
            "body": pull.body,
            "user": _user(pull.author),
            "draft": pull.draft,
            "created_at": pull.created_at,
            "merged": pull.merged,
            "merged_at": pull.merged_at,
            "merge_commit_sha": pull.merge_commit_sha,
            "labels": [{"name": name} for name in pull.labels],
            "requested_reviewers": [_user(u) for u in pull.requested_users],
            "requested_teams": [{"slug": t, "name": t} for t in pull.requested_teams],
            "head": {
                "ref": pull.head,
                "sha": head_sha,
                "label": f"{pull.head_repo.split('/')[0]}:{pull.head}",
                "repo": self.repository_json(pull.head_repo),
            },
            "base": {
                "ref": pull.base,
                "sha": base_sha,
                "label": f"{pull.repo.split('/')[0]}:{pull.base}",
                "repo": self.repository_json(pull.repo),
            },
        }

    def _common(self, full_name: str, sender: str) -> dict[str, Any]:
        return {
            "repository": self.repository_json(full_name),
            "sender": _user(sender),
            "installation": {"id": self.installation_id},
        }

    def pull_request_payload(
        self, full_name: str, number: int, action: str, *, sender: str | None = None
    ) -> dict[str, Any]:
        pull = self.repos[full_name].issues[number]
        return {
            "action": action,
            "number": number,
            "pull_request": self.pull_json(pull),
            **self._common(full_name, sender or pull.author),
        }

    def issue_comment_payload(
        self,
        full_name: str,
        number: int,
        body: str,
        user: str,
        *,
        created_at: str | None = None,
    ) -> dict[str, Any]:
        """Creates the comment (as GitHub does before it sends the event) and describes it."""
        pull = self.repos[full_name].issues[number]
        comment = self._add_comment(full_name, number, body, user, created_at=created_at)
        api = f"{self.url}/repos/{full_name}"
        issue = {
            "number": number,
            "title": pull.title,
            "state": pull.state,
            "user": _user(pull.author),
            "url": f"{api}/issues/{number}",
            "comments_url": f"{api}/issues/{number}/comments",
            "html_url": f"https://github.com/{full_name}/pull/{number}",
            "pull_request": {"url": f"{api}/pulls/{number}"},
        }
        return {
            "action": "created",
            "issue": issue,
            "comment": comment,
            **self._common(full_name, user),
        }

    def push_payload(
        self, full_name: str, ref: str, before: str, after: str, *, forced: bool = False
    ) -> dict[str, Any]:
        git = self.git(full_name)
        null = "0" * 40
        commits: list[dict[str, Any]] = []
        if after != null:
            base = before if before != null else None
            infos = git.commits_between(base, after) if base else [git.info(after)]
            for info in infos[-20:]:  # GitHub lists at most 20 commits in a push payload
                changes = git.commit_changes(info.sha)
                commits.append(
                    {
                        "id": info.sha,
                        "message": info.message,
                        "timestamp": info.timestamp,
                        "author": {"name": info.author, "username": info.author},
                        "added": [c.path for c in changes if c.status in ("added", "renamed")],
                        "removed": [
                            c.previous_path or c.path for c in changes if c.status == "removed"
                        ]
                        + [
                            c.previous_path
                            for c in changes
                            if c.status == "renamed" and c.previous_path
                        ],
                        "modified": [c.path for c in changes if c.status == "modified"],
                    }
                )
        return {
            "ref": ref,
            "before": before,
            "after": after,
            "created": before == null,
            "deleted": after == null,
            "forced": forced,
            "commits": commits,
            "head_commit": commits[-1] if commits else None,
            "compare": f"https://github.com/{full_name}/compare/{before[:12]}...{after[:12]}",
            "pusher": {"name": "sandbox-user"},
            **self._common(full_name, "sandbox-user"),
        }

    # ------------------------------------------------------------------ HTTP plumbing

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body: Any = None
        if request.can_read_body:
            raw = await request.read()
            try:
                body = await request.json() if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
        record = RecordedRequest(request.method, request.path, dict(request.query), body)
        self.requests.append(record)
        try:
            response = self._scripted_failure(request) or await handler(request)
        except web.HTTPException as exc:
            record.status = exc.status
            raise
        record.status = response.status
        return response

    def _scripted_failure(self, request: web.Request) -> web.Response | None:
        for failure in self._failures:
            if failure.method in (request.method, "*") and failure.pattern.search(request.path):
                failure.times -= 1
                if failure.times <= 0:
                    self._failures.remove(failure)
                return web.json_response(
                    failure.body, status=failure.status, headers=failure.headers
                )
        return None

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, credential = header.partition(" ")
        if scheme.lower() not in ("token", "bearer"):
            return False
        expires = self._tokens.get(credential)
        return expires is not None and expires > time.time()

    async def _route(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if request.method == "POST" and (
            m := re.fullmatch(r"/app/installations/(\d+)/access_tokens", path)
        ):
            return self._mint(request, int(m.group(1)))
        if path == "/app":
            return self._app(request)
        if not self._authorized(request):
            return web.json_response(
                {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"},
                status=401,
            )
        match = re.fullmatch(r"/repos/([^/]+/[^/]+)(/.*)?", path)
        if not match or match.group(1) not in self.repos:
            return web.json_response(NOT_FOUND, status=404)
        full_name, rest = match.group(1), match.group(2) or ""
        for method, pattern, name in _ROUTES:
            if method == request.method and (found := re.fullmatch(pattern, rest)):
                return await getattr(self, name)(request, full_name, *found.groups())
        return web.json_response(NOT_FOUND, status=404)

    def _page(
        self,
        request: web.Request,
        items: list[Any],
        *,
        cap: int | None = None,
        key: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> web.Response:
        per_page = min(int(request.query.get("per_page", "30")), 100)
        page = max(int(request.query.get("page", "1")), 1)
        if cap is not None:
            items = items[:cap]
        last = max(1, -(-len(items) // per_page))
        chunk = items[(page - 1) * per_page : page * per_page]
        headers = {}
        links = []
        base = request.url.with_query({**request.query, "per_page": str(per_page)})
        if page < last:
            links.append(f'<{base.update_query(page=str(page + 1))}>; rel="next"')
            links.append(f'<{base.update_query(page=str(last))}>; rel="last"')
        if links:
            headers["Link"] = ", ".join(links)
        body: Any = chunk if key is None else {**(extra or {}), key: chunk}
        return web.json_response(body, headers=headers)

    # ------------------------------------------------------------------ apps

    def _verify_jwt(self, request: web.Request) -> bool:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return False
        try:
            claims = jwt.decode(token, self._public_key, algorithms=["RS256"])
        except jwt.PyJWTError:
            return False
        return str(claims.get("iss")) == str(self.app_id)

    def _mint(self, request: web.Request, installation_id: int) -> web.Response:
        if not self._verify_jwt(request):
            return web.json_response(
                {"message": "A JSON web token could not be decoded"}, status=401
            )
        if installation_id != self.installation_id:
            return web.json_response(NOT_FOUND, status=404)
        token = "ghs_" + secrets.token_hex(16)
        expires = time.time() + 3600
        self._tokens[token] = expires
        return web.json_response(
            {
                "token": token,
                "expires_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires)),
                "permissions": {"pull_requests": "write", "issues": "write", "contents": "read"},
            },
            status=201,
        )

    def _app(self, request: web.Request) -> web.Response:
        if not self._verify_jwt(request):
            return web.json_response(
                {"message": "A JSON web token could not be decoded"}, status=401
            )
        return web.json_response(
            {"id": self.app_id, "slug": "maintainer-bot", "name": "maintainer-bot"}
        )

    # ------------------------------------------------------------------ repository endpoints

    async def get_repo(self, request: web.Request, full_name: str) -> web.Response:
        return web.json_response(self.repository_json(full_name))

    async def get_installation(self, request: web.Request, full_name: str) -> web.Response:
        return web.json_response({"id": self.installation_id})

    def _sha(self, full_name: str, ref: str) -> str:
        try:
            return self.repos[full_name].git.rev(ref)
        except KeyError:
            raise web.HTTPNotFound(
                text=json.dumps(NOT_FOUND), content_type="application/json"
            ) from None

    def _pull(self, full_name: str, number: str) -> Pull:
        pull = self.repos[full_name].issues.get(int(number))
        if pull is None:
            raise _not_found()
        return pull

    async def list_pulls(self, request: web.Request, full_name: str) -> web.Response:
        state = request.query.get("state", "open")
        pulls = [
            self.pull_json(p)
            for p in self.repos[full_name].issues.values()
            if state == "all" or p.state == state
        ]
        return self._page(request, pulls)

    async def get_pull(self, request: web.Request, full_name: str, number: str) -> web.Response:
        pull = self._pull(full_name, number)
        return web.json_response(self.pull_json(pull))

    async def pull_files(self, request: web.Request, full_name: str, number: str) -> web.Response:
        pull = self._pull(full_name, number)
        git = self.repos[full_name].git
        head = pull.merge_commit_sha if pull.merged else git.rev(pull.head)
        base = git.rev(pull.base) if not pull.merged else f"{pull.merge_commit_sha}^1"
        files = await asyncio.to_thread(git.changes, base, head)
        return self._page(request, [_file_json(c) for c in files], cap=PULL_FILES_CAP)

    async def pull_commits(self, request: web.Request, full_name: str, number: str) -> web.Response:
        pull = self._pull(full_name, number)
        git = self.repos[full_name].git
        commits = git.commits_between(git.rev(pull.base), git.rev(pull.head))
        return self._page(request, [_commit_json(c) for c in commits])

    async def pull_reviews(self, request: web.Request, full_name: str, number: str) -> web.Response:
        pull = self._pull(full_name, number)
        return self._page(request, pull.reviews)

    async def get_requested(
        self, request: web.Request, full_name: str, number: str
    ) -> web.Response:
        pull = self._pull(full_name, number)
        return web.json_response(
            {
                "users": [_user(u) for u in pull.requested_users],
                "teams": [{"slug": t, "name": t} for t in pull.requested_teams],
            }
        )

    async def post_requested(
        self, request: web.Request, full_name: str, number: str
    ) -> web.Response:
        pull = self._pull(full_name, number)
        body = await request.json()
        users = body.get("reviewers") or []
        teams = body.get("team_reviewers") or []
        repo = self.repos[full_name]
        org = full_name.split("/", 1)[0]
        if any(u.lower() == pull.author.lower() for u in users):
            return web.json_response(
                {"message": "Review cannot be requested from pull request author."}, status=422
            )
        outsiders = [u for u in users if repo.collaborators.get(u, "none") == "none"]
        unknown_teams = [t for t in teams if f"{org}/{t}" not in self.teams]
        if outsiders or unknown_teams:
            return web.json_response(
                {
                    "message": "Reviews may only be requested from collaborators. One or more of"
                    f" the users or teams you specified is not a collaborator of the {full_name}"
                    " repository.",
                    "documentation_url": "https://docs.github.com/rest/pulls/review-requests",
                },
                status=422,
            )
        for user in users:
            if user not in pull.requested_users:
                pull.requested_users.append(user)
        for team in teams:
            if team not in pull.requested_teams:
                pull.requested_teams.append(team)
        return web.json_response(self.pull_json(pull), status=201)

    async def delete_requested(
        self, request: web.Request, full_name: str, number: str
    ) -> web.Response:
        pull = self._pull(full_name, number)
        body = await request.json()
        pull.requested_users = [
            u for u in pull.requested_users if u not in (body.get("reviewers") or [])
        ]
        pull.requested_teams = [
            t for t in pull.requested_teams if t not in (body.get("team_reviewers") or [])
        ]
        return web.json_response(self.pull_json(pull))

    # ------------------------------------------------------------------ issues and comments

    def _add_comment(
        self, full_name: str, number: int, body: str, user: str, *, created_at: str | None = None
    ) -> dict[str, Any]:
        comment_id = next(self._ids)
        api = f"{self.url}/repos/{full_name}"
        comment = {
            "id": comment_id,
            "body": body,
            "user": _user(user),
            "created_at": created_at or _now(),
            "updated_at": created_at or _now(),
            "url": f"{api}/issues/comments/{comment_id}",
            "html_url": f"https://github.com/{full_name}/pull/{number}#issuecomment-{comment_id}",
            "issue_url": f"{api}/issues/{number}",
            "reactions": {},
        }
        self.repos[full_name].comments.setdefault(number, []).append(comment)
        return comment

    async def get_issue(self, request: web.Request, full_name: str, number: str) -> web.Response:
        pull = self._pull(full_name, number)
        data = self.pull_json(pull)
        data["pull_request"] = {"url": data["url"]}
        return web.json_response(data)

    async def list_comments(
        self, request: web.Request, full_name: str, number: str
    ) -> web.Response:
        self._pull(full_name, number)
        return self._page(request, self.comments(full_name, int(number)))

    async def post_comment(self, request: web.Request, full_name: str, number: str) -> web.Response:
        self._pull(full_name, number)
        body = await request.json()
        if not isinstance(body, dict) or not body.get("body"):
            return web.json_response(
                {"message": 'Invalid request.\n\n"body" wasn\'t supplied.'}, status=422
            )
        comment = self._add_comment(full_name, int(number), body["body"], "maintainer-bot[bot]")
        return web.json_response(comment, status=201)

    async def post_reaction(
        self, request: web.Request, full_name: str, comment_id: str
    ) -> web.Response:
        for comments in self.repos[full_name].comments.values():
            for comment in comments:
                if comment["id"] == int(comment_id):
                    content = (await request.json()).get("content", "")
                    if content in comment["reactions"]:
                        return web.json_response(comment["reactions"][content], status=200)
                    reaction = {
                        "id": next(self._ids),
                        "content": content,
                        "user": _user("maintainer-bot[bot]"),
                    }
                    comment["reactions"][content] = reaction
                    return web.json_response(reaction, status=201)
        return web.json_response(NOT_FOUND, status=404)

    # ------------------------------------------------------------------ statuses

    async def post_status(self, request: web.Request, full_name: str, sha: str) -> web.Response:
        body = await request.json()
        git = self.repos[full_name].git
        if body.get("state") not in ("pending", "success", "failure", "error"):
            return web.json_response({"message": "Validation Failed"}, status=422)
        try:
            full = git.rev(sha)
        except KeyError:
            return web.json_response({"message": f"No commit found for SHA: {sha}"}, status=422)
        status = {
            "id": next(self._ids),
            "state": body["state"],
            "context": body.get("context", "default"),
            "description": body.get("description"),
            "target_url": body.get("target_url"),
            "created_at": _now(),
        }
        self.repos[full_name].statuses.setdefault(full, []).insert(0, status)
        return web.json_response(status, status=201)

    async def combined_status(self, request: web.Request, full_name: str, ref: str) -> web.Response:
        sha = self._sha(full_name, ref)
        latest: dict[str, dict[str, Any]] = {}
        for status in self.repos[full_name].statuses.get(sha, []):
            latest.setdefault(status["context"], status)
        states = [s["state"] for s in latest.values()]
        state = (
            "failure"
            if {"failure", "error"} & set(states)
            else "pending"
            if "pending" in states or not states
            else "success"
        )
        return web.json_response({"state": state, "sha": sha, "statuses": list(latest.values())})

    async def list_statuses(self, request: web.Request, full_name: str, ref: str) -> web.Response:
        sha = self._sha(full_name, ref)
        return self._page(request, self.statuses(full_name, sha))

    # ------------------------------------------------------------------ permissions

    async def permission(self, request: web.Request, full_name: str, user: str) -> web.Response:
        level = self.repos[full_name].collaborators.get(user, "none")
        # GitHub folds maintain into write and triage into read in this field.
        legacy = {"maintain": "write", "triage": "read"}.get(level, level)
        return web.json_response({"permission": legacy, "role_name": level, "user": _user(user)})

    # ------------------------------------------------------------------ commits and contents

    async def compare(
        self, request: web.Request, full_name: str, base: str, head: str
    ) -> web.Response:
        git = self.repos[full_name].git
        try:
            base_sha, head_sha = git.rev(base), git.rev(head)
        except KeyError:
            return web.json_response(NOT_FOUND, status=404)
        merge_base = git.merge_base(base_sha, head_sha)
        ahead, behind = git.ahead_behind(base_sha, head_sha)
        status = (
            "identical"
            if ahead == behind == 0
            else "ahead"
            if behind == 0
            else "behind"
            if ahead == 0
            else "diverged"
        )
        commits = [_commit_json(c) for c in git.commits_between(base_sha, head_sha)]
        files = await asyncio.to_thread(git.changes, base_sha, head_sha)
        extra = {
            "status": status,
            "ahead_by": ahead,
            "behind_by": behind,
            "total_commits": len(commits),
            "base_commit": _commit_json(git.info(base_sha)),
            "merge_base_commit": _commit_json(git.info(merge_base)) if merge_base else None,
            "files": [_file_json(c) for c in files][:COMPARE_FILE_CAP],
        }
        return self._page(request, commits, key="commits", extra=extra)

    async def get_commit(self, request: web.Request, full_name: str, ref: str) -> web.Response:
        git = self.repos[full_name].git
        try:
            sha = git.rev(ref)
        except KeyError:
            return web.json_response({"message": f"No commit found for SHA: {ref}"}, status=422)
        changes = await asyncio.to_thread(git.commit_changes, sha)
        return self._page(
            request,
            [_file_json(c) for c in changes],
            key="files",
            extra=_commit_json(git.info(sha)),
        )

    async def commit_pulls(self, request: web.Request, full_name: str, ref: str) -> web.Response:
        repo = self.repos[full_name]
        try:
            sha = repo.git.rev(ref)
        except KeyError:
            return web.json_response({"message": f"No commit found for SHA: {ref}"}, status=422)
        found = []
        for pull in repo.issues.values():
            if sha == pull.merge_commit_sha or sha in pull.commits:
                found.append(self.pull_json(pull))
            elif pull.state == "open" and repo.git.ref_exists(pull.head):
                head = repo.git.rev(pull.head)
                base = repo.git.rev(pull.base)
                if repo.git.is_ancestor(sha, head) and not repo.git.is_ancestor(sha, base):
                    found.append(self.pull_json(pull))
        return web.json_response(found)

    async def contents(self, request: web.Request, full_name: str, path: str) -> web.Response:
        git = self.repos[full_name].git
        ref = request.query.get("ref") or git.default_branch
        if not git.ref_exists(ref):
            return web.json_response({"message": f"No commit found for the ref {ref}"}, status=404)
        path = path.strip("/")
        data = git.read(ref, path) if path else None
        if data is not None:
            return web.json_response(
                {
                    "type": "file",
                    "encoding": "base64",
                    "name": path.rsplit("/", 1)[-1],
                    "path": path,
                    "size": len(data),
                    "sha": hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest(),  # noqa: S324
                    "content": base64.encodebytes(data).decode(),
                }
            )
        entries = git.list_dir(ref, path)
        if entries is None:
            return web.json_response(NOT_FOUND, status=404)
        return web.json_response(
            [
                {"type": kind, "name": name, "path": f"{path}/{name}".strip("/")}
                for name, kind in entries
            ]
        )

    async def branch(self, request: web.Request, full_name: str, name: str) -> web.Response:
        git = self.repos[full_name].git
        if not git.ref_exists(f"refs/heads/{name}"):
            return web.json_response({"message": "Branch not found"}, status=404)
        return web.json_response({"name": name, "commit": {"sha": git.rev(f"refs/heads/{name}")}})


_ROUTES: tuple[tuple[str, str, str], ...] = (
    ("GET", r"", "get_repo"),
    ("GET", r"/installation", "get_installation"),
    ("GET", r"/pulls", "list_pulls"),
    ("GET", r"/pulls/(\d+)", "get_pull"),
    ("GET", r"/pulls/(\d+)/files", "pull_files"),
    ("GET", r"/pulls/(\d+)/commits", "pull_commits"),
    ("GET", r"/pulls/(\d+)/reviews", "pull_reviews"),
    ("GET", r"/pulls/(\d+)/requested_reviewers", "get_requested"),
    ("POST", r"/pulls/(\d+)/requested_reviewers", "post_requested"),
    ("DELETE", r"/pulls/(\d+)/requested_reviewers", "delete_requested"),
    ("GET", r"/issues/(\d+)", "get_issue"),
    ("GET", r"/issues/(\d+)/comments", "list_comments"),
    ("POST", r"/issues/(\d+)/comments", "post_comment"),
    ("POST", r"/issues/comments/(\d+)/reactions", "post_reaction"),
    ("POST", r"/statuses/([0-9a-f]{4,40})", "post_status"),
    ("GET", r"/commits/([^/]+)/status", "combined_status"),
    ("GET", r"/commits/([^/]+)/statuses", "list_statuses"),
    ("GET", r"/commits/([^/]+)/pulls", "commit_pulls"),
    ("GET", r"/commits/([^/]+)", "get_commit"),
    ("GET", r"/collaborators/([^/]+)/permission", "permission"),
    ("GET", r"/compare/([^/.]+(?:\.[^/.]+)*?)\.\.\.([^/]+)", "compare"),
    ("GET", r"/contents/?(.*)", "contents"),
    ("GET", r"/branches/([^/]+)", "branch"),
)


def _file_json(change: Any) -> dict[str, Any]:
    entry = {
        "filename": change.path,
        "status": change.status,
        "additions": change.additions,
        "deletions": change.deletions,
        "changes": change.changes,
    }
    if change.previous_path:
        entry["previous_filename"] = change.previous_path
    return entry


def _commit_json(info: Any) -> dict[str, Any]:
    return {
        "sha": info.sha,
        "commit": {
            "message": info.message,
            "author": {"name": info.author, "date": info.timestamp},
        },
        "author": _user(info.author),
        "parents": [{"sha": p} for p in info.parents],
    }
