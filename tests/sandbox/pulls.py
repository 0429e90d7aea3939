"""Pull requests of the sandbox GitHub: opening them from a branch or a fork, their heads
following pushes, GitHub's test merges dated by the pushes, mergeability, merges like GitHub's
button, reviews and review requests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tests.sandbox.gitrepo import Identity, SandboxGitError
from tests.sandbox.repositories import Repositories, parse_date
from tests.sandbox.shapes import WEB_FLOW_EMAIL
from tests.sandbox.state import Pull, Review, SandboxRepo, now_iso

if TYPE_CHECKING:
    from tests.sandbox.shapes import Shapes

REVIEW_STATES = ("APPROVED", "CHANGES_REQUESTED", "COMMENTED", "DISMISSED", "PENDING")
MERGE_METHODS = ("merge", "squash")


class PullRequests(Repositories):
    shapes: Shapes

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
        maintainer_can_modify: bool = False,
        created_at: str | None = None,
    ) -> int:
        """Opens a pull request from `head` (a branch of `head_repo`: this repository or a fork
        of it) into `base` (default: the default branch) and returns its number."""
        with self.lock:
            repo = self.repo(full_name)
            source = self.repo(head_repo) if head_repo else repo
            if source is not repo and not self._same_network(repo, source):
                raise ValueError(f"{source.full_name} is not a fork of {repo.full_name}")
            if source.git.branch_sha(head) is None:
                raise ValueError(f"{source.full_name} has no branch {head!r}")
            base = base or repo.default_branch
            if repo.git.branch_sha(base) is None:
                raise ValueError(f"{repo.full_name} has no branch {base!r}")
            self.add_user(author)
            stamp = created_at or now_iso()
            pull = Pull(
                number=repo.next_number(),
                title=title,
                body=body,
                author=author,
                created_at=stamp,
                updated_at=stamp,
                head_ref=head,
                head_repo=source.full_name,
                base_ref=base,
                draft=draft,
                maintainer_can_modify=maintainer_can_modify,
            )
            repo.issues[pull.number] = pull
            self.pull_heads(repo, pull)
            return pull.number

    def _same_network(self, a: SandboxRepo, b: SandboxRepo) -> bool:
        def root(repo: SandboxRepo) -> str:
            while repo.fork_of is not None:
                repo = self.repo(repo.fork_of)
            return repo.full_name

        return root(a) == root(b)

    def pull_heads(self, repo: SandboxRepo, pull: Pull) -> tuple[str | None, str | None]:
        """(head SHA, base SHA) of a pull request, read from git while it is open.

        A push to the head branch, from anywhere, moves the head; `refs/pull/N/head` in the base
        repository follows it as on GitHub, so the head commit is there even for a fork, and
        GitHub's test merge follows the head and the base tip (`_test_merge`).
        """
        if pull.state != "open":
            return pull.head_sha, pull.base_sha
        with self.lock:
            refs = repo.git.branches()
            source = self.repos.get(pull.head_repo)
            if source is repo:
                head = refs.get(pull.head_ref)
            else:
                head = source.git.branch_sha(pull.head_ref) if source is not None else None
            if head is not None and head != pull.head_sha:
                ref = f"refs/pull/{pull.number}/head"
                if source is repo or source is None:
                    repo.git.update_refs([(ref, head, None)])
                else:  # a fork: its commits come into the base repository, as on GitHub
                    repo.git.fetch(source.path, f"+refs/heads/{pull.head_ref}:{ref}")
                    head = repo.git.rev(ref)
                pull.head_sha = head
            base = refs.get(pull.base_ref, pull.base_sha)
            head = pull.head_sha
            if head is not None and base is not None and pull.test_merge_of != (base, head):
                self._test_merge(repo, pull, base, head, source)
            return head, base

    def _test_merge(
        self, repo: SandboxRepo, pull: Pull, base: str, head: str, source: SandboxRepo | None
    ) -> None:
        """GitHub's test merge of the head into the base tip, made again whenever either moves:
        a merge commit that GitHub commits, served as `merge_commit_sha` and `refs/pull/N/merge`.

        GitHub makes it shortly after the later of the two pushes, so it is dated when that push
        arrived, a time the author cannot write (their commit dates are theirs to choose). A
        head that conflicts gets no merge: the ref goes and `merge_commit_sha` keeps the last
        merge made, as GitHub's does while `mergeable` is false.
        """
        pull.test_merge_of = (base, head)
        ref = f"refs/pull/{pull.number}/merge"
        tree = repo.git.merge_tree(base, head)
        if tree is None:
            repo.git.update_refs([], deletes=[ref])
            return
        pushes = [
            repo.git.pushed_at(pull.base_ref, base),
            source.git.pushed_at(pull.head_ref, head) if source is not None else None,
        ]
        when = max(moment or datetime.now(UTC) for moment in pushes)
        sha = repo.git.commit_tree(
            tree,
            [base, head],
            message=f"Merge {head} into {base}",
            author=self.identity(pull.author, date=when),
            committer=Identity("GitHub", WEB_FLOW_EMAIL, when),
        )
        repo.git.update_refs([(ref, sha, None)])
        pull.merge_commit_sha = sha

    def branch_moved(self, repo: SandboxRepo, branch: str) -> None:
        """GitHub makes the test merges again as soon as a head or a base moves, so a git client
        fetching `refs/pull/N/merge` right after a push finds the new one."""
        for target in list(self.repos.values()):
            for issue in list(target.issues.values()):
                if not isinstance(issue, Pull) or issue.state != "open":
                    continue
                head_here = (
                    issue.head_repo.lower() == repo.full_name.lower() and issue.head_ref == branch
                )
                if head_here or (target is repo and issue.base_ref == branch):
                    self.pull_heads(target, issue)

    def refresh_pulls(self, repo: SandboxRepo) -> None:
        """Brings every open pull request that `repo` is the head or base of up to date (its
        `refs/pull/N/head`, its test merge): git clients fetch those refs without asking the
        REST API first, and a push from a clone moves them as a push to GitHub does."""
        for target in list(self.repos.values()):
            for issue in list(target.issues.values()):
                if not isinstance(issue, Pull) or issue.state != "open":
                    continue
                if target is repo or issue.head_repo.lower() == repo.full_name.lower():
                    self.pull_heads(target, issue)

    def pull_stats(self, repo: SandboxRepo, pull: Pull) -> dict[str, Any]:
        """The fields only a single pull request's answer carries: counts and mergeability."""
        head, base = self.pull_heads(repo, pull)
        if head is None or base is None:
            return {
                "commits": 0,
                "additions": 0,
                "deletions": 0,
                "changed_files": 0,
                "mergeable": None,
                "rebaseable": None,
                "mergeable_state": "unknown",
            }
        merge_base = repo.git.merge_base(base, head)
        files = repo.git.diff(merge_base, head)
        mergeable: bool | None = None
        state = "unknown"
        if pull.state == "open":
            mergeable = repo.git.merge_tree(base, head) is not None
            state = "draft" if pull.draft else ("clean" if mergeable else "dirty")
        return {
            "commits": len(repo.git.reachable(head, exclude=[base])),
            "additions": sum(f.additions for f in files),
            "deletions": sum(f.deletions for f in files),
            "changed_files": len(files),
            "mergeable": mergeable,
            "rebaseable": mergeable,
            "mergeable_state": state,
        }

    def pull(self, full_name: str, number: int) -> Pull:
        with self.lock:
            return self.repo(full_name).pull(number)

    def mark_ready(self, full_name: str, number: int) -> None:
        with self.lock:
            self.pull(full_name, number).draft = False

    def convert_to_draft(self, full_name: str, number: int) -> None:
        with self.lock:
            self.pull(full_name, number).draft = True

    def close_issue(self, full_name: str, number: int, *, reason: str = "completed") -> None:
        """Closes an issue (`reason`: completed or not_planned) or a pull request without
        merging it; a closed PR's head stays where it was, whatever is pushed later."""
        if reason not in ("completed", "not_planned"):
            raise ValueError(f"{reason!r}: an issue closes as completed or not_planned")
        with self.lock:
            repo = self.repo(full_name)
            issue = repo.issue(number)
            if issue.state == "closed":
                raise ValueError(f"{full_name}#{number} is already closed")
            if isinstance(issue, Pull):
                issue.head_sha, issue.base_sha = self.pull_heads(repo, issue)
            issue.state, issue.closed_at, issue.updated_at = "closed", now_iso(), now_iso()
            issue.state_reason = None if issue.is_pull else reason

    def reopen_issue(self, full_name: str, number: int) -> None:
        with self.lock:
            issue = self.repo(full_name).issue(number)
            if isinstance(issue, Pull) and issue.merged:
                raise ValueError(f"{full_name}#{number} is merged; it cannot be reopened")
            issue.state, issue.closed_at, issue.state_reason = "open", None, None
            if isinstance(issue, Pull):
                issue.base_sha = None

    def merge_pull(
        self,
        full_name: str,
        number: int,
        *,
        method: str = "merge",
        merged_by: str | None = None,
        date: datetime | str | None = None,
        pushed_at: datetime | str | None = None,
    ) -> tuple[str, str]:
        """Merges like GitHub's button (a merge commit, or one squashed commit) and returns the
        base branch's (before, after), ready for `push_payload`. `date` is the merge commit's,
        `pushed_at` (default now) when the base branch moved."""
        if method not in MERGE_METHODS:
            raise ValueError(f"merge method {method!r}: the sandbox merges with merge or squash")
        with self.lock:
            repo = self.repo(full_name)
            pull = repo.pull(number)
            if pull.state != "open":
                raise ValueError(f"{full_name}#{number} is {pull.state}, not open")
            if pull.draft:
                raise ValueError(f"{full_name}#{number} is still a draft")
            head, base = self.pull_heads(repo, pull)
            if head is None or base is None:
                raise ValueError(f"{full_name}#{number} has lost its head or base branch")
            tree = repo.git.merge_tree(base, head)
            if tree is None:
                raise SandboxGitError(f"{full_name}#{number} has conflicts with {pull.base_ref}")
            merger = merged_by or (repo.owner if repo.owner_type == "User" else "sandbox-user")
            commits = repo.git.log(head, exclude=[base])
            committer = Identity("GitHub", WEB_FLOW_EMAIL, parse_date(date))
            if method == "merge":
                source = f"{pull.head_repo.split('/', 1)[0]}/{pull.head_ref}"
                message = f"Merge pull request #{number} from {source}\n\n{pull.title}"
                parents = [base, head]
                author = self.identity(merger, date=date)
            else:
                bullets = "\n\n".join(f"* {c.message}" for c in commits)
                message = f"{pull.title} (#{number})" + (f"\n\n{bullets}" if bullets else "")
                parents = [base]
                author = self.identity(pull.author, date=date)
            after = repo.git.commit_tree(
                tree, parents, message=message, author=author, committer=committer
            )
            repo.git.update_refs(
                [(f"refs/heads/{pull.base_ref}", after, base)], pushed_at=parse_date(pushed_at)
            )
            stamp = now_iso()
            pull.state, pull.merged, pull.merged_at, pull.closed_at = "closed", True, stamp, stamp
            pull.updated_at = stamp
            pull.merged_by = self.add_user(merger).login
            pull.merge_commit_sha = after
            pull.head_sha, pull.base_sha = head, base
            pull.merged_commits = tuple(c.sha for c in commits)
            self.branch_moved(repo, pull.base_ref)
            return base, after

    def add_review(
        self,
        full_name: str,
        number: int,
        user: str,
        state: str = "COMMENTED",
        *,
        body: str = "",
    ) -> int:
        """A submitted review; as on GitHub, it answers the reviewer's pending request."""
        if state not in REVIEW_STATES:
            raise ValueError(f"{state!r} is not a review state ({', '.join(REVIEW_STATES)})")
        with self.lock:
            repo = self.repo(full_name)
            pull = repo.pull(number)
            login = self.add_user(user).login
            head, _ = self.pull_heads(repo, pull)
            review = Review(self.next_id(), login, state, body, head, now_iso())
            pull.reviews.append(review)
            pull.requested_users = [u for u in pull.requested_users if u.lower() != user.lower()]
            return review.id

    def requested_reviewers(self, full_name: str, number: int) -> tuple[list[str], list[str]]:
        """(user logins, team slugs) whose review is requested now."""
        with self.lock:
            pull = self.pull(full_name, number)
            return list(pull.requested_users), list(pull.requested_teams)

    def reviews(self, full_name: str, number: int) -> list[dict[str, Any]]:
        with self.lock:
            repo = self.repo(full_name)
            pull = repo.pull(number)
            return [self.shapes.review(repo, pull, review) for review in pull.reviews]
