"""Endpoints read from git: commit statuses, commits, comparisons, contents, trees, refs and
branches, with GitHub's caps (300 files in a comparison, 300 a page and 3,000 in all for a
commit) so that callers meet the same limits they meet on GitHub."""

from __future__ import annotations

import base64
import re
from typing import Any

from tests.sandbox.api import Call, Endpoints, GitHubError, Reply, invalid, not_found, routes
from tests.sandbox.gitrepo import FileChange, TreeEntry
from tests.sandbox.pagination import paginate
from tests.sandbox.state import Pull, SandboxRepo, Status, now_iso

COMPARE_FILES_CAP = 300
COMPARE_COMMITS_UNPAGINATED = 250
COMMIT_FILES_PER_PAGE = 300
COMMIT_FILES_CAP = 3000
STATUS_DESCRIPTION_MAX = 140
STATUSES_PER_CONTEXT_MAX = 1000
CONTENTS_INLINE_MAX = 1024 * 1024  # larger files come without their content, as on GitHub
STATUS_STATES = ("error", "failure", "pending", "success")


class GitEndpoints(Endpoints):
    REPO_ROUTES = routes(
        ("POST", r"/statuses/([^/]+)", "post_status"),
        ("GET", r"/commits/(.+)/status", "combined_status"),
        ("GET", r"/commits/(.+)/statuses", "list_statuses"),
        ("GET", r"/commits/(.+)/pulls", "commit_pulls"),
        ("GET", r"/commits", "list_commits"),
        ("GET", r"/commits/(.+)", "get_commit"),
        ("GET", r"/compare/(.+)", "compare"),
        ("GET", r"/contents/?(.*)", "contents"),
        ("GET", r"/git/trees/(.+)", "tree"),
        ("GET", r"/git/refs?/(.+)", "git_ref"),
        ("GET", r"/branches/(.+)", "branch"),
    )

    def post_status(self, call: Call) -> Reply:
        repo, sha = call.here, call.args[0]
        if not re.fullmatch(r"[0-9a-f]{40}", sha) or repo.git.resolve(sha) != sha:
            raise GitHubError(422, f"No commit found for SHA: {sha}")
        body = call.object()
        state = body.get("state")
        if state not in STATUS_STATES:
            raise invalid("Status", "state", "state is not included in the list")
        description = body.get("description")
        if description is not None and not isinstance(description, str):
            raise invalid("Status", "description", "description is not a string")
        if description is not None and len(description) > STATUS_DESCRIPTION_MAX:
            raise invalid(
                "Status",
                "description",
                f"description is too long (maximum is {STATUS_DESCRIPTION_MAX} characters)",
            )
        context = body.get("context") or "default"
        target_url = body.get("target_url")
        if not isinstance(context, str) or not isinstance(target_url, str | None):
            raise invalid("Status", "context", "context and target_url must be strings")
        history = repo.statuses.setdefault(sha, [])
        if sum(1 for s in history if s.context == context) >= STATUSES_PER_CONTEXT_MAX:
            message = "This SHA and context has reached the maximum number of statuses."
            raise invalid("Status", "context", message)
        status = Status(
            self.hub.next_id(), state, context, description, target_url, self.actor, now_iso()
        )
        history.insert(0, status)
        return Reply(201, self.shapes.status(repo, status))

    def combined_status(self, call: Call) -> Reply:
        repo = call.here
        sha = self.find_commit(call, call.args[0], status=404)
        latest: dict[str, Status] = {}
        for status in repo.statuses.get(sha, []):
            latest.setdefault(status.context, status)
        states = {status.state for status in latest.values()}
        if states & {"failure", "error"}:
            state = "failure"
        elif "pending" in states or not states:
            state = "pending"
        else:
            state = "success"
        api = self.shapes.repo_api(repo)
        return Reply(
            200,
            {
                "state": state,
                "statuses": [self.shapes.status(repo, s) for s in latest.values()],
                "sha": sha,
                "total_count": len(latest),
                "repository": self.shapes.repository(repo),
                "commit_url": f"{api}/commits/{sha}",
                "url": f"{api}/commits/{sha}/status",
            },
        )

    def list_statuses(self, call: Call) -> Reply:
        repo = call.here
        sha = self.find_commit(call, call.args[0], status=404)
        return self.page(call, [self.shapes.status(repo, s) for s in repo.statuses.get(sha, [])])

    def commit_pulls(self, call: Call) -> Reply:
        """Pull requests that brought a commit in (merged ones, by their merge or their commits)
        and open ones that carry it."""
        repo = call.here
        sha = self.find_commit(call, call.args[0])
        found = []
        for issue in repo.issues.values():
            if not isinstance(issue, Pull):
                continue
            if issue.merged:
                if sha == issue.merge_commit_sha or sha in issue.merged_commits:
                    found.append(issue)
            elif issue.state == "open":
                head, base = self.hub.pull_heads(repo, issue)
                if head and base and sha in repo.git.reachable(head, exclude=[base]):
                    found.append(issue)
        return self.page(call, [self.shapes.pull(repo, p) for p in found])

    def list_commits(self, call: Call) -> Reply:
        repo = call.here
        start = call.query.get("sha") or repo.default_branch
        head = repo.git.resolve(start)
        if head is None:
            raise not_found()
        path = call.query.get("path")
        infos = repo.git.log(head, paths=[path] if path else [], newest_first=True)
        page = paginate(call.url, call.query, infos)
        body = [self.shapes.commit(repo, info) for info in page.items]
        return Reply(200, body, {"Link": page.links} if page.links else {})

    def get_commit(self, call: Call) -> Reply:
        repo = call.here
        sha = self.find_commit(call, call.args[0])
        info = repo.git.info(sha)
        changes = repo.git.diff(info.parents[0] if info.parents else None, sha)
        page = paginate(
            call.url,
            call.query,
            changes,
            default_per_page=COMMIT_FILES_PER_PAGE,
            max_per_page=COMMIT_FILES_PER_PAGE,
            cap=COMMIT_FILES_CAP,
        )
        body = self.shapes.commit(repo, info)
        additions = sum(c.additions for c in changes)
        deletions = sum(c.deletions for c in changes)
        body["stats"] = {
            "total": additions + deletions,
            "additions": additions,
            "deletions": deletions,
        }
        body["files"] = [self.shapes.file(repo, change, sha) for change in page.items]
        return Reply(200, body, {"Link": page.links} if page.links else {})

    def compare(self, call: Call) -> Reply:
        repo = call.here
        git = repo.git
        base_ref, dots, head_ref = call.args[0].partition("...")
        if not dots:
            raise not_found()
        base, head = git.resolve(base_ref), git.resolve(head_ref)
        if base is None or head is None:
            raise not_found()
        merge_base = git.merge_base(base, head)
        if merge_base is None:
            raise not_found(f"No common ancestor between {base_ref} and {head_ref}.")
        ahead, behind = git.ahead_behind(base, head)
        if ahead == behind == 0:
            status = "identical"
        elif behind == 0:
            status = "ahead"
        elif ahead == 0:
            status = "behind"
        else:
            status = "diverged"
        infos = git.log(head, exclude=[base])
        files: list[FileChange] = git.diff(merge_base, head)[:COMPARE_FILES_CAP]
        links: str | None = None
        if "page" in call.query or "per_page" in call.query:
            page = paginate(call.url, call.query, infos)
            shown, links = page.items, page.links
            if page.page > 1:
                files = []  # GitHub lists the files on the first page only
        else:
            shown = infos[:COMPARE_COMMITS_UNPAGINATED]
        api = self.shapes.repo_api(repo)
        html = f"{self.shapes.html}/{repo.full_name}"
        body = {
            "url": f"{api}/compare/{base_ref}...{head_ref}",
            "html_url": f"{html}/compare/{base_ref}...{head_ref}",
            "permalink_url": f"{html}/compare/{base[:7]}...{head[:7]}",
            "diff_url": f"{html}/compare/{base_ref}...{head_ref}.diff",
            "patch_url": f"{html}/compare/{base_ref}...{head_ref}.patch",
            "base_commit": self.shapes.commit(repo, git.info(base)),
            "merge_base_commit": self.shapes.commit(repo, git.info(merge_base)),
            "status": status,
            "ahead_by": ahead,
            "behind_by": behind,
            "total_commits": len(infos),
            "commits": [self.shapes.commit(repo, info) for info in shown],
            "files": [self.shapes.file(repo, change, head) for change in files],
        }
        return Reply(200, body, {"Link": links} if links else {})

    def contents(self, call: Call) -> Reply:
        repo = call.here
        ref = call.query.get("ref") or repo.default_branch
        sha = repo.git.resolve(ref)
        if sha is None:
            raise not_found(f"No commit found for the ref {ref}")
        path = call.args[0].strip("/")
        if not path:
            entries = repo.git.list_tree(sha) or []
            return Reply(200, [self._content_entry(repo, e, ref) for e in entries])
        entry = repo.git.entry(sha, path)
        if entry is None:
            raise not_found()
        if entry.kind == "tree":
            entries = repo.git.list_tree(sha, path) or []
            return Reply(200, [self._content_entry(repo, e, ref) for e in entries])
        shape = self._content_entry(repo, entry, ref)
        if entry.kind == "blob" and entry.mode != "120000":
            data = repo.git.read_blob(entry.sha)
            if "raw" in call.headers.get("accept", ""):
                return Reply(200, data)
            if len(data) > CONTENTS_INLINE_MAX:
                shape.update({"encoding": "none", "content": ""})
            else:
                shape.update({"encoding": "base64", "content": base64.encodebytes(data).decode()})
        elif entry.mode == "120000":
            shape["target"] = repo.git.read_blob(entry.sha).decode("utf-8", "replace")
        return Reply(200, shape)

    def _content_entry(self, repo: SandboxRepo, entry: TreeEntry, ref: str) -> dict[str, Any]:
        api = self.shapes.repo_api(repo)
        html = f"{self.shapes.html}/{repo.full_name}"
        kind = {"tree": "dir", "commit": "submodule"}.get(entry.kind, "file")
        if entry.mode == "120000":
            kind = "symlink"
        blob_or_tree = "tree" if entry.kind == "tree" else "blob"
        url = f"{api}/contents/{entry.path}?ref={ref}"
        git_url = f"{api}/git/{'trees' if entry.kind == 'tree' else 'blobs'}/{entry.sha}"
        html_url = f"{html}/{blob_or_tree}/{ref}/{entry.path}"
        return {
            "type": kind,
            "size": entry.size or 0,
            "name": entry.name,
            "path": entry.path,
            "sha": entry.sha,
            "url": url,
            "git_url": git_url,
            "html_url": html_url,
            "download_url": f"{html}/raw/{ref}/{entry.path}" if kind == "file" else None,
            "_links": {"self": url, "git": git_url, "html": html_url},
        }

    def tree(self, call: Call) -> Reply:
        repo = call.here
        sha = repo.git.resolve_tree(call.args[0])
        if sha is None:
            raise not_found()
        recursive = "recursive" in call.query
        api = self.shapes.repo_api(repo)
        entries = repo.git.list_tree(sha, recursive=recursive) or []
        tree = []
        for entry in entries:
            item: dict[str, Any] = {
                "path": entry.path,
                "mode": entry.mode,
                "type": entry.kind,
                "sha": entry.sha,
                "url": f"{api}/git/{'trees' if entry.kind == 'tree' else 'blobs'}/{entry.sha}",
            }
            if entry.size is not None:
                item["size"] = entry.size
            tree.append(item)
        return Reply(
            200, {"sha": sha, "url": f"{api}/git/trees/{sha}", "tree": tree, "truncated": False}
        )

    def git_ref(self, call: Call) -> Reply:
        repo = call.here
        name = "refs/" + call.args[0].strip("/")
        sha = repo.git.refs(name).get(name)
        if sha is None:
            raise not_found()
        api = self.shapes.repo_api(repo)
        return Reply(
            200,
            {
                "ref": name,
                "node_id": base64.b64encode(f"Ref:{repo.id}:{name}".encode()).decode(),
                "url": f"{api}/git/{name}",
                "object": {"sha": sha, "type": "commit", "url": f"{api}/git/commits/{sha}"},
            },
        )

    def branch(self, call: Call) -> Reply:
        repo, name = call.here, call.args[0]
        sha = repo.git.branch_sha(name)
        if sha is None:
            raise not_found("Branch not found")
        api = self.shapes.repo_api(repo)
        return Reply(
            200,
            {
                "name": name,
                "commit": self.shapes.commit(repo, repo.git.info(sha)),
                "_links": {
                    "self": f"{api}/branches/{name}",
                    "html": f"{self.shapes.html}/{repo.full_name}/tree/{name}",
                },
                "protected": False,
                # The sandbox protects no branch: GitHub answers an unprotected one like this.
                "protection": {
                    "enabled": False,
                    "required_status_checks": {
                        "enforcement_level": "off",
                        "contexts": [],
                        "checks": [],
                    },
                },
                "protection_url": f"{api}/branches/{name}/protection",
            },
        )
