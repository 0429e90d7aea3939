"""A local GitHub stand-in: the REST endpoints the bot uses, over real git repositories.

Tests and `make run` set up a world in Python (repositories from files or from a checkout,
branches, pull requests from branches or forks, collaborators and teams, reviews, labels), send
the bot webhook payloads built from that world, and then look at what the bot did (comments,
review requests, statuses, check runs, reactions, every request it made). The bot talks to it
through its real gidgethub client over real HTTP, with App JWTs and installation tokens, and it
answers the way GitHub does for the cases a bot relies on: 401 for bad credentials, 404 for an
unknown pull request, 422 for a reviewer who is not a collaborator, `Link` pagination, the caps
on a pull request's files (3,000) and a comparison's files (300), rate limit headers. Its
repositories are served over git's smart HTTP at their `clone_url` (`githttp.py`). A workflow
dispatched through its Actions API runs its test step for real (`actions.py`) and announces its
progress with `workflow_run` / `workflow_job` webhooks to the target the harness sets.

The Python API is layered: people and roles (`people.py`), repositories and commits
(`repositories.py`), pull requests (`pulls.py`), and here issues, comments, labels, programmed
failures, what happened, and webhook payloads. Requests are answered on a worker thread, one at
a time under a lock shared with the Python API, so a test may set things up while the bot is
talking to the sandbox.
"""

from __future__ import annotations

import itertools
import json
import re
import secrets
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from http import HTTPStatus
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.sandbox.actions_runner import Actions
from tests.sandbox.api import DOCS
from tests.sandbox.api_checks import check_run_shape
from tests.sandbox.auth import AppAuth
from tests.sandbox.githttp import GitHttp
from tests.sandbox.gitrepo import UnknownRevision
from tests.sandbox.http import LoopbackServer
from tests.sandbox.payloads import Payloads
from tests.sandbox.pulls import PullRequests
from tests.sandbox.rest import Rest
from tests.sandbox.shapes import APP_EVENTS, REACTIONS, Shapes
from tests.sandbox.state import (
    Comment,
    DroppedWebhooks,
    Failure,
    Hold,
    HookDelivery,
    Issue,
    Label,
    Reaction,
    RecordedRequest,
    RunHold,
    SandboxRepo,
    Team,
    User,
    WebhookDelivery,
    WorkflowRun,
    check_login,
    now_iso,
)
from tests.sandbox.webhooks import delivery_headers

DEFAULT_PERMISSIONS = {
    "contents": "write",
    "issues": "write",
    "metadata": "read",
    "pull_requests": "write",
    "statuses": "write",
    "checks": "write",
    "actions": "write",
    "members": "read",
}


