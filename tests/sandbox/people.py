"""People and teams of the sandbox GitHub, and the one rule for what a person may do.

A person's role on a repository is the highest of their direct collaborator role, the roles of
their teams in the owner organisation, and admin for the owner of a user-owned repository. It
decides who may be asked to review and what `GET .../collaborators/{user}/permission` answers.
People the sandbox has never heard of do not exist (404 there, as GitHub answers for accounts
that do not exist); anyone named anywhere (an author, a commenter, a collaborator, a team
member) is added on the way.

A person also signs in, through the App's OAuth client: `sign_in_as` says who the browser is
signed in to GitHub as, and what their token may read follows the same roles (a private
repository is seen only by people with a role on it).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable

from tests.sandbox.auth import AppAuth
from tests.sandbox.state import ROLES, SandboxRepo, Team, User, check_login, check_role

_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


class People:
    lock: threading.RLock
    users: dict[str, User]
    teams: dict[tuple[str, str], Team]
    auth: AppAuth

    def add_user(self, login: str, *, kind: str = "User") -> User:
        """Makes `login` an existing GitHub account (people named anywhere else are added)."""
        check_login(login)
        if kind not in ("User", "Bot", "Organization"):
            raise ValueError(f"{kind!r} is not an account type (User, Bot, Organization)")
        with self.lock:
            known = self.users.get(login.lower())
            if known is None:
                if login.endswith("[bot]"):
                    kind = "Bot"
                known = self.users[login.lower()] = User(login, kind)
            return known

    def knows(self, login: str) -> bool:
        return login.lower() in self.users

    def user(self, login: str) -> User:
        known = self.users.get(login.lower())
        return known if known is not None else User(login)

    def add_team(
        self, org: str, slug: str, members: Iterable[str], *, permission: str = "write"
    ) -> Team:
        """A team of `org` with `permission` on the organisation's sandbox repositories."""
        check_role(permission)
        if not _SLUG.match(slug):
            raise ValueError(f"{slug!r} is not a team slug (lower-case letters, digits, - and _)")
        members = [self.add_user(login).login for login in members]
        with self.lock:
            self.add_user(org, kind="Organization")
            team = Team(org, slug, members, permission)
            self.teams[(org.lower(), slug.lower())] = team
            return team

    def team(self, org: str, slug: str) -> Team:
        team = self.teams.get((org.lower(), slug.lower()))
        if team is None:
            raise KeyError(f"no team {org}/{slug}; add it with add_team()")
        return team

    def role(self, repo: SandboxRepo, login: str) -> str | None:
        """The highest role `login` holds on `repo`, or None without any access granted."""
        key = login.lower()
        roles = [role for name, role in repo.collaborators.items() if name.lower() == key]
        if repo.owner_type == "User" and repo.owner.lower() == key:
            roles.append("admin")
        if repo.owner_type == "Organization":
            roles += [
                team.permission
                for (org, _), team in self.teams.items()
                if org == repo.owner.lower() and key in (m.lower() for m in team.members)
            ]
        return max(roles, key=ROLES.index) if roles else None

    def association(self, repo: SandboxRepo, login: str) -> str:
        """GitHub's `author_association` of a person with a repository."""
        key = login.lower()
        if repo.owner.lower() == key:
            return "OWNER"
        if repo.owner_type == "Organization" and any(
            org == repo.owner.lower() and key in (m.lower() for m in team.members)
            for (org, _), team in self.teams.items()
        ):
            return "MEMBER"
        if any(name.lower() == key for name in repo.collaborators):
            return "COLLABORATOR"
        return "NONE"

    def can_read(self, repo: SandboxRepo, login: str) -> bool:
        """Whether `login` sees `repo` at all: anyone a public one, people with a role a private
        one (others get 404, as if it did not exist)."""
        return not repo.private or self.role(repo, login) is not None

    # ------------------------------------------------------------------ signing in

    def sign_in_as(self, login: str | None) -> None:
        """Who the browser is signed in to GitHub as, from now on: the OAuth authorize page
        sends them straight back signed in (GitHub would show its consent page first). None
        signs the browser out, and the authorize page then refuses."""
        with self.lock:
            self.auth.browser_login = None if login is None else self.add_user(login).login

    @property
    def oauth_client_id(self) -> str:
        """The App's OAuth client id, for the bot's GITHUB_CLIENT_ID."""
        return self.auth.client_id

    @property
    def oauth_client_secret(self) -> str:
        """The App's OAuth client secret, for the bot's GITHUB_CLIENT_SECRET."""
        return self.auth.client_secret

    def user_tokens(self, login: str) -> list[str]:
        """The user-to-server tokens handed out for `login`, for tests that look for leaks."""
        with self.lock:
            return [
                token
                for token, (owner, _) in self.auth.user_tokens.items()
                if owner.lower() == login.lower()
            ]
