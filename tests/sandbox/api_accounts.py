"""Endpoints about the App and accounts: installation tokens, the App, installations, users
(and whom a user token speaks for), a repository's own description and a user's permission on
it, and the rate limit."""

from __future__ import annotations

from tests.sandbox.api import Call, Endpoints, GitHubError, Reply, not_found, routes
from tests.sandbox.pagination import paginate
from tests.sandbox.state import LEGACY_PERMISSION

#: Permission levels, to tell whether a token asks for more than the App was granted.
_LEVELS = {"read": 1, "write": 2, "admin": 3}


class AccountEndpoints(Endpoints):
    TOP_ROUTES = routes(
        ("POST", r"/app/installations/(\d+)/access_tokens", "mint", True),
        ("GET", r"/app", "get_app", True),
        ("GET", r"/app/installations", "list_installations", True),
        ("GET", r"/app/installations/(\d+)", "get_installation", True),
        ("GET", r"/installation/repositories", "installation_repositories"),
        ("GET", r"/rate_limit", "rate_limit"),
        ("GET", r"/users/([^/]+)", "get_user"),
        ("GET", r"/user", "authenticated_user"),
    )
    REPO_ROUTES = routes(
        ("GET", r"", "get_repo"),
        ("GET", r"/installation", "repo_installation", True),
        ("GET", r"/collaborators/([^/]+)/permission", "permission"),
    )

    def mint(self, call: Call) -> Reply:
        if call.number() != self.hub.installation_id:
            raise not_found()
        wanted = call.body.get("permissions") if isinstance(call.body, dict) else None
        granted = self.hub.auth.permissions
        if wanted is not None and not isinstance(wanted, dict):
            raise GitHubError(422, 'Invalid request.\n\n"permissions" is not an object.')
        for name, level in (wanted or {}).items():
            have = granted.get(name)
            if have is None or _LEVELS.get(str(level), 9) > _LEVELS.get(have, 0):
                raise GitHubError(
                    422, "The permissions requested are not granted to this installation."
                )
        return Reply(201, self.hub.auth.mint({str(k): str(v) for k, v in (wanted or {}).items()}))

    def get_app(self, call: Call) -> Reply:
        return Reply(200, self.shapes.app())

    def list_installations(self, call: Call) -> Reply:
        return Reply(200, [self.shapes.installation()])

    def get_installation(self, call: Call) -> Reply:
        if call.number() != self.hub.installation_id:
            raise not_found()
        return Reply(200, self.shapes.installation())

    def repo_installation(self, call: Call) -> Reply:
        return Reply(200, self.shapes.installation())

    def installation_repositories(self, call: Call) -> Reply:
        repos = [self.shapes.repository(repo) for repo in self.hub.repos.values()]
        page = paginate(call.url, call.query, repos)
        body = {
            "total_count": len(repos),
            "repository_selection": "all",
            "repositories": page.items,
        }
        return Reply(200, body, {"Link": page.links} if page.links else {})

    def rate_limit(self, call: Call) -> Reply:
        assert call.credential is not None
        core = self.hub.auth.status(call.credential)
        return Reply(200, {"resources": {"core": core}, "rate": core})

    def get_user(self, call: Call) -> Reply:
        if not self.hub.knows(call.args[0]):
            raise not_found()
        return Reply(200, self.shapes.user(call.args[0]))

    def authenticated_user(self, call: Call) -> Reply:
        """Whom a user token speaks for; an installation's token is no one."""
        if call.credential is None or call.credential.login is None:
            raise GitHubError(403, "Resource not accessible by integration")
        return Reply(200, self.shapes.user(call.credential.login))

    def get_repo(self, call: Call) -> Reply:
        shape = self.shapes.repository(call.here, detailed=True)
        if call.credential is not None and call.credential.login is not None:
            # A user token learns what its person may do; people without a role on a private
            # repository were answered 404 before this.
            role = self.hub.role(call.here, call.credential.login) or "read"
            shape["permissions"] = _permissions(role)
        return Reply(200, shape)

    def permission(self, call: Call) -> Reply:
        repo, login = call.here, call.args[0]
        if not self.hub.knows(login):
            raise not_found()
        role = self.hub.role(repo, login)
        if role is None:
            role = "none" if repo.private else "read"
        permission = LEGACY_PERMISSION.get(role, "none")
        user = self.shapes.user(login)
        user["permissions"] = _permissions(role)
        user["role_name"] = role
        return Reply(200, {"permission": permission, "role_name": role, "user": user})


def _permissions(role: str) -> dict[str, bool]:
    """GitHub's `permissions` object for a role ("none": no access at all)."""
    rank = ("none", "read", "triage", "write", "maintain", "admin").index(role)
    return {
        "admin": rank >= 5,
        "maintain": rank >= 4,
        "push": rank >= 3,
        "triage": rank >= 2,
        "pull": rank >= 1,
    }
