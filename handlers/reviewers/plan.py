"""Who should review a pull request: the owners of the lines it changes.

Pure: the handler fetches the pull request's files, reviews and review requests, calls
:func:`plan_reviewers`, and carries out the plan. Keeping the decision free of I/O means the
same plan can be shown from the command line on a local checkout, and every rule below is
tested without a server.

The rules, in the order they apply:

1. If the author is named anywhere in the owners file, nothing is requested: maintainers
   pick their own reviewers.
2. If the pull request already has a review, or any user or team is already requested,
   nothing is requested. Reviews by the author (replies to comments are reviews in GitHub's
   API) and by bots (GitHub's ``[bot]`` logins) do not count: they are not a person's review.
3. Each changed file's owners (its deciding rule) are credited with the file's changed lines.
4. Owners are ranked by credited lines, ties broken by name, and the top ``count`` eligible
   ones are requested. Never eligible: owners listed as unavailable, e-mail owners (the API
   takes logins only), and teams of another organisation (GitHub only requests teams of the
   repository's owner). The author is never among the owners here: see rule 1.
5. With ``max_open_reviews`` set, an owner with more open review requests in the repository
   than that is moved behind every other candidate: asked only when no one else can be.
6. The plan lists every candidate in order, so that when GitHub refuses one (422: not a
   collaborator) the handler asks the next with :meth:`ReviewerPlan.next_batch`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from codeowners.owners_file import OwnersFile
from codeowners.syntax import owner_kind
from handlers.reviewers.config import ReviewersConfig

__all__ = [
    "Candidate",
    "ChangedFile",
    "PassedOver",
    "ReviewerPlan",
    "ReviewerSettings",
    "plan_reviewers",
    "review_request_body",
    "settings_from",
    "targets_branch",
]


@dataclass(frozen=True, slots=True)
class ChangedFile:
    """One file of the pull request and its changed lines (additions + deletions)."""

    path: str
    changes: int

    def __post_init__(self) -> None:
        # Built from GitHub's answer or git's output: a bad count must not skew the credit.
        if not self.path:
            raise ValueError(f"a changed file needs a non-empty path, got {self.path!r}")
        if self.changes < 0:
            raise ValueError(f"{self.path}: changes must not be negative, got {self.changes}")


@dataclass(frozen=True, slots=True)
class ReviewerSettings:
    """How reviewers are picked; the defaults are the reference behaviour.

    ``unavailable`` takes logins or teams, with or without ``@`` and in any case
    (``"alice"``, ``"@Alice"``, ``"@org/team"``). ``max_open_reviews=None`` turns load
    balancing off.
    """

    count: int = 2
    unavailable: tuple[str, ...] = ()
    max_open_reviews: int | None = None
    _unavailable_keys: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # The repository's config file is validated where it is parsed (`bot.config`).
        object.__setattr__(self, "_unavailable_keys", frozenset(map(_key, self.unavailable)))

    def is_unavailable(self, owner: str) -> bool:
        """Whether the config lists this user or team as not taking reviews now."""
        return _key(owner) in self._unavailable_keys


@dataclass(frozen=True, slots=True)
class Candidate:
    """An owner the bot may request, with the reason shown to people."""

    owner: str  # as written in the owners file: "@alice" or "@org/team"
    login: str  # what the API takes: a user login, or a team slug
    is_team: bool
    lines: int
    files: int
    share: float  # credited lines / all changed lines, 0 when nothing changed
    reason: str


@dataclass(frozen=True, slots=True)
class PassedOver:
    """An owner of changed files who will not be requested, and why."""

    owner: str
    reason: str


@dataclass(frozen=True, slots=True)
class ReviewerPlan:
    """What to request. ``skip_reason`` set means: request nobody, and say why."""

    skip_reason: str | None
    candidates: tuple[Candidate, ...] = ()
    passed_over: tuple[PassedOver, ...] = ()
    count: int = 2
    total_lines: int = 0

    def next_batch(
        self, *, rejected: Collection[str] = (), requested: Collection[str] = ()
    ) -> tuple[Candidate, ...]:
        """The candidates to request next, given what happened so far.

        ``requested``: owners (``Candidate.owner``) GitHub accepted; ``rejected``: owners it
        refused. The handler's loop is: request ``next_batch(...)``; on success add them to
        ``requested``; on a 422 for a batch of several, request them one by one to find the
        refused ones, add those to ``rejected`` (and log them); repeat until the batch is
        empty. Empty when the plan is skipped or ``count`` reviewers are requested.
        """
        if self.skip_reason is not None:
            return ()
        done = {_key(owner) for owner in requested}
        refused = {_key(owner) for owner in rejected}
        need = self.count - len(done)
        if need <= 0:
            return ()
        batch = [c for c in self.candidates if _key(c.owner) not in done | refused]
        return tuple(batch[:need])

    def summary(self) -> str:
        """A short text for people: who is requested and why, or why nobody is."""
        if self.skip_reason is not None:
            return f"No reviewers requested: {self.skip_reason}."
        lines = [c.reason for c in self.next_batch()]
        lines += [f"{p.owner} passed over: {p.reason}" for p in self.passed_over]
        return "\n".join(lines)


def settings_from(config: ReviewersConfig) -> ReviewerSettings:
    """The planner's settings from the repository's `[reviewers]` config."""
    return ReviewerSettings(
        count=config.count,
        unavailable=config.unavailable,
        max_open_reviews=config.max_open_reviews or None,
    )


def targets_branch(pull: Mapping[str, Any], config: ReviewersConfig, default_branch: str) -> bool:
    """Only pull requests into the configured branches (the default one unless set) qualify."""
    branches = config.branches or (default_branch,)
    return pull["base"]["ref"] in branches


def review_request_body(batch: Sequence[Candidate]) -> dict[str, list[str]]:
    """The JSON body of GitHub's "request reviewers" call for ``batch``."""
    return {
        "reviewers": [c.login for c in batch if not c.is_team],
        "team_reviewers": [c.login for c in batch if c.is_team],
    }


