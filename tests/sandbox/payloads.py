"""Webhook payloads built from the sandbox's state, shaped like GitHub's deliveries.

Each payload carries what GitHub's does for an App (`installation`, `repository`, `sender`,
`organization` for organisation repositories), and describes the state the sandbox is in: a
`pull_request` payload reads the PR as the REST API shows it, an `issue_comment` payload
creates its comment first (GitHub stores a comment before announcing it), a `push` payload
lists the commits and files git really holds between `before` and `after`, a `check_run`
payload describes a check run the bot created, as a click on one of its buttons sends it, and
`workflow_run` / `workflow_job` payloads describe a dispatched run as the sandbox's Actions
executor moves it along (it sends them itself, as GitHub does).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tests.sandbox.api_checks import check_run_shape
from tests.sandbox.gitrepo import ZERO_SHA
from tests.sandbox.shapes import NOREPLY, node_id
from tests.sandbox.state import SandboxRepo, WorkflowRun

if TYPE_CHECKING:
    from tests.sandbox.github_server import SandboxGitHub

#: The `action`s GitHub sends with a `pull_request` event.
PULL_REQUEST_ACTIONS = frozenset(
    {
        "assigned",
        "auto_merge_disabled",
        "auto_merge_enabled",
        "closed",
        "converted_to_draft",
        "demilestoned",
        "dequeued",
        "edited",
        "enqueued",
        "labeled",
        "locked",
        "milestoned",
        "opened",
        "ready_for_review",
        "reopened",
        "review_request_removed",
        "review_requested",
        "synchronize",
        "unassigned",
        "unlabeled",
        "unlocked",
    }
)
WORKFLOW_RUN_ACTIONS = frozenset({"requested", "in_progress", "completed"})
WORKFLOW_JOB_ACTIONS = frozenset({"queued", "in_progress", "completed", "waiting"})
#: GitHub lists at most this many commits in a push delivery.
PUSH_COMMITS_CAP = 2048


class Payloads:
    def __init__(self, hub: SandboxGitHub) -> None:
        self.hub = hub

    def _built(self, event: str, payload: dict[str, Any]) -> dict[str, Any]:
        if self.hub.record_answers:
            self.hub.built_payloads.append((event, payload))
        return payload

    def envelope(self, repo: SandboxRepo, sender: str) -> dict[str, Any]:
        hub = self.hub
        shapes = hub.shapes
        envelope: dict[str, Any] = {
            "repository": shapes.repository(repo),
            "sender": shapes.user(hub.add_user(sender).login),
            "installation": {
                "id": hub.installation_id,
                "node_id": node_id("Installation", hub.installation_id),
            },
        }
        if repo.owner_type == "Organization":
            envelope["organization"] = shapes.organization(repo.owner)
        return envelope

    def pull_request(
        self,
        full_name: str,
        number: int,
        action: str,
        *,
        sender: str | None = None,
        label: str | None = None,
        requested_reviewer: str | None = None,
        requested_team: str | None = None,
        before: str | None = None,
        after: str | None = None,
        changes: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A `pull_request` delivery for the PR as it is now.

        `labeled`/`unlabeled` name their `label` (which must be on / off the PR already: add it
        with `add_label` first), `synchronize` its `before` SHA (`after` is the head),
        `review_requested` its `requested_reviewer` or `requested_team`.
        """
        if action not in PULL_REQUEST_ACTIONS:
            raise ValueError(f"{action!r} is not a pull_request action GitHub sends")
        hub = self.hub
        with hub.lock:
            repo = hub.repo(full_name)
            pull = repo.pull(number)
            payload: dict[str, Any] = {
                "action": action,
                "number": number,
                "pull_request": hub.shapes.pull(repo, pull, detailed=True),
            }
            if action in ("labeled", "unlabeled"):
                if label is None:
                    raise ValueError(f"a {action} payload needs the label")
                on_pull = any(name.lower() == label.lower() for name in pull.labels)
                if on_pull != (action == "labeled"):
                    where = "not on" if action == "labeled" else "still on"
                    raise ValueError(f"label {label!r} is {where} #{number}")
                known = repo.labels.get(label.lower()) or hub.ensure_label(repo, label)
                payload["label"] = hub.shapes.label(repo, known)
            if action == "synchronize":
                if before is None:
                    raise ValueError("a synchronize payload needs the SHA the head had before")
                payload["before"] = before
                payload["after"] = after or payload["pull_request"]["head"]["sha"]
            if action in ("review_requested", "review_request_removed"):
                if requested_reviewer is not None:
                    payload["requested_reviewer"] = hub.shapes.user(requested_reviewer)
                elif requested_team is not None:
                    payload["requested_team"] = hub.shapes.team(
                        hub.team(repo.owner, requested_team)
                    )
                else:
                    raise ValueError(f"a {action} payload names a requested_reviewer or team")
            if action == "edited":
                payload["changes"] = changes or {}
            payload.update(self.envelope(repo, sender or pull.author))
            return self._built("pull_request", payload)

    def issue_comment(
        self,
        full_name: str,
        number: int,
        body: str,
        user: str,
        *,
        created_at: str | None = None,
    ) -> dict[str, Any]:
        """Creates the comment, as GitHub does before it sends the event, and describes it."""
        hub = self.hub
        with hub.lock:
            repo = hub.repo(full_name)
            issue = repo.issue(number)
            comment = hub.store_comment(repo, issue, body, user, created_at)
            payload: dict[str, Any] = {
                "action": "created",
                "issue": hub.shapes.issue(repo, issue),
                "comment": hub.shapes.comment(repo, comment),
            }
            payload.update(self.envelope(repo, comment.author))
            return self._built("issue_comment", payload)

    def check_run_requested_action(
        self, full_name: str, check_run_id: int, identifier: str, sender: str
    ) -> dict[str, Any]:
        """A `check_run` delivery with action `requested_action`: `sender` clicked the button
        `identifier` of the check run. GitHub sends it only for a button the check run shows."""
        hub = self.hub
        with hub.lock:
            repo = hub.repo(full_name)
            run = repo.check_runs.get(check_run_id)
            if run is None:
                raise KeyError(f"{full_name} has no check run {check_run_id}")
            shown = [action["identifier"] for action in run.actions]
            if identifier not in shown:
                raise ValueError(
                    f"check run {check_run_id} shows no button {identifier!r} (it shows {shown})"
                )
            payload: dict[str, Any] = {
                "action": "requested_action",
                "check_run": check_run_shape(hub, repo, run),
                "requested_action": {"identifier": identifier},
            }
            payload.update(self.envelope(repo, sender))
            return self._built("check_run", payload)

    def workflow_run(self, full_name: str, run_id: int, action: str) -> dict[str, Any]:
        """A `workflow_run` delivery for the run as it is now, sent by whoever dispatched it."""
        if action not in WORKFLOW_RUN_ACTIONS:
            raise ValueError(f"{action!r} is not a workflow_run action GitHub sends")
        shapes = self.hub.shapes
        return self._actions_event(
            "workflow_run",
            full_name,
            run_id,
            action,
            lambda repo, run: {
                "workflow_run": shapes.workflow_run(repo, run),
                "workflow": shapes.workflow(repo, run),
            },
        )

    def workflow_job(self, full_name: str, run_id: int, action: str) -> dict[str, Any]:
        """A `workflow_job` delivery for the run's job as it is now."""
        if action not in WORKFLOW_JOB_ACTIONS:
            raise ValueError(f"{action!r} is not a workflow_job action GitHub sends")
        shapes = self.hub.shapes
        return self._actions_event(
            "workflow_job",
            full_name,
            run_id,
            action,
            lambda repo, run: {"workflow_job": shapes.workflow_job(repo, run)},
        )

    def _actions_event(
        self,
        event: str,
        full_name: str,
        run_id: int,
        action: str,
        subject: Callable[[SandboxRepo, WorkflowRun], dict[str, Any]],
    ) -> dict[str, Any]:
        hub = self.hub
        with hub.lock:
            repo = hub.repo(full_name)
            run = _workflow_run(repo, run_id)
            payload: dict[str, Any] = {"action": action, **subject(repo, run)}
            payload.update(self.envelope(repo, run.actor))
            return self._built(event, payload)

    def push(
        self,
        full_name: str,
        ref: str,
        before: str,
        after: str,
        *,
        forced: bool = False,
        pusher: str = "sandbox-user",
    ) -> dict[str, Any]:
        """A `push` delivery of `ref` moving from `before` to `after` (forty zeros for a ref
        created or deleted), listing the commits git holds between them."""
        if not ref.startswith("refs/"):
            raise ValueError(f"{ref!r} is not a full ref name such as refs/heads/main")
        hub = self.hub
        with hub.lock:
            repo = hub.repo(full_name)
            git = repo.git
            for sha in (before, after):
                if sha != ZERO_SHA and git.resolve(sha) != sha:
                    raise ValueError(f"{sha!r} is not the full SHA of a commit of {full_name}")
            if after == ZERO_SHA:
                infos = []
            elif before == ZERO_SHA:
                branch = ref.removeprefix("refs/heads/") if ref.startswith("refs/heads/") else None
                infos = git.log(after, exclude_branches_but=branch) if branch else []
            else:
                infos = git.log(after, exclude=[before])
            infos = infos[-PUSH_COMMITS_CAP:]
            commits = [
                hub.shapes.push_commit(
                    repo,
                    info,
                    git.diff(info.parents[0] if info.parents else None, info.sha, renames=False),
                )
                for info in infos
            ]
            head_commit = None
            if after != ZERO_SHA:
                head_commit = next((c for c in commits if c["id"] == after), None)
                if head_commit is None:
                    info = git.info(after)
                    head_commit = hub.shapes.push_commit(
                        repo,
                        info,
                        git.diff(info.parents[0] if info.parents else None, after, renames=False),
                    )
            html = f"{hub.shapes.html}/{repo.full_name}"
            if before == ZERO_SHA:
                compare = f"{html}/commit/{after[:12]}"
            else:
                compare = f"{html}/compare/{before[:12]}...{after[:12]}"
            repository = hub.shapes.repository(repo)
            # A push delivery's repository is the older shape: numeric times, a named owner.
            repository["master_branch"] = repo.default_branch
            repository["pushed_at"] = int(time.time())
            repository["stargazers"] = 0
            repository["owner"] = {
                **repository["owner"],
                "name": repo.owner,
                "email": f"{hub.user(repo.owner).id}+{repo.owner}@{NOREPLY}",
            }
            login = hub.add_user(pusher).login
            payload: dict[str, Any] = {
                "ref": ref,
                "before": before,
                "after": after,
                "created": before == ZERO_SHA,
                "deleted": after == ZERO_SHA,
                "forced": forced,
                "base_ref": None,
                "compare": compare,
                "commits": commits,
                "head_commit": head_commit,
                "pusher": {"name": login, "email": f"{hub.user(login).id}+{login}@{NOREPLY}"},
            }
            payload.update(self.envelope(repo, login))
            payload["repository"] = repository
            return self._built("push", payload)


def _workflow_run(repo: SandboxRepo, run_id: int) -> WorkflowRun:
    run = repo.workflow_runs.get(run_id)
    if run is None:
        raise KeyError(f"{repo.full_name} has no workflow run {run_id}")
    return run
