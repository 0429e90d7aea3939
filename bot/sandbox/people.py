"""People and teams of the sandbox GitHub, and the one rule for what a person may do.

A person's role on a repository is the highest of their direct collaborator role, the roles of
their teams in the owner organisation, and admin for the owner of a user-owned repository. It
decides who may be asked to review and what `GET .../collaborators/{user}/permission` answers.
People the sandbox has never heard of do not exist (404 there, as GitHub answers for accounts
that do not exist); anyone named anywhere (an author, a commenter, a collaborator, a team
member) is added on the way.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable

from bot.sandbox.state import ROLES, SandboxRepo, Team, User, check_login, check_role

_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


class People:
    lock: threading.RLock
    users: dict[str, User]
    teams: dict[tuple[str, str], Team]

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
