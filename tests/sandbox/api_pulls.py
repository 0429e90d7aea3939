"""Pull request endpoints: lists, one pull request, its files, commits, reviews, and the
review requests, with GitHub's rules on who may be asked to review."""

from __future__ import annotations

from typing import Any

from tests.sandbox.api import Call, Endpoints, GitHubError, Reply, invalid, routes
from tests.sandbox.pagination import paginate
from tests.sandbox.state import Pull, SandboxRepo, now_iso

#: GitHub lists at most this many files, and this many commits, of a pull request.
PULL_FILES_CAP = 3000
PULL_COMMITS_CAP = 250


class PullEndpoints(Endpoints):
    REPO_ROUTES = routes(
        ("GET", r"/pulls", "list_pulls"),
        ("GET", r"/pulls/(\d+)", "get_pull"),
        ("GET", r"/pulls/(\d+)/files", "pull_files"),
        ("GET", r"/pulls/(\d+)/commits", "pull_commits"),
        ("GET", r"/pulls/(\d+)/reviews", "pull_reviews"),
        ("GET", r"/pulls/(\d+)/requested_reviewers", "get_requested"),
        ("POST", r"/pulls/(\d+)/requested_reviewers", "request_reviewers"),
        ("DELETE", r"/pulls/(\d+)/requested_reviewers", "remove_reviewers"),
    )

    def list_pulls(self, call: Call) -> Reply:
        repo = call.here
        state = call.query.get("state", "open")
        if state not in ("open", "closed", "all"):
            raise invalid("PullRequest", "state", f"{state} is not a valid state")
        head = call.query.get("head")
        base = call.query.get("base")
        pulls = [issue for issue in repo.issues.values() if isinstance(issue, Pull)]
        pulls = [p for p in pulls if state == "all" or p.state == state]
        if head:
            owner, _, branch = head.rpartition(":")
            pulls = [
                p
                for p in pulls
                if p.head_ref == branch and (not owner or p.head_repo.split("/")[0] == owner)
            ]
        if base:
            pulls = [p for p in pulls if p.base_ref == base]
        key = "updated_at" if call.query.get("sort") == "updated" else "created_at"
        pulls.sort(key=lambda p: (getattr(p, key), p.number))
        if call.query.get("direction", "desc") != "asc":
            pulls.reverse()
        page = paginate(call.url, call.query, pulls)
        body = [self.shapes.pull(repo, p) for p in page.items]
        return Reply(200, body, {"Link": page.links} if page.links else {})

    def get_pull(self, call: Call) -> Reply:
        return Reply(200, self.shapes.pull(call.here, self.find_pull(call), detailed=True))

    def pull_files(self, call: Call) -> Reply:
        repo = call.here
        head, base = self.hub.pull_heads(repo, self.find_pull(call))
        if head is None or base is None:
            return self.page(call, [])
        changes = repo.git.diff(repo.git.merge_base(base, head), head)
        page = paginate(call.url, call.query, changes, cap=PULL_FILES_CAP)
        body = [self.shapes.file(repo, change, head) for change in page.items]
        return Reply(200, body, {"Link": page.links} if page.links else {})

    def pull_commits(self, call: Call) -> Reply:
        repo = call.here
        head, base = self.hub.pull_heads(repo, self.find_pull(call))
        if head is None or base is None:
            return self.page(call, [])
        infos = repo.git.log(head, exclude=[base])[:PULL_COMMITS_CAP]
        page = paginate(call.url, call.query, infos)
        body = [self.shapes.commit(repo, info) for info in page.items]
        return Reply(200, body, {"Link": page.links} if page.links else {})

    def pull_reviews(self, call: Call) -> Reply:
        pull = self.find_pull(call)
        return self.page(call, [self.shapes.review(call.here, pull, r) for r in pull.reviews])

    def _requested(self, repo: SandboxRepo, pull: Pull) -> dict[str, Any]:
        return {
            "users": [self.shapes.user(login) for login in pull.requested_users],
            "teams": [
                self.shapes.team(self.hub.team(repo.owner, slug)) for slug in pull.requested_teams
            ],
        }

    def get_requested(self, call: Call) -> Reply:
        return Reply(200, self._requested(call.here, self.find_pull(call)))

    def request_reviewers(self, call: Call) -> Reply:
        repo, pull = call.here, self.find_pull(call)
        users = call.string_list("reviewers")
        teams = call.string_list("team_reviewers")
        if not users and not teams:
            raise GitHubError(
                422, 'Invalid request.\n\nNo "reviewers" or "team_reviewers" were supplied.'
            )
        if any(login.lower() == pull.author.lower() for login in users):
            raise GitHubError(422, "Review cannot be requested from pull request author.")
        outsiders = [login for login in users if self.hub.role(repo, login) is None]
        unknown_teams = [
            slug
            for slug in teams
            if repo.owner_type != "Organization"
            or (repo.owner.lower(), slug.lower()) not in self.hub.teams
        ]
        if outsiders or unknown_teams:
            raise GitHubError(
                422,
                "Reviews may only be requested from collaborators. One or more of the users or"
                f" teams you specified is not a collaborator of the {repo.full_name} repository.",
            )
        for login in users:
            canonical = self.hub.user(login).login
            if canonical.lower() not in (u.lower() for u in pull.requested_users):
                pull.requested_users.append(canonical)
        for slug in teams:
            canonical = self.hub.team(repo.owner, slug).slug
            if canonical.lower() not in (t.lower() for t in pull.requested_teams):
                pull.requested_teams.append(canonical)
        pull.updated_at = now_iso()
        return Reply(201, self.shapes.pull(repo, pull))

    def remove_reviewers(self, call: Call) -> Reply:
        repo, pull = call.here, self.find_pull(call)
        if "reviewers" not in call.object():
            raise GitHubError(422, 'Invalid request.\n\n"reviewers" wasn\'t supplied.')
        users = {login.lower() for login in call.string_list("reviewers")}
        teams = {slug.lower() for slug in call.string_list("team_reviewers")}
        pull.requested_users = [u for u in pull.requested_users if u.lower() not in users]
        pull.requested_teams = [t for t in pull.requested_teams if t.lower() not in teams]
        return Reply(200, self.shapes.pull(repo, pull))
