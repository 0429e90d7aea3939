"""What the sandbox GitHub remembers besides git: people, teams, issues, pull requests, comments,
reviews, labels, reactions, commit statuses, check runs and GitHub Actions runs, plus the record
of every request it answered and every webhook it sent.

Plain data: the rules (who may be asked to review, what a merge does) live in `people.py`,
`pulls.py` and the endpoints, so a test may also set a field directly to stage an unusual
situation (a pull request's `draft`, say).
"""

from __future__ import annotations

import asyncio
import re
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.sandbox.gitrepo import GitRepo

#: Repository roles, weakest first; `permission` answers fold maintain into write and triage
#: into read, as GitHub's legacy `permission` field does.
ROLES = ("read", "triage", "write", "maintain", "admin")
LEGACY_PERMISSION = {
    "read": "read",
    "triage": "read",
    "write": "write",
    "maintain": "write",
    "admin": "admin",
}
_LOGIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})(?:\[bot\])?$")
_REPO_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def stable_id(*parts: str) -> int:
    """A positive id that is the same on every run, so payloads are reproducible."""
    return zlib.crc32("\0".join(parts).encode()) or 1


def check_login(login: str) -> str:
    if not isinstance(login, str) or not _LOGIN.match(login):
        raise ValueError(f"{login!r} is not a GitHub login (letters, digits, inner hyphens)")
    return login


def check_full_name(full_name: str) -> tuple[str, str]:
    owner, _, name = full_name.partition("/") if isinstance(full_name, str) else ("", "", "")
    if not name or not _REPO_NAME.match(name) or name in (".", ".."):
        raise ValueError(f"{full_name!r} is not an owner/name repository name")
    check_login(owner)
    return owner, name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise ValueError(f"{role!r} is not a repository role; use one of {', '.join(ROLES)}")
    return role


@dataclass
class User:
    login: str
    kind: str = "User"  # User | Bot | Organization

    @property
    def id(self) -> int:
        return stable_id("user", self.login.lower())


@dataclass
class Team:
    org: str
    slug: str
    members: list[str]
    permission: str = "write"

    @property
    def id(self) -> int:
        return stable_id("team", self.org.lower(), self.slug.lower())


@dataclass
class Comment:
    id: int
    issue: int
    body: str
    author: str
    created_at: str
    updated_at: str
    reactions: list[Reaction] = field(default_factory=list)


@dataclass
class Reaction:
    id: int
    content: str
    user: str
    created_at: str


@dataclass
class Review:
    id: int
    user: str
    state: str  # APPROVED | CHANGES_REQUESTED | COMMENTED | DISMISSED | PENDING
    body: str
    commit_id: str | None
    submitted_at: str


@dataclass
class Status:
    id: int
    state: str
    context: str
    description: str | None
    target_url: str | None
    creator: str
    created_at: str


@dataclass
class CheckRun:
    """A check run (Checks API); `annotations` accumulate over the requests that sent them."""

    id: int
    name: str
    head_sha: str
    app_id: int  # the App that created it (the sandbox has one; the static token speaks for it)
    external_id: str | None
    details_url: str | None
    status: str  # queued | in_progress | completed
    conclusion: str | None
    started_at: str
    completed_at: str | None
    title: str | None = None
    summary: str | None = None
    text: str | None = None
    annotations: list[dict[str, Any]] = field(default_factory=list)
    actions: list[dict[str, str]] = field(default_factory=list)


@dataclass
class WorkflowJob:
    """The one job of a workflow run (the sandbox runs single-job workflows)."""

    id: int
    name: str
    labels: list[str]
    status: str = "queued"  # queued | in_progress | completed
    conclusion: str | None = None
    runner_name: str | None = None
    created_at: str = field(default_factory=now_iso)
    started_at: str | None = None
    completed_at: str | None = None
    #: the job's whole log, kept once it completed (GitHub serves it only then)
    log: str | None = None


@dataclass
class Artifact:
    id: int
    name: str
    run_id: int
    data: bytes  # the zip GitHub serves
    digest: str  # "sha256:<hex>" of `data`
    created_at: str = field(default_factory=now_iso)
    expires_at: str = ""
    expired: bool = False


@dataclass
class WorkflowRun:
    """A `workflow_dispatch` run: what was asked (inputs at the dispatched ref's commit), where it
    is, and what it left (artifact ids). `hold` keeps it queued until a test releases it."""

    id: int
    run_number: int
    workflow_path: str  # .github/workflows/<file>
    workflow_name: str
    display_title: str
    head_branch: str
    head_sha: str
    inputs: dict[str, str]
    actor: str
    job: WorkflowJob
    status: str = "queued"  # queued | in_progress | completed
    conclusion: str | None = None
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)
    artifacts: list[int] = field(default_factory=list)
    #: why the job cannot get a runner (its `runs-on` did not evaluate); it then fails unrun
    startup_error: str | None = None
    cancel_requested: bool = False
    hold: RunHold | None = None


@dataclass(kw_only=True)
class Issue:
    number: int
    title: str
    body: str
    author: str
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)
    state: str = "open"
    state_reason: str | None = None
    closed_at: str | None = None
    locked: bool = False
    labels: list[str] = field(default_factory=list)
    comments: list[int] = field(default_factory=list)
    reactions: list[Reaction] = field(default_factory=list)

    @property
    def is_pull(self) -> bool:
        return False


