r"""The reference reviewer script's pattern semantics, in two forms.

The reference is a small script that reads its owners file bottom-up and asks, for every rule,
whether a regular expression built from the pattern is *found anywhere* in the path:

- a leading ``/`` anchors the pattern to the root (``/docs`` matches ``docs/a.md``, not
  ``src/docs/a.md``);
- ``*`` is any run of characters except ``/``;
- everything else is literal, ``?`` included, and there is no end anchor, so an unanchored
  pattern is a substring search: ``trainer.py`` also matches ``seq2seq_trainer.py``, and
  ``utils/dummy*`` also matches ``src/utils/dummy_pt.py``;
- the first rule that matches from the bottom decides, even when it lists no owners.

:func:`reference_lookup` is that algorithm as the script runs it, text line by text line,
building and searching one regex per rule per path: the baseline the benchmark measures.
:class:`ReferenceScript` is the same algorithm with the per-line work (comment stripping,
splitting, regex building) hoisted out of the per-path loop: the oracle the tests compare
against over whole trees, since the script's answer for a line never depends on the path.

:class:`ReferenceMatcher` gives the same answers from rules parsed by ``syntax.py`` (so escapes
such as ``\ `` are honoured), with every regex compiled once and a cheap literal pre-check
before each regex; it is what ``OwnersFile(..., semantics="reference")`` uses.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from codeowners.syntax import Wild, pattern_tokens

__all__ = ["ReferenceMatcher", "ReferenceScript", "reference_lookup", "reference_regex"]


def reference_regex(pattern: str) -> str:
    """The regex source the reference script builds for one pattern, character for character."""
    if pattern.startswith("/"):
        return r"^\/?" + re.escape(pattern[1:]).replace(r"\*", "[^/]*")
    return re.escape(pattern).replace(r"\*", "[^/]*")


def reference_lookup(lines: Sequence[str], path: str) -> tuple[int, tuple[str, ...]] | None:
    """The deciding rule for ``path`` exactly as the reference script finds it.

    Returns ``(line number, owners)``, owners as written (the script drops their ``@`` only
    when it calls the API), or None when no rule matches. Deliberately unoptimised: it is the
    behaviour being reproduced, not a tool.
    """
    for number in range(len(lines), 0, -1):
        content = lines[number - 1].split("#")[0].strip()
        if not content:
            continue
        pattern, *owners = content.split()
        if re.search(reference_regex(pattern), path) is not None:
            return number, tuple(owners)
    return None


class ReferenceScript:
    """The script's lookup over text lines, with each line's regex built once."""

    def __init__(self, lines: Sequence[str]) -> None:
        rules: list[tuple[int, re.Pattern[str], tuple[str, ...]]] = []
        for number, line in enumerate(lines, start=1):
            content = line.split("#")[0].strip()
            if content:
                pattern, *owners = content.split()
                rules.append((number, re.compile(reference_regex(pattern)), tuple(owners)))
        self._bottom_up = rules[::-1]

    def lookup(self, path: str) -> tuple[int, tuple[str, ...]] | None:
        """Same answer as :func:`reference_lookup` for the same lines."""
        for number, regex, owners in self._bottom_up:
            if regex.search(path) is not None:
                return number, owners
        return None


class _ReferenceRule:
    """One pattern under the reference semantics; its regex is compiled on first use."""

    __slots__ = ("_regex", "_source", "index", "needle")

    def __init__(self, index: int, source: str, needle: str) -> None:
        self.index = index
        self.needle = needle
        self._source = source
        self._regex: re.Pattern[str] | None = None

    def search(self, path: str) -> bool:
        if self.needle not in path:
            return False
        if self._regex is None:
            self._regex = re.compile(self._source, re.DOTALL)
        return self._regex.search(path) is not None


class ReferenceMatcher:
    """The reference semantics over parsed patterns, compiled once; -1 means no rule matches.

    Why it is fast without changing a single answer: an anchored pattern whose text starts
    with ``src/models/`` can only match paths under that folder, so rules are filed by the
    folder their literal start names, and each directory's candidate rules (those folders'
    rules plus the unanchored ones, last first) are gathered once and reused for every file
    in it. Each candidate is still checked with the script's own regex.
    """

    def __init__(self, patterns: Iterable[str]) -> None:
        self._anywhere: list[_ReferenceRule] = []
        self._under: dict[str, list[_ReferenceRule]] = {}
        self._rules: list[_ReferenceRule] = []
        for index, pattern in enumerate(patterns):
            rule, folder = _reference_rule(index, pattern)
            self._rules.append(rule)
            if folder:
                self._under.setdefault(folder, []).append(rule)
            else:
                self._anywhere.append(rule)
        self._candidates: dict[str, tuple[_ReferenceRule, ...]] = {}

    def decide(self, path: str) -> int:
        """Index of the deciding pattern for ``path``; -1 when no pattern matches."""
        cut = path.rfind("/") + 1
        candidates = self._candidates.get(path[:cut])
        if candidates is None:
            _check_path(path)
            candidates = self._gather(path[:cut])
        elif not path[cut:]:
            _check_path(path)
        for rule in candidates:
            if rule.search(path):
                return rule.index
        return -1

    def matching(self, path: str) -> tuple[int, ...]:
        """Every pattern that matches ``path``, in file order."""
        _check_path(path)
        return tuple(rule.index for rule in self._rules if rule.search(path))

    def _gather(self, directory: str) -> tuple[_ReferenceRule, ...]:
        found = list(self._anywhere)
        end = directory.find("/")
        while end >= 0:
            found.extend(self._under.get(directory[: end + 1], ()))
            end = directory.find("/", end + 1)
        found.sort(key=lambda rule: -rule.index)
        candidates = self._candidates[directory] = tuple(found)
        return candidates


def _reference_rule(index: int, pattern: str) -> tuple[_ReferenceRule, str]:
    """The rule, and the folder an anchored pattern's literal start confines it to ('' if none)."""
    tokens = pattern_tokens(pattern)
    anchored = bool(tokens) and tokens[0] is Wild.SLASH
    pieces = [r"\A/?"] if anchored else []
    literals: list[str] = [""]
    for token in tokens[1:] if anchored else tokens:
        if token is Wild.STAR:
            pieces.append("[^/]*")
            literals.append("")
            continue
        text = token.value if isinstance(token, Wild) else token
        pieces.append(re.escape(text))
        literals[-1] += text
    # A path can only match if it contains the longest literal run of the pattern.
    needle = max(literals, key=len)
    folder = literals[0][: literals[0].rfind("/") + 1] if anchored else ""
    return _ReferenceRule(index, "".join(pieces), needle), folder


def _check_path(path: str) -> None:
    # The same paths are refused under both semantics, so switching semantics never turns a
    # bad path into an answer.
    if not path or path[0] == "/" or path[-1] == "/" or "//" in path:
        raise ValueError(
            f"bad path {path!r}: expected a file path relative to the repository root, with no"
            " empty, leading, trailing or doubled '/'"
        )