def plan_reviewers(
    files: Sequence[ChangedFile],
    author: str,
    reviews: Sequence[str],
    requested: Sequence[str],
    owners: OwnersFile,
    settings: ReviewerSettings,
    open_requests: Mapping[str, int] | None = None,
    *,
    repo_owner: str,
) -> ReviewerPlan:
    """Decides whom to ask for review; see the module docstring for the rules.

    ``reviews``: logins of everyone who submitted a review; ``requested``: logins and team
    slugs already requested; ``open_requests``: open review requests per login (or
    ``org/team``) across the repository, for load balancing; ``repo_owner``: the login of the
    repository's owner, the only organisation whose teams can be requested.
    """
    files = tuple(files)
    load = _load(open_requests or {})
    count = settings.count
    line = _author_line(owners, author)
    if line is not None:
        return ReviewerPlan(
            f"the author @{author} is listed in the owners file (line {line}) and picks"
            " their own reviewers",
            count=count,
        )
    reviewers = sorted({r for r in reviews if _key(r) != _key(author) and not _is_bot(r)}, key=_key)
    if reviewers:
        return ReviewerPlan(
            f"the pull request already has a review (from {_names(reviewers)})", count=count
        )
    if requested:
        return ReviewerPlan(
            f"reviewers are already requested ({_names(sorted(set(requested), key=_key))})",
            count=count,
        )
    if not files:
        return ReviewerPlan("the pull request changes no files", count=count)

    total = sum(f.changes for f in files)
    credit = _credit(files, owners)
    if not credit:
        return ReviewerPlan(
            "none of the changed files has an owner in the owners file",
            count=count,
            total_lines=total,
        )
    ready: list[Candidate] = []
    overloaded: list[Candidate] = []
    passed: list[PassedOver] = []
    for owner, (lines, nfiles) in sorted(credit.items(), key=lambda i: (-i[1][0], _key(i[0]))):
        why_not = _ineligible(owner, settings, repo_owner)
        if why_not is not None:
            passed.append(PassedOver(owner, why_not))
            continue
        share = lines / total if total else 0.0
        reason = _reason(owner, lines, nfiles, total)
        open_now = load.get(_key(owner), 0)
        cap = settings.max_open_reviews
        is_team = owner_kind(owner) == "team"
        login = owner.split("/", 1)[1] if is_team else owner[1:]
        if cap is not None and open_now > cap:
            reason += (
                f"; has {open_now} open review requests, over the cap of {cap}, so asked"
                " only if no other owner can be"
            )
            overloaded.append(Candidate(owner, login, is_team, lines, nfiles, share, reason))
        else:
            ready.append(Candidate(owner, login, is_team, lines, nfiles, share, reason))
    candidates = tuple(ready + overloaded)
    if not candidates:
        return ReviewerPlan(
            "no owner of the changed files can be requested ("
            + "; ".join(f"{p.owner}: {p.reason}" for p in passed)
            + ")",
            passed_over=tuple(passed),
            count=count,
            total_lines=total,
        )
    return ReviewerPlan(None, candidates, tuple(passed), count, total)