@dataclass(kw_only=True)
class Pull(Issue):
    """A pull request. Its head is read from the head repository's branch while it is open;
    from closing on it stays at the last head seen, as on GitHub."""

    head_ref: str
    head_repo: str
    base_ref: str
    draft: bool = False
    maintainer_can_modify: bool = False
    merged: bool = False
    merged_at: str | None = None
    merged_by: str | None = None
    #: the test merge while open (stale while the head conflicts), the merge once merged
    merge_commit_sha: str | None = None
    #: (base tip, head) the test merge was last made for, whether or not they merged cleanly
    test_merge_of: tuple[str, str] | None = None
    head_sha: str | None = None  # the last head seen (frozen once closed)
    base_sha: str | None = None  # the base branch when closed (None while open: its tip)
    merged_commits: tuple[str, ...] = ()
    requested_users: list[str] = field(default_factory=list)
    requested_teams: list[str] = field(default_factory=list)
    reviews: list[Review] = field(default_factory=list)

    @property
    def is_pull(self) -> bool:
        return True


@dataclass
class Label:
    name: str
    color: str = "ededed"
    description: str | None = None


@dataclass
class SandboxRepo:
    """One repository: its git storage and everything GitHub keeps beside it."""

    full_name: str
    git: GitRepo
    default_branch: str
    owner_type: str = "Organization"
    private: bool = False
    description: str | None = None
    collaborators: dict[str, str] = field(default_factory=dict)  # login -> role
    fork_of: str | None = None
    created_at: str = field(default_factory=now_iso)
    issues: dict[int, Issue] = field(default_factory=dict)
    comments: dict[int, Comment] = field(default_factory=dict)
    statuses: dict[str, list[Status]] = field(default_factory=dict)  # sha -> newest first
    check_runs: dict[int, CheckRun] = field(default_factory=dict)  # id -> check run, oldest first
    labels: dict[str, Label] = field(default_factory=dict)  # lower-cased name -> label
    workflow_runs: dict[int, WorkflowRun] = field(default_factory=dict)  # id -> run, oldest first
    artifacts: dict[int, Artifact] = field(default_factory=dict)
    #: the body of every request that reached the dispatch endpoint, accepted or refused
    dispatches: list[dict[str, Any]] = field(default_factory=list)

    @property
    def owner(self) -> str:
        return self.full_name.split("/", 1)[0]

    @property
    def name(self) -> str:
        return self.full_name.split("/", 1)[1]

    @property
    def id(self) -> int:
        return stable_id("repo", self.full_name.lower())

    @property
    def path(self) -> Path:
        return self.git.path

    def next_number(self) -> int:
        """Issues and pull requests share one sequence of numbers, as on GitHub."""
        return max(self.issues, default=0) + 1

    def pull(self, number: int) -> Pull:
        issue = self.issues.get(number)
        if not isinstance(issue, Pull):
            raise KeyError(f"{self.full_name} has no pull request #{number}")
        return issue

    def issue(self, number: int) -> Issue:
        if number not in self.issues:
            raise KeyError(f"{self.full_name} has no issue or pull request #{number}")
        return self.issues[number]


@dataclass
class RecordedRequest:
    """One request the sandbox answered, for assertions: what was asked and what it said."""

    method: str
    path: str
    query: dict[str, str]
    json: Any
    status: int = 0
    #: the request's headers, names lower-cased, credentials left out
    headers: dict[str, str] = field(default_factory=dict)
    #: the JSON answer, kept only while the sandbox's `record_answers` is on
    answer: Any = None


@dataclass
class Hold:
    """A request that waits, unanswered, until the test releases it (`hold_next`)."""

    method: str
    pattern: re.Pattern[str]
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)

    def release(self) -> None:
        self.released.set()


@dataclass
class RunHold:
    """Keeps the next dispatched workflow run `queued` (`hold_next_run`): `reached` is set once
    the run exists and its `queued` webhooks went out; the run goes on after `release()`."""

    reached: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)
    run_id: int | None = None

    def release(self) -> None:
        self.released.set()


@dataclass
class DroppedWebhooks:
    """The next `times` deliveries of `event` (and `action`, None: any) are lost on the way."""

    event: str
    action: str | None
    times: int


@dataclass
class WebhookDelivery:
    """A webhook the sandbox itself sent (Actions events), for assertions.

    `status` is the receiver's HTTP answer; 0 when it could not be reached, None when the
    delivery was dropped (`drop_webhooks`) or no target was set (`webhook_target`).
    """

    event: str
    action: str | None
    payload: dict[str, Any]
    delivery_id: str
    status: int | None
    dropped: bool = False
    delivered_at: str = field(default_factory=now_iso)


@dataclass
class Failure:
    """A programmed answer for the next matching requests (an outage, a rate limit)."""

    method: str
    pattern: re.Pattern[str]
    status: int
    times: int
    headers: dict[str, str]
    body: Any


@dataclass
class HookDelivery:
    """One attempt at a delivery as the App's hook log shows it (`GET /app/hook/deliveries`):
    the first attempt and each redelivery are entries of their own, sharing the `guid` (the
    `X-GitHub-Delivery` header). `status_code` 0: the receiver could not be reached."""

    id: int
    guid: str
    event: str
    action: str | None
    payload: dict[str, Any]
    status_code: int
    delivered_at: str = field(default_factory=now_iso)
    redelivery: bool = False
    duration: float = 0.0

    @property
    def status(self) -> str:
        """GitHub's words for the outcome."""
        if 200 <= self.status_code < 300:
            return "OK"
        if self.status_code == 0:
            return "Failed to connect to host"
        return f"Invalid HTTP Response: {self.status_code}"