class SandboxGitHub(PullRequests, LoopbackServer):
    """The sandbox GitHub: state, the Python API to stage it, and its HTTP face."""

    def __init__(
        self,
        root: Path,
        *,
        app_id: int = 1,
        installation_id: int = 1,
        app_slug: str = "maintainer-bot",
        app_owner: str = "sandbox-org",
        html_url: str = "https://github.com",
        rate_limit: int = 5000,
        permissions: Mapping[str, str] | None = None,
    ) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.app_id = app_id
        self.installation_id = installation_id
        self.app_slug = app_slug
        self.app_owner = check_login(app_owner)
        self.bot_login = f"{app_slug}[bot]"
        self.html_url = html_url
        self.auth = AppAuth(
            app_id=app_id,
            installation_id=installation_id,
            permissions=dict(permissions or DEFAULT_PERMISSIONS),
            rate_limit=rate_limit,
        )
        self.private_key_pem = self.auth.private_key_pem
        self.token = self.auth.static_token
        #: False: the static token may write check runs, as a GitHub Actions `GITHUB_TOKEN` may;
        #: True: it is a personal access token, and GitHub answers check-run writes with 403.
        self.personal_token = False
        self.repos: dict[str, SandboxRepo] = {}
        self.users: dict[str, User] = {}
        self.teams: dict[tuple[str, str], Team] = {}
        self.requests: list[RecordedRequest] = []
        #: Keep each JSON answer with its request (`RecordedRequest.answer`), and each webhook
        #: payload built (`built_payloads`): what a check of their shapes reads.
        self.record_answers = False
        self.built_payloads: list[tuple[str, dict[str, Any]]] = []
        self.failures: list[Failure] = []
        self.holds: list[Hold] = []
        #: GitHub Actions. False: an older GitHub Enterprise Server, which refuses a dispatch's
        #: `return_run_details` with 422 (the client then finds its run in the list).
        self.actions_run_details = True
        #: The interpreter a run's test step uses (it needs pytest), its time limit, and how
        #: many runs execute at once (read at the first run; the others wait `queued`).
        self.actions_python = sys.executable
        self.actions_timeout_s = 600.0
        self.actions_concurrency = 4
        #: A scripted test step, (inputs) -> (exit code, JUnit XML, log text), in place of the
        #: checkout and pytest: for measuring the bot with hundreds of runs, not the tests.
        self.actions_test_step: Callable[[dict[str, str]], tuple[int, str, str]] | None = None
        #: Where the sandbox sends its own webhooks (Actions events); see `webhook_target`.
        self.webhook_url: str | None = None
        self.webhook_secret: str | None = None
        #: The webhook secret an App registered through the manifest flow is given (its
        #: webhooks are then signed with it: `api_manifest`).
        self.manifest_webhook_secret = secrets.token_hex(20)
        self.webhook_deliveries: list[WebhookDelivery] = []
        #: The App's hook log (`GET /app/hook/deliveries`): what `record_hook_delivery` and
        #: redeliveries put there; the Actions webhooks above join it when it is read.
        self.hook_deliveries: list[HookDelivery] = []
        self._logged_webhooks: set[str] = set()
        #: The events the installation subscribes to (default: all app.yml asks for); what it
        #: was granted is `installation_permissions`.
        self.installation_events: list[str] = list(APP_EVENTS)
        #: Seconds GitHub's clock runs ahead of the local one (negative: behind), as the `Date`
        #: header of `GET /app` shows it.
        self.clock_skew_s = 0.0
        self.run_holds: list[RunHold] = []
        #: The conclusions of the next runs whose runner goes away (`lose_runner`), in order.
        self.lost_runners: list[str] = []
        self.dropped_webhooks: list[DroppedWebhooks] = []
        self.lock = threading.RLock()
        self._ids = itertools.count(1_000_001)
        self.shapes = Shapes(self)
        self.payloads = Payloads(self)
        #: git over smart HTTP at `{url}/{owner}/{repo}.git`, and the requests it answered
        self.git_http = GitHttp(self)
        self.rest = Rest(self)
        self.actions = Actions(self)
        self.add_user(self.bot_login, kind="Bot")
        self.add_user("web-flow")
        self.add_user(app_owner, kind="Organization")

    def make_app(self) -> web.Application:
        app = self.rest.make_app()

        async def start_actions(_app: web.Application) -> None:
            await self.actions.open()

        async def stop_actions(_app: web.Application) -> None:
            await self.actions.close()

        app.on_startup.append(start_actions)
        app.on_cleanup.append(stop_actions)
        return app

    async def close(self) -> None:
        """Stops running workflow runs (their processes killed) before the server goes."""
        await self.actions.close()
        await super().close()

    # ------------------------------------------------------------------ issues

    def open_issue(
        self,
        full_name: str,
        title: str,
        *,
        body: str = "",
        author: str = "contributor",
        labels: Iterable[str] = (),
    ) -> int:
        with self.lock:
            repo = self.repo(full_name)
            self.add_user(author)
            issue = Issue(number=repo.next_number(), title=title, body=body, author=author)
            repo.issues[issue.number] = issue
            for label in labels:
                self.add_label(full_name, issue.number, label)
            return issue.number

    def add_label(self, full_name: str, number: int, name: str, *, color: str = "ededed") -> None:
        with self.lock:
            repo = self.repo(full_name)
            issue = repo.issue(number)
            label = self.ensure_label(repo, name, color=color)
            if label.name not in issue.labels:
                issue.labels.append(label.name)

    def remove_label(self, full_name: str, number: int, name: str) -> None:
        with self.lock:
            issue = self.repo(full_name).issue(number)
            kept = [label for label in issue.labels if label.lower() != name.lower()]
            if len(kept) == len(issue.labels):
                raise ValueError(f"{full_name}#{number} has no label {name!r}")
            issue.labels = kept

    def ensure_label(self, repo: SandboxRepo, name: str, *, color: str = "ededed") -> Label:
        if not isinstance(name, str) or not name.strip() or len(name) > 50:
            raise ValueError(f"{name!r} is not a label name (1 to 50 characters)")
        return repo.labels.setdefault(name.lower(), Label(name, color))

    # ------------------------------------------------------------------ comments

    def add_comment(
        self,
        full_name: str,
        number: int,
        body: str,
        user: str,
        *,
        created_at: str | None = None,
    ) -> dict[str, Any]:
        """A comment by `user` on issue or pull request `number`; returns it as GitHub shows it."""
        with self.lock:
            repo = self.repo(full_name)
            comment = self.store_comment(repo, repo.issue(number), body, user, created_at)
            return self.shapes.comment(repo, comment)

    def store_comment(
        self, repo: SandboxRepo, issue: Issue, body: str, user: str, created_at: str | None
    ) -> Comment:
        login = self.add_user(user).login
        stamp = created_at or now_iso()
        comment = Comment(self.next_id(), issue.number, body, login, stamp, stamp)
        repo.comments[comment.id] = comment
        issue.comments.append(comment.id)
        return comment

    def react(
        self, repo: SandboxRepo, reactions: list[Reaction], content: str, user: str
    ) -> tuple[Reaction, bool]:
        """Adds `user`'s reaction unless it is there; (the reaction, whether it is new)."""
        if content not in REACTIONS:
            raise ValueError(f"{content!r} is not a reaction ({', '.join(REACTIONS)})")
        for reaction in reactions:
            if reaction.content == content and reaction.user.lower() == user.lower():
                return reaction, False
        reaction = Reaction(self.next_id(), content, self.add_user(user).login, now_iso())
        reactions.append(reaction)
        return reaction, True

    # ------------------------------------------------------------------ programmed failures

    def hold_next(self, method: str, path_regex: str) -> Hold:
        """The next request whose method and path match waits, unanswered, until the test
        calls `release()` on what this returns: GitHub being slow for one call only."""
        hold = Hold(method.upper(), re.compile(path_regex))
        with self.lock:
            self.holds.append(hold)
        return hold

    def take_hold(self, method: str, path: str) -> Hold | None:
        """The hold a request must wait on (called under the lock)."""
        for hold in self.holds:
            if hold.method in (method, "*") and hold.pattern.search(path):
                self.holds.remove(hold)
                return hold
        return None

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
        """The next `times` requests whose method is `method` ("*": any) and whose path matches
        `path_regex` (searched) get `status`, before any other check. The body defaults to
        GitHub's shape for that status."""
        if times < 1:
            raise ValueError("times must be at least 1")
        HTTPStatus(status)  # an unknown status is a mistake in the test, not an answer
        if body is None:
            body = {"message": HTTPStatus(status).phrase, "documentation_url": DOCS}
        with self.lock:
            self.failures.append(
                Failure(
                    method.upper(), re.compile(path_regex), status, times, dict(headers or {}), body
                )
            )

    def rate_limit_next(
        self,
        *,
        method: str = "*",
        path_regex: str = "",
        times: int = 1,
        reset_in: int = 60,
        secondary: bool = False,
    ) -> None:
        """GitHub's rate-limit answers: the primary limit (403, `X-RateLimit-Remaining: 0`,
        reset time) or a secondary limit (403 with `Retry-After`)."""
        if secondary:
            headers = {"Retry-After": str(reset_in)}
            message = (
                "You have exceeded a secondary rate limit. Please wait a few minutes before you"
                " try again."
            )
        else:
            headers = {
                "X-RateLimit-Limit": str(self.auth.rate_limit),
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Used": str(self.auth.rate_limit),
                "X-RateLimit-Reset": str(int(time.time()) + reset_in),
                "X-RateLimit-Resource": "core",
            }
            message = f"API rate limit exceeded for installation ID {self.installation_id}."
        self.fail_next(
            method,
            path_regex,
            403,
            times=times,
            headers=headers,
            body={"message": message, "documentation_url": DOCS},
        )

    def expire_token(self, token: str) -> None:
        """Makes an installation token expire now, as an hour passing would."""
        with self.lock:
            self.auth.expire(token)

    # ------------------------------------------------------------------ GitHub Actions

    def webhook_target(self, url: str | None, secret: str | None) -> None:
        """Where the App's webhooks go (the bot's `/webhook`) and the secret they are signed
        with; None: nowhere (deliveries are recorded, not sent)."""
        with self.lock:
            self.webhook_url, self.webhook_secret = url, secret

    def hold_next_run(self) -> RunHold:
        """The next dispatched workflow run stays `queued` (its queued webhooks sent) until the
        test calls `release()`; `reached` is set once it is there. One hold per run."""
        hold = RunHold()
        with self.lock:
            self.run_holds.append(hold)
        return hold

    def take_run_hold(self) -> RunHold | None:
        """The hold a new run must wait on (called under the lock)."""
        return self.run_holds.pop(0) if self.run_holds else None

    def lose_runner(self, conclusion: str = "failure", *, times: int = 1) -> None:
        """The runner of each of the next `times` runs to be picked up goes away before any
        step: the job ends `conclusion` with GitHub's words for it (`failure`: the runner lost
        communication with the server; `cancelled`: it received a shutdown signal), and
        nothing is uploaded."""
        if conclusion not in ("failure", "cancelled"):
            raise ValueError("a lost runner's job ends failure or cancelled")
        if times < 1:
            raise ValueError("times must be at least 1")
        with self.lock:
            self.lost_runners.extend([conclusion] * times)

    def take_lost_runner(self) -> str | None:
        """The conclusion of a run whose runner is lost now, or None (called under the lock)."""
        return self.lost_runners.pop(0) if self.lost_runners else None

    def drop_webhooks(self, event: str, action: str | None = None, *, times: int = 1) -> None:
        """The next `times` deliveries of `event` (with `action`; None: any) are lost, as a
        delivery GitHub failed to make: the state still changes, so only a poll can see it."""
        if times < 1:
            raise ValueError("times must be at least 1")
        with self.lock:
            self.dropped_webhooks.append(DroppedWebhooks(event, action, times))

    def take_dropped_webhook(self, event: str, action: str | None) -> bool:
        """Whether this delivery is one a test dropped (called under the lock)."""
        for drop in self.dropped_webhooks:
            if drop.event == event and drop.action in (None, action):
                drop.times -= 1
                if drop.times <= 0:
                    self.dropped_webhooks.remove(drop)
                return True
        return False

    def dispatches(self, full_name: str) -> list[dict[str, Any]]:
        """The body of every request that reached the dispatch endpoint, oldest first, whether
        it was accepted or refused (a 422 retried without `return_run_details` counts twice)."""
        with self.lock:
            return [
                dict(body) if isinstance(body, dict) else body
                for body in self.repo(full_name).dispatches
            ]

    def workflow_runs(self, full_name: str) -> list[dict[str, Any]]:
        """Workflow runs as the REST API shows them, oldest first."""
        with self.lock:
            repo = self.repo(full_name)
            return [self.shapes.workflow_run(repo, run) for run in repo.workflow_runs.values()]

    def workflow_job(self, full_name: str, run_id: int) -> dict[str, Any]:
        """The job of a workflow run as the REST API shows it."""
        with self.lock:
            repo = self.repo(full_name)
            return self.shapes.workflow_job(repo, self._workflow_run(repo, run_id))

    def job_log(self, full_name: str, run_id: int) -> str | None:
        """The whole log of a run's job once it completed (None before)."""
        with self.lock:
            return self._workflow_run(self.repo(full_name), run_id).job.log

    def artifacts(self, full_name: str, run_id: int) -> list[dict[str, Any]]:
        with self.lock:
            repo = self.repo(full_name)
            run = self._workflow_run(repo, run_id)
            return [self.shapes.artifact(repo, repo.artifacts[i]) for i in run.artifacts]

    def expire_artifact(self, full_name: str, artifact_id: int) -> None:
        """Makes an artifact expire now, as its retention days passing would."""
        with self.lock:
            artifact = self.repo(full_name).artifacts.get(artifact_id)
            if artifact is None:
                raise KeyError(f"{full_name} has no artifact {artifact_id}")
            artifact.expired = True

    def expire_download_links(self) -> None:
        """Every artifact or log download link given so far stops working (they last a minute)."""
        self.actions.blobs.expire_links()

    def sent_webhooks(
        self, event: str | None = None, action: str | None = None
    ) -> list[WebhookDelivery]:
        """The Actions webhooks the sandbox made, in order (dropped ones included, marked)."""
        with self.lock:
            return [
                d
                for d in self.webhook_deliveries
                if (event is None or d.event == event) and (action is None or d.action == action)
            ]

    async def actions_idle(self, within: float = 120.0) -> None:
        """Waits until every dispatched run completed and its webhooks went out (a held run
        must be released first); TimeoutError after `within` seconds."""
        await self.actions.idle(within)

    def _workflow_run(self, repo: SandboxRepo, run_id: int) -> WorkflowRun:
        run = repo.workflow_runs.get(run_id)
        if run is None:
            raise KeyError(f"{repo.full_name} has no workflow run {run_id}")
        return run

    # ------------------------------------------------------------------ looking at the outcome

    def writes(self) -> list[RecordedRequest]:
        """Every request that could change something, token minting aside."""
        return [
            r
            for r in self.requests
            if r.method not in ("GET", "HEAD") and not r.path.endswith("/access_tokens")
        ]

    def comments(self, full_name: str, number: int) -> list[dict[str, Any]]:
        with self.lock:
            repo = self.repo(full_name)
            issue = repo.issue(number)
            return [self.shapes.comment(repo, repo.comments[cid]) for cid in issue.comments]

    def labels(self, full_name: str, number: int) -> list[str]:
        with self.lock:
            return list(self.repo(full_name).issue(number).labels)

    def statuses(self, full_name: str, ref: str) -> list[dict[str, Any]]:
        """Commit statuses of a SHA or branch, newest first."""
        with self.lock:
            repo = self.repo(full_name)
            sha = repo.git.resolve(ref)
            if sha is None:
                raise UnknownRevision(f"{ref!r} is not a commit of {full_name}")
            return [self.shapes.status(repo, s) for s in repo.statuses.get(sha, [])]

    def check_runs(self, full_name: str, ref: str | None = None) -> list[dict[str, Any]]:
        """Check runs, oldest first: of the commit `ref` names, or of every commit."""
        with self.lock:
            repo = self.repo(full_name)
            sha = None
            if ref is not None:
                sha = repo.git.resolve(ref)
                if sha is None:
                    raise UnknownRevision(f"{ref!r} is not a commit of {full_name}")
            return [
                check_run_shape(self, repo, run)
                for run in repo.check_runs.values()
                if sha is None or run.head_sha == sha
            ]

    def check_run_annotations(self, full_name: str, check_run_id: int) -> list[dict[str, Any]]:
        """Every annotation of a check run, in the order the requests sent them."""
        with self.lock:
            run = self.repo(full_name).check_runs.get(check_run_id)
            if run is None:
                raise KeyError(f"{full_name} has no check run {check_run_id}")
            return [dict(annotation) for annotation in run.annotations]

    def reactions(self, full_name: str, comment_id: int) -> list[dict[str, Any]]:
        with self.lock:
            repo = self.repo(full_name)
            comment = repo.comments.get(comment_id)
            if comment is None:
                raise KeyError(f"{full_name} has no comment {comment_id}")
            return [self.shapes.reaction(r) for r in comment.reactions]

    # ------------------------------------------------------------------ webhook payloads

    def pull_request_payload(
        self, full_name: str, number: int, action: str, **extra: Any
    ) -> dict[str, Any]:
        return self.payloads.pull_request(full_name, number, action, **extra)

    def issue_comment_payload(
        self,
        full_name: str,
        number: int,
        body: str,
        user: str,
        *,
        created_at: str | None = None,
    ) -> dict[str, Any]:
        return self.payloads.issue_comment(full_name, number, body, user, created_at=created_at)

    def check_run_action_payload(
        self, full_name: str, check_run_id: int, identifier: str, sender: str
    ) -> dict[str, Any]:
        """What GitHub sends when `sender` clicks a check run's button (`requested_action`)."""
        return self.payloads.check_run_requested_action(full_name, check_run_id, identifier, sender)

    def push_payload(
        self,
        full_name: str,
        ref: str,
        before: str,
        after: str,
        *,
        forced: bool = False,
        pusher: str = "sandbox-user",
    ) -> dict[str, Any]:
        return self.payloads.push(full_name, ref, before, after, forced=forced, pusher=pusher)

    # ------------------------------------------------------------------ the App's settings

    @property
    def installation_permissions(self) -> dict[str, str]:
        """What the installation was granted (its tokens carry it); change it in place or assign."""
        return self.auth.permissions

    @installation_permissions.setter
    def installation_permissions(self, permissions: Mapping[str, str]) -> None:
        with self.lock:
            self.auth.permissions = dict(permissions)

    # ------------------------------------------------------------------ the App's hook log

    def record_hook_delivery(
        self,
        guid: str,
        event: str,
        action: str | None,
        payload: dict[str, Any],
        *,
        status_code: int = 502,
        delivered_at: str | None = None,
        redelivery: bool = False,
    ) -> HookDelivery:
        """Puts an attempt in the hook log without sending it: a delivery that failed on
        GitHub's side (the receiver answered `status_code`, 0: unreachable), for a test of
        what finds and redelivers it."""
        with self.lock:
            record = HookDelivery(
                self.next_id(),
                guid,
                event,
                action,
                payload,
                status_code,
                delivered_at=delivered_at or now_iso(),
                redelivery=redelivery,
            )
            self.hook_deliveries.append(record)
            return record

    def hook_log(self) -> list[HookDelivery]:
        """Every attempt, newest first, as GitHub lists them (the Actions webhooks sent so far
        included; dropped ones count as attempts that reached no one)."""
        with self.lock:
            for sent in self.webhook_deliveries:
                if sent.delivery_id in self._logged_webhooks or (
                    sent.status is None and not sent.dropped
                ):
                    continue  # logged already, or no target: nothing was attempted
                self._logged_webhooks.add(sent.delivery_id)
                self.record_hook_delivery(
                    sent.delivery_id,
                    sent.event,
                    sent.action,
                    sent.payload,
                    status_code=sent.status or 0,
                    delivered_at=sent.delivered_at,
                )
            return sorted(self.hook_deliveries, key=lambda d: (d.delivered_at, d.id), reverse=True)

    def redeliver(self, delivery_id: int) -> HookDelivery:
        """Sends a logged delivery's payload again to the webhook target, signed, with the same
        `X-GitHub-Delivery`, and logs the new attempt. Called on the endpoints' worker thread,
        so the blocking send leaves the event loop (and the bot on it) free to answer."""
        with self.lock:
            found = next((d for d in self.hook_log() if d.id == delivery_id), None)
            if found is None:
                raise KeyError(f"no hook delivery {delivery_id}")
            url, secret = self.webhook_url, self.webhook_secret
            status = 0
            started = time.monotonic()
            if url and secret:
                body = json.dumps(found.payload).encode()
                headers = delivery_headers(
                    found.event, body, secret, delivery_id=found.guid, app_id=self.app_id
                )
                request = urllib.request.Request(url, body, headers, method="POST")  # noqa: S310
                try:
                    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
                        status = answer.status
                except urllib.error.HTTPError as exc:
                    status = exc.code
                except (urllib.error.URLError, OSError):
                    status = 0
            record = self.record_hook_delivery(
                found.guid,
                found.event,
                found.action,
                found.payload,
                status_code=status,
                redelivery=True,
            )
            record.duration = round(time.monotonic() - started, 3)
            return record
