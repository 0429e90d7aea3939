"""Who should review a pull request: the owners of the lines it changes.

Pure: the handler fetches the pull request's files, reviews and review requests, calls
:func:`plan_reviewers`, and carries out the plan. Keeping the decision free of I/O means the
same plan can be shown from the command line on a local checkout, and every rule below is
tested without a server.

The rules, in the order they apply:

1. If the author is named anywhere in the owners file, nothing is requested: maintainers
   pick their own reviewers (``ReviewerSettings.skip_if_author_owns`` turns this off).
2. If the pull request already has a review, or any user or team is already requested,
   nothing is requested. Reviews by the author (replies to comments are reviews in GitHub's
   API) and by bots do not count: they are not a person's review.
3. Each changed file's owners (its deciding rule) are credited with the file's changed lines.
4. Owners are ranked by credited lines, ties broken by name, and the top ``count`` eligible
   ones are requested. Never eligible: the author, bots, owners listed as unavailable,
   e-mail owners (the API takes logins only), and teams of another organisation (GitHub
   only requests teams of the repository's owner).
5. With ``max_open_reviews`` set, an owner with more open review requests in the repository
   than that is moved behind every other candidate: asked only when no one else can be.
6. The plan lists every candidate in order, so that when GitHub refuses one (422: not a
   collaborator) the handler asks the next with :meth:`ReviewerPlan.next_batch`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from codeowners.owners_file import OwnersFile
from codeowners.syntax import owner_kind

__all__ = [
    "Candidate",
    "ChangedFile",
    "PassedOver",
    "ReviewerPlan",
    "ReviewerSettings",
    "plan_reviewers",
    "review_request_body",
]


@dataclass(frozen=True, slots=True)
class ChangedFile:
    """One file of the pull request and its changed lines (additions + deletions)."""

    path: str
    changes: int

    def __post_init__(self) -> None:
        if not isinstance(self.path, str) or not self.path:
            raise ValueError(f"a changed file needs a non-empty path, got {self.path!r}")
        if isinstance(self.changes, bool) or not isinstance(self.changes, int):
            raise TypeError(f"{self.path}: changes must be an int, got {self.changes!r}")
        if self.changes < 0:
            raise ValueError(f"{self.path}: changes must not be negative, got {self.changes}")


@dataclass(frozen=True, slots=True)
class ReviewerSettings:
    """How reviewers are picked; the defaults are the reference behaviour.

    ``unavailable`` and ``bots`` take logins or teams, with or without ``@`` and in any case
    (``"alice"``, ``"@Alice"``, ``"@org/team"``). Logins ending in ``[bot]`` are always bots.
    ``max_open_reviews=None`` turns load balancing off.
    """

    count: int = 2
    unavailable: tuple[str, ...] = ()
    bots: tuple[str, ...] = ()
    max_open_reviews: int | None = None
    skip_if_author_owns: bool = True
    _unavailable_keys: frozenset[str] = field(init=False, repr=False, compare=False)
    _bot_keys: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 1:
            raise ValueError(f"count must be an int of at least 1, got {self.count!r}")
        if self.max_open_reviews is not None and (
            isinstance(self.max_open_reviews, bool)
            or not isinstance(self.max_open_reviews, int)
            or self.max_open_reviews < 0
        ):
            raise ValueError(
                "max_open_reviews must be None (off) or an int of at least 0, got"
                f" {self.max_open_reviews!r}"
            )
        for name in ("unavailable", "bots"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(v, str) and v for v in value):
                raise TypeError(f"{name} must be a sequence of non-empty logins, got {value!r}")
            object.__setattr__(self, name, tuple(value))
        object.__setattr__(self, "_unavailable_keys", frozenset(map(_key, self.unavailable)))
        object.__setattr__(self, "_bot_keys", frozenset(map(_key, self.bots)))

    def is_bot(self, login: str) -> bool:
        """Bots never review: GitHub's ``[bot]`` suffix, or a login listed in ``bots``."""
        return login.casefold().endswith("[bot]") or _key(login) in self._bot_keys

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
        if isinstance(rejected, str) or isinstance(requested, str):
            raise TypeError("rejected and requested are collections of owners, not one string")
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
    _check_inputs(files, author, reviews, requested, owners, settings, repo_owner)
    load = _load(open_requests)
    count = settings.count
    if settings.skip_if_author_owns:
        line = _author_line(owners, author)
        if line is not None:
            return ReviewerPlan(
                f"the author @{author} is listed in the owners file (line {line}) and picks"
                " their own reviewers",
                count=count,
            )
    reviewers = sorted(
        {r for r in reviews if _key(r) != _key(author) and not settings.is_bot(r)}, key=_key
    )
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
        why_not = _ineligible(owner, author, settings, repo_owner)
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


def _check_inputs(
    files: Sequence[ChangedFile],
    author: str,
    reviews: Sequence[str],
    requested: Sequence[str],
    owners: OwnersFile,
    settings: ReviewerSettings,
    repo_owner: str,
) -> None:
    if not isinstance(author, str) or not author:
        raise ValueError(f"author must be a non-empty login, got {author!r}")
    if not isinstance(repo_owner, str) or not repo_owner:
        raise ValueError(f"repo_owner must be a non-empty login, got {repo_owner!r}")
    for name, value in (("reviews", reviews), ("requested", requested)):
        if isinstance(value, str) or not all(isinstance(v, str) and v for v in value):
            raise TypeError(f"{name} must be a sequence of non-empty logins, got {value!r}")
    if isinstance(files, str | bytes) or not all(isinstance(f, ChangedFile) for f in files):
        raise TypeError("files must be a sequence of ChangedFile")
    if not isinstance(owners, OwnersFile):
        raise TypeError(f"owners must be an OwnersFile, got {type(owners).__name__}")
    if not isinstance(settings, ReviewerSettings):
        raise TypeError(f"settings must be ReviewerSettings, got {type(settings).__name__}")


def _load(open_requests: Mapping[str, int] | None) -> dict[str, int]:
    if open_requests is None:
        return {}
    if not isinstance(open_requests, Mapping):
        raise TypeError(f"open_requests must be a mapping, got {type(open_requests).__name__}")
    load: dict[str, int] = {}
    for name, count in open_requests.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"open_requests keys must be logins, got {name!r}")
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"open_requests[{name!r}] must be a count, got {count!r}")
        load[_key(name)] = load.get(_key(name), 0) + count
    return load


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


def _ineligible(owner: str, author: str, settings: ReviewerSettings, repo_owner: str) -> str | None:
    kind = owner_kind(owner)
    if kind == "email":
        return "an e-mail owner cannot be requested through the API; write the GitHub login"
    if kind == "team":
        org = owner[1:].split("/", 1)[0]
        if _key(org) != _key(repo_owner):
            return f"a team of {org}, not of {repo_owner}; GitHub only requests the owner's teams"
    elif _key(owner) == _key(author):
        return "the author of the pull request"
    elif settings.is_bot(owner[1:]):
        return "a bot"
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