def _load(open_requests: Mapping[str, int]) -> dict[str, int]:
    """One count per owner, however GitHub and the owners file spell the login."""
    load: dict[str, int] = {}
    for name, count in open_requests.items():
        load[_key(name)] = load.get(_key(name), 0) + count
    return load


def _is_bot(login: str) -> bool:
    """GitHub Apps review as ``name[bot]``; no such login can be written in an owners file."""
    return login.casefold().endswith("[bot]")


def _key(name: str) -> str:
    """Logins and team names compare without ``@`` and case-insensitively, as on GitHub."""
    return name.removeprefix("@").casefold()


def _names(logins: Sequence[str]) -> str:
    return ", ".join(f"@{login.removeprefix('@')}" for login in logins)


def _author_line(owners: OwnersFile, author: str) -> int | None:
    wanted = _key(author)
    for rule in owners.rules:
        if any(owner_kind(o) == "user" and _key(o) == wanted for o in rule.owners):
            return rule.line
    return None


def _credit(files: Sequence[ChangedFile], owners: OwnersFile) -> dict[str, tuple[int, int]]:
    """Lines and files per owner; one person written in two cases is one owner."""
    spelling = {_key(name): name for name in owners.owner_names}
    credit: dict[str, tuple[int, int]] = {}
    for changed in files:
        for key in dict.fromkeys(_key(o) for o in owners.owners(changed.path)):
            lines, nfiles = credit.get(key, (0, 0))
            credit[key] = (lines + changed.changes, nfiles + 1)
    return {spelling[key]: value for key, value in credit.items()}


def _ineligible(owner: str, settings: ReviewerSettings, repo_owner: str) -> str | None:
    kind = owner_kind(owner)
    if kind == "email":
        return "an e-mail owner cannot be requested through the API; write the GitHub login"
    if kind == "team":
        org = owner[1:].split("/", 1)[0]
        if _key(org) != _key(repo_owner):
            return f"a team of {org}, not of {repo_owner}; GitHub only requests the owner's teams"
    if settings.is_unavailable(owner):
        return "listed as unavailable in the configuration"
    return None


def _reason(owner: str, lines: int, nfiles: int, total: int) -> str:
    if total == 0:
        plural = "s" if nfiles != 1 else ""
        return f"{owner}: owns {nfiles} changed file{plural} (no changed lines)"
    percent = 100 * lines / total
    shown = "<1" if 0 < percent < 1 else f"{percent:.0f}"
    return f"{owner}: {shown}% of changed lines ({lines} of {total})"
