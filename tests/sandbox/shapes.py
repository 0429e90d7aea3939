"""JSON shapes of the sandbox GitHub: users, repositories, issues, pull requests, comments,
commits, files, statuses and GitHub Actions' workflow runs, jobs and artifacts, with the fields a
bot reads, named and nested as GitHub does.

The same shapes serve the REST answers and the webhook payloads, so a handler sees one
consistent world whichever way it learns about it.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from tests.sandbox.gitrepo import CommitInfo, FileChange
from tests.sandbox.state import (
    Artifact,
    Comment,
    Issue,
    Label,
    Pull,
    Reaction,
    Review,
    SandboxRepo,
    Status,
    Team,
    WorkflowRun,
    stable_id,
)

if TYPE_CHECKING:
    from tests.sandbox.github_server import SandboxGitHub

REACTIONS = ("+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes")
NOREPLY = "users.noreply.github.com"
WEB_FLOW_EMAIL = "noreply@github.com"


_USER_URLS = (
    ("followers", "followers"),
    ("following", "following{/other_user}"),
    ("gists", "gists{/gist_id}"),
    ("starred", "starred{/owner}{/repo}"),
    ("subscriptions", "subscriptions"),
    ("organizations", "orgs"),
    ("repos", "repos"),
    ("events", "events{/privacy}"),
    ("received_events", "received_events"),
)
_REPO_URLS = (
    ("forks", "forks"),
    ("keys", "keys{/key_id}"),
    ("collaborators", "collaborators{/collaborator}"),
    ("teams", "teams"),
    ("hooks", "hooks"),
    ("issue_events", "issues/events{/number}"),
    ("events", "events"),
    ("assignees", "assignees{/user}"),
    ("branches", "branches{/branch}"),
    ("tags", "tags"),
    ("blobs", "git/blobs{/sha}"),
    ("git_tags", "git/tags{/sha}"),
    ("git_refs", "git/refs{/sha}"),
    ("trees", "git/trees{/sha}"),
    ("statuses", "statuses/{sha}"),
    ("languages", "languages"),
    ("stargazers", "stargazers"),
    ("contributors", "contributors"),
    ("subscribers", "subscribers"),
    ("subscription", "subscription"),
    ("commits", "commits{/sha}"),
    ("git_commits", "git/commits{/sha}"),
    ("comments", "comments{/number}"),
    ("issue_comment", "issues/comments{/number}"),
    ("contents", "contents/{+path}"),
    ("compare", "compare/{base}...{head}"),
    ("merges", "merges"),
    ("archive", "{archive_format}{/ref}"),
    ("downloads", "downloads"),
    ("issues", "issues{/number}"),
    ("pulls", "pulls{/number}"),
    ("milestones", "milestones{/number}"),
    ("notifications", "notifications{?since,all,participating}"),
    ("labels", "labels{/name}"),
    ("releases", "releases{/id}"),
    ("deployments", "deployments"),
)


def node_id(kind: str, number: int) -> str:
    return base64.b64encode(f"0{len(kind)}:{kind}{number}".encode()).decode()


def login_from_email(email: str) -> str | None:
    """GitHub's noreply addresses (`ID+login@users.noreply.github.com`) name their account."""
    local, _, domain = email.partition("@")
    if domain != NOREPLY:
        return None
    return local.split("+", 1)[-1] or None


#: When the sandbox's App was registered (a fixed moment: its answers are reproducible).
APP_CREATED_AT = "2024-01-01T00:00:00Z"

#: The webhook events the App subscribes to, as app.yml lists them.
APP_EVENTS = ("check_run", "issue_comment", "pull_request", "push", "workflow_job", "workflow_run")


