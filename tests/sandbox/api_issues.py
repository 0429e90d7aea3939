"""Issue endpoints, which serve pull requests too: issues, comments, reactions, labels."""

from __future__ import annotations

from typing import Any

from tests.sandbox.api import Call, Endpoints, GitHubError, Reply, invalid, not_found, routes
from tests.sandbox.shapes import REACTIONS
from tests.sandbox.state import Label, Pull, Reaction, SandboxRepo, now_iso

#: GitHub refuses longer comment bodies.
COMMENT_MAX_CHARS = 65536


class IssueEndpoints(Endpoints):
    REPO_ROUTES = routes(
        ("GET", r"/issues/comments/(\d+)", "get_comment"),
        ("PATCH", r"/issues/comments/(\d+)", "edit_comment"),
        ("DELETE", r"/issues/comments/(\d+)", "delete_comment"),
        ("GET", r"/issues/comments/(\d+)/reactions", "comment_reactions"),
        ("POST", r"/issues/comments/(\d+)/reactions", "react_to_comment"),
        ("GET", r"/issues/(\d+)", "get_issue"),
        ("PATCH", r"/issues/(\d+)", "edit_issue"),
        ("GET", r"/issues/(\d+)/comments", "list_comments"),
        ("POST", r"/issues/(\d+)/comments", "post_comment"),
        ("GET", r"/issues/(\d+)/reactions", "issue_reactions"),
        ("POST", r"/issues/(\d+)/reactions", "react_to_issue"),
        ("GET", r"/issues/(\d+)/labels", "list_labels"),
        ("POST", r"/issues/(\d+)/labels", "add_labels"),
        ("DELETE", r"/issues/(\d+)/labels/(.+)", "remove_label"),
    )

    def get_issue(self, call: Call) -> Reply:
        return Reply(200, self.shapes.issue(call.here, self.find_issue(call)))

    def edit_issue(self, call: Call) -> Reply:
        """Title, body, labels and open/closed; everything is checked before anything changes."""
        repo, issue = call.here, self.find_issue(call)
        body = call.object()
        texts = {name: call.text_field(name, required=False) for name in ("title", "body")}
        labels = self._labels(repo, body["labels"]) if "labels" in body else None
        state = body.get("state")
        if state is not None and state not in ("open", "closed"):
            raise invalid("Issue", "state", f"{state} is not a valid state")
        reason = body.get("state_reason") or "completed"
        if state == "closed" and reason not in ("completed", "not_planned"):
            raise invalid("Issue", "state_reason", f"{reason} is not a valid state_reason")
        if state == "open" and isinstance(issue, Pull) and issue.merged:
            raise GitHubError(422, "A merged pull request cannot be reopened.")
        for name, value in texts.items():
            if name in body:
                setattr(issue, name, value or "")
        if labels is not None:
            issue.labels = [label.name for label in labels]
        if state == "closed" and issue.state == "open":
            self.hub.close_issue(repo.full_name, issue.number, reason=reason)
        elif state == "open" and issue.state == "closed":
            self.hub.reopen_issue(repo.full_name, issue.number)
        issue.updated_at = now_iso()
        return Reply(200, self.shapes.issue(repo, issue))

    def list_comments(self, call: Call) -> Reply:
        repo, issue = call.here, self.find_issue(call)
        return self.page(
            call, [self.shapes.comment(repo, repo.comments[c]) for c in issue.comments]
        )

    def post_comment(self, call: Call) -> Reply:
        repo, issue = call.here, self.find_issue(call)
        text = call.text_field("body")
        assert text is not None
        _check_comment(text)
        comment = self.hub.store_comment(repo, issue, text, self.actor, None)
        shape = self.shapes.comment(repo, comment)
        return Reply(201, shape, {"Location": shape["url"]})

    def get_comment(self, call: Call) -> Reply:
        return Reply(200, self.shapes.comment(call.here, self.find_comment(call)))

    def edit_comment(self, call: Call) -> Reply:
        comment = self.find_comment(call)
        text = call.text_field("body")
        assert text is not None
        _check_comment(text)
        comment.body, comment.updated_at = text, now_iso()
        return Reply(200, self.shapes.comment(call.here, comment))

    def delete_comment(self, call: Call) -> Reply:
        repo, comment = call.here, self.find_comment(call)
        del repo.comments[comment.id]
        issue = repo.issues[comment.issue]
        issue.comments = [c for c in issue.comments if c != comment.id]
        return Reply(204)

    def _reactions(self, call: Call, reactions: list[Reaction]) -> Reply:
        wanted = call.query.get("content")
        chosen = [r for r in reactions if wanted is None or r.content == wanted]
        return self.page(call, [self.shapes.reaction(r) for r in chosen])

    def _react(self, call: Call, reactions: list[Reaction]) -> Reply:
        content = call.object().get("content")
        if content not in REACTIONS:
            raise invalid("Reaction", "content", "content is not included in the list")
        reaction, new = self.hub.react(call.here, reactions, content, self.actor)
        return Reply(201 if new else 200, self.shapes.reaction(reaction))

    def comment_reactions(self, call: Call) -> Reply:
        return self._reactions(call, self.find_comment(call).reactions)

    def react_to_comment(self, call: Call) -> Reply:
        return self._react(call, self.find_comment(call).reactions)

    def issue_reactions(self, call: Call) -> Reply:
        return self._reactions(call, self.find_issue(call).reactions)

    def react_to_issue(self, call: Call) -> Reply:
        return self._react(call, self.find_issue(call).reactions)

    def list_labels(self, call: Call) -> Reply:
        return self.page(call, self.shapes.labels_of(call.here, self.find_issue(call)))

    def _labels(self, repo: SandboxRepo, entries: Any) -> list[Label]:
        """Labels named as GitHub accepts them (names, or objects with a name), checked all
        before any is created, so a bad one changes nothing."""
        if not isinstance(entries, list):
            raise invalid("Issue", "labels", "labels must be an array")
        names = [e.get("name") if isinstance(e, dict) else e for e in entries]
        for name in names:
            if not isinstance(name, str) or not name.strip() or len(name) > 50:
                raise invalid("Label", "name", f"{name!r} is not a label name")
        labels: list[Label] = []
        for name in names:
            label = self.hub.ensure_label(repo, name)
            if label not in labels:
                labels.append(label)
        return labels

    def add_labels(self, call: Call) -> Reply:
        repo, issue = call.here, self.find_issue(call)
        body = call.body
        entries = body.get("labels") if isinstance(body, dict) else body
        if not entries:
            raise GitHubError(422, 'Invalid request.\n\n"labels" wasn\'t supplied.')
        for label in self._labels(repo, entries):
            if label.name not in issue.labels:
                issue.labels.append(label.name)
        return Reply(200, self.shapes.labels_of(repo, issue))

    def remove_label(self, call: Call) -> Reply:
        repo, issue = call.here, self.find_issue(call)
        name = call.args[1]
        kept = [label for label in issue.labels if label.lower() != name.lower()]
        if len(kept) == len(issue.labels):
            raise not_found("Label does not exist")
        issue.labels = kept
        return Reply(200, self.shapes.labels_of(repo, issue))


def _check_comment(text: str) -> None:
    if not text.strip():
        raise GitHubError(
            422,
            "Validation Failed",
            errors=[{"resource": "IssueComment", "code": "missing_field", "field": "body"}],
        )
    if len(text) > COMMENT_MAX_CHARS:
        raise invalid(
            "IssueComment", "body", f"Body is too long (maximum is {COMMENT_MAX_CHARS} characters)"
        )