class Shapes:
    def __init__(self, hub: SandboxGitHub) -> None:
        self.hub = hub

    # ------------------------------------------------------------------ urls

    @property
    def api(self) -> str:
        return self.hub.url.rstrip("/") or "http://127.0.0.1"

    @property
    def html(self) -> str:
        return self.hub.html_url.rstrip("/")

    def repo_api(self, repo: SandboxRepo) -> str:
        return f"{self.api}/repos/{repo.full_name}"

    def clone_url(self, repo: SandboxRepo) -> str:
        """Where git fetches and pushes the repository: the sandbox's smart HTTP, as GitHub's
        `https://github.com/{owner}/{repo}.git` (the token goes in an HTTP header)."""
        return f"{self.api}/{repo.full_name}.git"

    # ------------------------------------------------------------------ people

    def user(self, login: str) -> dict[str, Any]:
        user = self.hub.user(login)
        return {
            "login": user.login,
            "id": user.id,
            "node_id": node_id(user.kind, user.id),
            "avatar_url": f"https://avatars.githubusercontent.com/u/{user.id}?v=4",
            "gravatar_id": "",
            "url": f"{self.api}/users/{user.login}",
            "html_url": f"{self.html}/{user.login}",
            **{
                f"{name}_url": f"{self.api}/users/{user.login}/{template}"
                for name, template in _USER_URLS
            },
            "type": user.kind,
            "site_admin": False,
        }

    def team(self, team: Team) -> dict[str, Any]:
        return {
            "id": team.id,
            "node_id": node_id("Team", team.id),
            "name": team.slug,
            "slug": team.slug,
            "description": None,
            "privacy": "closed",
            "permission": {"read": "pull", "write": "push"}.get(team.permission, team.permission),
            "url": f"{self.api}/orgs/{team.org}/teams/{team.slug}",
            "html_url": f"{self.html}/orgs/{team.org}/teams/{team.slug}",
        }

    def organization(self, login: str) -> dict[str, Any]:
        """An organisation as webhook payloads and `GET /orgs/{org}` lists name it."""
        org = self.hub.user(login)
        api = f"{self.api}/orgs/{org.login}"
        return {
            "login": org.login,
            "id": org.id,
            "node_id": node_id("Organization", org.id),
            "url": api,
            "repos_url": f"{api}/repos",
            "events_url": f"{api}/events",
            "hooks_url": f"{api}/hooks",
            "issues_url": f"{api}/issues",
            "members_url": f"{api}/members{{/member}}",
            "public_members_url": f"{api}/public_members{{/member}}",
            "avatar_url": f"https://avatars.githubusercontent.com/u/{org.id}?v=4",
            "description": None,
        }

    def app(self) -> dict[str, Any]:
        hub = self.hub
        return {
            "id": hub.app_id,
            "slug": hub.app_slug,
            "node_id": node_id("Integration", hub.app_id),
            "client_id": hub.auth.client_id,
            "name": hub.app_slug,
            "description": "Pull-request chores for a model repository",
            "external_url": self.hub.url or self.api,
            "owner": self.user(hub.app_owner),
            "html_url": f"{self.html}/apps/{hub.app_slug}",
            "created_at": APP_CREATED_AT,
            "updated_at": APP_CREATED_AT,
            "permissions": dict(hub.auth.permissions),
            "events": list(APP_EVENTS),
            "installations_count": 1,
        }

    def installation(self) -> dict[str, Any]:
        hub = self.hub
        return {
            "id": hub.installation_id,
            "node_id": node_id("Installation", hub.installation_id),
            "app_id": hub.app_id,
            "app_slug": hub.app_slug,
            "account": self.user(hub.app_owner),
            "target_type": hub.user(hub.app_owner).kind,
            "repository_selection": "all",
            "permissions": dict(hub.auth.permissions),
            "events": list(APP_EVENTS),
            "access_tokens_url": f"{self.api}/app/installations/{hub.installation_id}"
            "/access_tokens",
        }

    # ------------------------------------------------------------------ repositories

    def repository(self, repo: SandboxRepo, *, detailed: bool = False) -> dict[str, Any]:
        api = self.repo_api(repo)
        html = f"{self.html}/{repo.full_name}"
        open_issues = sum(1 for issue in repo.issues.values() if issue.state == "open")
        forks = sum(1 for other in self.hub.repos.values() if other.fork_of == repo.full_name)
        shape: dict[str, Any] = {
            "id": repo.id,
            "node_id": node_id("Repository", repo.id),
            "name": repo.name,
            "full_name": repo.full_name,
            "private": repo.private,
            "visibility": "private" if repo.private else "public",
            "owner": self.user(repo.owner),
            "html_url": html,
            "description": repo.description,
            "fork": repo.fork_of is not None,
            "url": api,
            **{f"{name}_url": f"{api}/{template}" for name, template in _REPO_URLS},
            "created_at": repo.created_at,
            "updated_at": repo.created_at,
            "pushed_at": repo.created_at,
            "git_url": f"git://{self.html.split('://', 1)[-1]}/{repo.full_name}.git",
            "ssh_url": f"git@{self.html.split('://', 1)[-1]}:{repo.full_name}.git",
            "clone_url": self.clone_url(repo),
            "svn_url": html,
            "mirror_url": None,
            "homepage": None,
            "size": 0,
            "language": None,
            "license": None,
            "topics": [],
            "is_template": False,
            "archived": False,
            "disabled": False,
            "has_issues": True,
            "has_projects": False,
            "has_downloads": True,
            "has_wiki": False,
            "has_pages": False,
            "has_discussions": False,
            "forks_count": forks,
            "forks": forks,
            "stargazers_count": 0,
            "watchers_count": 0,
            "watchers": 0,
            "open_issues_count": open_issues,
            "open_issues": open_issues,
            "allow_merge_commit": True,
            "allow_squash_merge": True,
            "allow_rebase_merge": False,
            "allow_auto_merge": False,
            "allow_update_branch": False,
            "allow_forking": True,
            "delete_branch_on_merge": False,
            "web_commit_signoff_required": False,
            "custom_properties": {},
            "default_branch": repo.default_branch,
        }
        if detailed:
            # The full-repository shape (`GET /repos/{owner}/{repo}`) counts these too.
            shape["network_count"] = forks
            shape["subscribers_count"] = 0
        if detailed and repo.fork_of is not None:
            parent = self.hub.repo(repo.fork_of)
            shape["parent"] = self.repository(parent)
            root = parent
            while root.fork_of is not None:
                root = self.hub.repo(root.fork_of)
            shape["source"] = self.repository(root)
        return shape

    # ------------------------------------------------------------------ issues and pulls

    def label(self, repo: SandboxRepo, label: Label) -> dict[str, Any]:
        label_id = stable_id("label", repo.full_name, label.name.lower())
        return {
            "id": label_id,
            "node_id": node_id("Label", label_id),
            "url": f"{self.repo_api(repo)}/labels/{label.name}",
            "name": label.name,
            "color": label.color,
            "default": False,
            "description": label.description,
        }

    def labels_of(self, repo: SandboxRepo, issue: Issue) -> list[dict[str, Any]]:
        return [self.label(repo, repo.labels[name.lower()]) for name in issue.labels]

    def reactions_summary(self, url: str, reactions: list[Reaction]) -> dict[str, Any]:
        summary: dict[str, Any] = {"url": url, "total_count": len(reactions)}
        for content in REACTIONS:
            summary[content] = sum(1 for r in reactions if r.content == content)
        return summary

    def reaction(self, reaction: Reaction) -> dict[str, Any]:
        return {
            "id": reaction.id,
            "node_id": node_id("Reaction", reaction.id),
            "user": self.user(reaction.user),
            "content": reaction.content,
            "created_at": reaction.created_at,
        }

    def issue(self, repo: SandboxRepo, issue: Issue) -> dict[str, Any]:
        api = f"{self.repo_api(repo)}/issues/{issue.number}"
        kind = "pull" if issue.is_pull else "issues"
        html = f"{self.html}/{repo.full_name}/{kind}/{issue.number}"
        issue_id = stable_id("issue", repo.full_name, str(issue.number))
        shape: dict[str, Any] = {
            "url": api,
            "repository_url": self.repo_api(repo),
            "labels_url": f"{api}/labels{{/name}}",
            "comments_url": f"{api}/comments",
            "events_url": f"{api}/events",
            "timeline_url": f"{api}/timeline",
            "html_url": html,
            "id": issue_id,
            "node_id": node_id("Issue", issue_id),
            "number": issue.number,
            "title": issue.title,
            "user": self.user(issue.author),
            "labels": self.labels_of(repo, issue),
            "state": issue.state,
            "state_reason": issue.state_reason,
            "locked": issue.locked,
            "active_lock_reason": None,
            "assignee": None,
            "assignees": [],
            "milestone": None,
            "comments": len(issue.comments),
            "created_at": issue.created_at,
            "updated_at": issue.updated_at,
            "closed_at": issue.closed_at,
            "author_association": self.hub.association(repo, issue.author),
            "body": issue.body,
            "reactions": self.reactions_summary(f"{api}/reactions", issue.reactions),
            "performed_via_github_app": None,
        }
        if isinstance(issue, Pull):
            pull_api = f"{self.repo_api(repo)}/pulls/{issue.number}"
            shape["draft"] = issue.draft
            shape["pull_request"] = {
                "url": pull_api,
                "html_url": html,
                "diff_url": f"{html}.diff",
                "patch_url": f"{html}.patch",
                "merged_at": issue.merged_at,
            }
        return shape

    def pull(self, repo: SandboxRepo, pull: Pull, *, detailed: bool = False) -> dict[str, Any]:
        head_sha, base_sha = self.hub.pull_heads(repo, pull)
        head_repo = self.hub.repos.get(pull.head_repo)
        api = f"{self.repo_api(repo)}/pulls/{pull.number}"
        issue_api = f"{self.repo_api(repo)}/issues/{pull.number}"
        html = f"{self.html}/{repo.full_name}/pull/{pull.number}"
        pull_id = stable_id("pull", repo.full_name, str(pull.number))
        head_owner = pull.head_repo.split("/", 1)[0]
        shape: dict[str, Any] = {
            "url": api,
            "id": pull_id,
            "node_id": node_id("PullRequest", pull_id),
            "html_url": html,
            "diff_url": f"{html}.diff",
            "patch_url": f"{html}.patch",
            "issue_url": issue_api,
            "commits_url": f"{api}/commits",
            "review_comments_url": f"{api}/comments",
            "review_comment_url": f"{self.repo_api(repo)}/pulls/comments{{/number}}",
            "comments_url": f"{issue_api}/comments",
            "statuses_url": f"{self.repo_api(repo)}/statuses/{head_sha}",
            "number": pull.number,
            "state": pull.state,
            "locked": pull.locked,
            "active_lock_reason": None,
            "title": pull.title,
            "user": self.user(pull.author),
            "body": pull.body,
            "labels": self.labels_of(repo, pull),
            "milestone": None,
            "draft": pull.draft,
            "created_at": pull.created_at,
            "updated_at": pull.updated_at,
            "closed_at": pull.closed_at,
            "merged_at": pull.merged_at,
            "merge_commit_sha": pull.merge_commit_sha,
            "assignee": None,
            "assignees": [],
            "requested_reviewers": [self.user(login) for login in pull.requested_users],
            "requested_teams": [
                self.team(self.hub.team(repo.owner, slug)) for slug in pull.requested_teams
            ],
            "head": {
                "label": f"{head_owner}:{pull.head_ref}",
                "ref": pull.head_ref,
                "sha": head_sha,
                "user": self.user(head_owner),
                "repo": self.repository(head_repo) if head_repo is not None else None,
            },
            "base": {
                "label": f"{repo.owner}:{pull.base_ref}",
                "ref": pull.base_ref,
                "sha": base_sha,
                "user": self.user(repo.owner),
                "repo": self.repository(repo),
            },
            "_links": {
                "self": {"href": api},
                "html": {"href": html},
                "issue": {"href": issue_api},
                "comments": {"href": f"{issue_api}/comments"},
                "review_comments": {"href": f"{api}/comments"},
                "review_comment": {"href": f"{self.repo_api(repo)}/pulls/comments{{/number}}"},
                "commits": {"href": f"{api}/commits"},
                "statuses": {"href": f"{self.repo_api(repo)}/statuses/{head_sha}"},
            },
            "author_association": self.hub.association(repo, pull.author),
            "auto_merge": None,
        }
        if detailed:
            shape.update(self.hub.pull_stats(repo, pull))
            shape.update(
                {
                    "merged": pull.merged,
                    "merged_by": self.user(pull.merged_by) if pull.merged_by else None,
                    "comments": len(pull.comments),
                    "review_comments": 0,
                    "maintainer_can_modify": pull.maintainer_can_modify,
                }
            )
        return shape

    def comment(self, repo: SandboxRepo, comment: Comment) -> dict[str, Any]:
        api = f"{self.repo_api(repo)}/issues/comments/{comment.id}"
        issue = repo.issues[comment.issue]
        kind = "pull" if issue.is_pull else "issues"
        shape: dict[str, Any] = {
            "url": api,
            "html_url": f"{self.html}/{repo.full_name}/{kind}/{comment.issue}"
            f"#issuecomment-{comment.id}",
            "issue_url": f"{self.repo_api(repo)}/issues/{comment.issue}",
            "id": comment.id,
            "node_id": node_id("IssueComment", comment.id),
            "user": self.user(comment.author),
            "created_at": comment.created_at,
            "updated_at": comment.updated_at,
            "author_association": self.hub.association(repo, comment.author),
            "body": comment.body,
            "reactions": self.reactions_summary(f"{api}/reactions", comment.reactions),
            "performed_via_github_app": (
                self.app() if comment.author == self.hub.bot_login else None
            ),
        }
        return shape

    def review(self, repo: SandboxRepo, pull: Pull, review: Review) -> dict[str, Any]:
        html = f"{self.html}/{repo.full_name}/pull/{pull.number}#pullrequestreview-{review.id}"
        return {
            "id": review.id,
            "node_id": node_id("PullRequestReview", review.id),
            "user": self.user(review.user),
            "body": review.body,
            "state": review.state,
            "html_url": html,
            "pull_request_url": f"{self.repo_api(repo)}/pulls/{pull.number}",
            "author_association": self.hub.association(repo, review.user),
            "submitted_at": review.submitted_at,
            "commit_id": review.commit_id,
        }

    def status(self, repo: SandboxRepo, status: Status) -> dict[str, Any]:
        return {
            "url": f"{self.repo_api(repo)}/statuses/{status.id}",
            "avatar_url": None,
            "id": status.id,
            "node_id": node_id("StatusContext", status.id),
            "state": status.state,
            "description": status.description,
            "target_url": status.target_url,
            "context": status.context,
            "created_at": status.created_at,
            "updated_at": status.created_at,
            "creator": self.user(status.creator),
        }

    # ------------------------------------------------------------------ git objects

    def _person(self, email: str) -> dict[str, Any] | None:
        if email == WEB_FLOW_EMAIL:
            return self.user("web-flow")
        login = login_from_email(email)
        return self.user(login) if login and self.hub.knows(login) else None

    def commit(self, repo: SandboxRepo, info: CommitInfo) -> dict[str, Any]:
        """A commit as the commits, compare and pull-commits endpoints list it."""
        api = self.repo_api(repo)
        return {
            "sha": info.sha,
            "node_id": node_id("Commit", stable_id(info.sha)),
            "commit": {
                "author": {
                    "name": info.author_name,
                    "email": info.author_email,
                    "date": info.author_date,
                },
                "committer": {
                    "name": info.committer_name,
                    "email": info.committer_email,
                    "date": info.committer_date,
                },
                "message": info.message,
                "tree": {"sha": info.tree, "url": f"{api}/git/trees/{info.tree}"},
                "url": f"{api}/git/commits/{info.sha}",
                "comment_count": 0,
                "verification": {
                    "verified": False,
                    "reason": "unsigned",
                    "signature": None,
                    "payload": None,
                    "verified_at": None,
                },
            },
            "url": f"{api}/commits/{info.sha}",
            "html_url": f"{self.html}/{repo.full_name}/commit/{info.sha}",
            "comments_url": f"{api}/commits/{info.sha}/comments",
            "author": self._person(info.author_email),
            "committer": self._person(info.committer_email),
            "parents": [
                {
                    "sha": parent,
                    "url": f"{api}/commits/{parent}",
                    "html_url": f"{self.html}/{repo.full_name}/commit/{parent}",
                }
                for parent in info.parents
            ],
        }

    def file(self, repo: SandboxRepo, change: FileChange, ref: str) -> dict[str, Any]:
        html = f"{self.html}/{repo.full_name}"
        shape: dict[str, Any] = {
            "sha": change.sha,
            "filename": change.path,
            "status": change.status,
            "additions": change.additions,
            "deletions": change.deletions,
            "changes": change.changes,
            "blob_url": f"{html}/blob/{ref}/{change.path}",
            "raw_url": f"{html}/raw/{ref}/{change.path}",
            "contents_url": f"{self.repo_api(repo)}/contents/{change.path}?ref={ref}",
        }
        if change.previous_path is not None:
            shape["previous_filename"] = change.previous_path
        return shape

    def push_commit(
        self, repo: SandboxRepo, info: CommitInfo, changes: list[FileChange]
    ) -> dict[str, Any]:
        """A commit as a push delivery lists it: renames count as removed plus added."""

        def person(name: str, email: str) -> dict[str, Any]:
            shape = {"name": name, "email": email}
            login = "web-flow" if email == WEB_FLOW_EMAIL else login_from_email(email)
            if login:
                shape["username"] = login
            return shape

        return {
            "id": info.sha,
            "tree_id": info.tree,
            "distinct": True,
            "message": info.message,
            "timestamp": info.committer_date,
            "url": f"{self.html}/{repo.full_name}/commit/{info.sha}",
            "author": person(info.author_name, info.author_email),
            "committer": person(info.committer_name, info.committer_email),
            "added": [c.path for c in changes if c.status == "added"],
            "removed": [c.path for c in changes if c.status == "removed"],
            "modified": [c.path for c in changes if c.status not in ("added", "removed")],
        }

    # ------------------------------------------------------------------ GitHub Actions

    def workflow(self, repo: SandboxRepo, run: WorkflowRun) -> dict[str, Any]:
        """The workflow a run belongs to, as a `workflow_run` delivery names it."""
        workflow_id = workflow_id_of(repo, run.workflow_path)
        file = run.workflow_path.rsplit("/", 1)[-1]
        html = f"{self.html}/{repo.full_name}"
        return {
            "id": workflow_id,
            "node_id": node_id("Workflow", workflow_id),
            "name": run.workflow_name,
            "path": run.workflow_path,
            "state": "active",
            "created_at": repo.created_at,
            "updated_at": repo.created_at,
            "url": f"{self.repo_api(repo)}/actions/workflows/{workflow_id}",
            "html_url": f"{html}/blob/{repo.default_branch}/{run.workflow_path}",
            "badge_url": f"{html}/workflows/{file}/badge.svg",
        }

    def workflow_run(self, repo: SandboxRepo, run: WorkflowRun) -> dict[str, Any]:
        api = f"{self.repo_api(repo)}/actions/runs/{run.id}"
        actor = self.user(run.actor)
        info = repo.git.info(run.head_sha)
        suite = stable_id("check-suite", repo.full_name.lower(), str(run.id))
        return {
            "id": run.id,
            "name": run.workflow_name,
            "node_id": node_id("WorkflowRun", run.id),
            "head_branch": run.head_branch,
            "head_sha": run.head_sha,
            "path": run.workflow_path,
            "display_title": run.display_title,
            "run_number": run.run_number,
            "event": "workflow_dispatch",
            "status": run.status,
            "conclusion": run.conclusion,
            "workflow_id": workflow_id_of(repo, run.workflow_path),
            "url": api,
            "html_url": f"{self.html}/{repo.full_name}/actions/runs/{run.id}",
            "pull_requests": [],
            "created_at": run.created_at,
            "updated_at": run.updated_at,
            "actor": actor,
            "triggering_actor": actor,
            "run_attempt": 1,
            "run_started_at": run.created_at,
            "check_suite_id": suite,
            "check_suite_node_id": node_id("CheckSuite", suite),
            "check_suite_url": f"{self.repo_api(repo)}/check-suites/{suite}",
            "referenced_workflows": [],
            "jobs_url": f"{api}/jobs",
            "logs_url": f"{api}/logs",
            "artifacts_url": f"{api}/artifacts",
            "cancel_url": f"{api}/cancel",
            "rerun_url": f"{api}/rerun",
            "previous_attempt_url": None,
            "workflow_url": f"{self.repo_api(repo)}/actions/workflows/"
            f"{workflow_id_of(repo, run.workflow_path)}",
            "head_commit": {
                "id": info.sha,
                "tree_id": info.tree,
                "message": info.message,
                "timestamp": info.committer_date,
                "author": {"name": info.author_name, "email": info.author_email},
                "committer": {"name": info.committer_name, "email": info.committer_email},
            },
            "repository": self.repository(repo),
            "head_repository": self.repository(repo),
        }

    def workflow_job(self, repo: SandboxRepo, run: WorkflowRun) -> dict[str, Any]:
        job = run.job
        api = self.repo_api(repo)
        return {
            "id": job.id,
            "run_id": run.id,
            "workflow_name": run.workflow_name,
            "head_branch": run.head_branch,
            "run_url": f"{api}/actions/runs/{run.id}",
            "run_attempt": 1,
            "node_id": node_id("CheckRun", job.id),
            "head_sha": run.head_sha,
            "url": f"{api}/actions/jobs/{job.id}",
            "html_url": f"{self.html}/{repo.full_name}/actions/runs/{run.id}/job/{job.id}",
            "status": job.status,
            "conclusion": job.conclusion,
            "created_at": job.created_at,
            "started_at": job.started_at or job.created_at,
            "completed_at": job.completed_at,
            "name": job.name,
            "steps": [],
            "check_run_url": f"{api}/check-runs/{job.id}",
            "labels": list(job.labels),
            "runner_id": None if job.runner_name is None else stable_id("runner", job.runner_name),
            "runner_name": job.runner_name,
            "runner_group_id": None if job.runner_name is None else 1,
            "runner_group_name": None if job.runner_name is None else "Default",
        }

    def artifact(self, repo: SandboxRepo, artifact: Artifact) -> dict[str, Any]:
        api = f"{self.repo_api(repo)}/actions/artifacts/{artifact.id}"
        run = repo.workflow_runs[artifact.run_id]
        return {
            "id": artifact.id,
            "node_id": node_id("Artifact", artifact.id),
            "name": artifact.name,
            "size_in_bytes": len(artifact.data),
            "url": api,
            "archive_download_url": f"{api}/zip",
            "expired": artifact.expired,
            "digest": artifact.digest,
            "created_at": artifact.created_at,
            "updated_at": artifact.created_at,
            "expires_at": artifact.expires_at,
            "workflow_run": {
                "id": run.id,
                "repository_id": repo.id,
                "head_repository_id": repo.id,
                "head_branch": run.head_branch,
                "head_sha": run.head_sha,
            },
        }


def workflow_id_of(repo: SandboxRepo, path: str) -> int:
    """A workflow's id: the same for a file on every run, as GitHub keeps it per path."""
    return stable_id("workflow", repo.full_name.lower(), path)
