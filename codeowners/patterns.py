r"""GitHub's CODEOWNERS pattern semantics, compiled once for a whole file.

The rules, each with an example (``matches(pattern, path)`` checks one pattern against one
file path; paths are relative to the repository root, without a leading ``/``):

``*`` matches any run of characters except ``/``, including none.

>>> matches("*.md", "docs/index.md"), matches("*.md", "docs/index.mdx")
(True, False)

``?`` matches exactly one character except ``/``.

>>> matches("v?.txt", "v1.txt"), matches("v?.txt", "v10.txt")
(True, False)

A pattern with no slash, or only a trailing one, matches at any depth.

>>> matches("trainer.py", "src/transformers/trainer.py")
True
>>> matches("trainer.py", "examples/seq2seq_trainer.py")
False

A leading or inner slash anchors the pattern to the repository root.

>>> matches("/setup.py", "setup.py"), matches("/setup.py", "tools/setup.py")
(True, False)
>>> matches("utils/dummy*", "utils/dummy_objects.py")
True
>>> matches("utils/dummy*", "src/utils/dummy_objects.py")
False

A trailing ``/`` matches directories only, so a file of that name is not matched.

>>> matches("build/", "build/out.o"), matches("build/", "src/build")
(True, False)

A pattern that matches a directory owns everything below it.

>>> matches("/src/models", "src/models/bert/modeling_bert.py")
True
>>> matches("*tokenization*", "src/tokenization/fast/core.py")
True

...except a pattern ending in ``/*``, which owns the directory's own files, not deeper ones.

>>> matches("docs/*", "docs/getting-started.md")
True
>>> matches("docs/*", "docs/build-app/troubleshooting.md")
False

A leading ``**/`` matches in every directory.

>>> matches("**/logs", "deeply/nested/logs/today.txt"), matches("**/logs", "logs/a")
(True, True)

An inner ``/**/`` matches zero or more directories.

>>> matches("a/**/b", "a/b/c.py"), matches("a/**/b", "a/x/y/b/c.py")
(True, True)
>>> matches("a/**/b", "z/a/b/c.py")
False

A trailing ``/**`` matches everything inside the directory, not the directory itself.

>>> matches("build/**", "build/x/y.o"), matches("build/**", "build")
(True, False)

Any other run of asterisks is a plain ``*``.

>>> matches("**.py", "src/a.py"), matches("a**z", "abc/xyz")
(True, False)

A backslash makes the next character literal (and escapes a space or a ``#`` in the file).

>>> matches(r"f\*o", "f*o"), matches(r"f\*o", "foo")
(True, False)

Where several rules match, the last one in the file decides; that is the job of
``OwnersFile``, which uses :class:`GithubMatcher` below.

GitHub documents three gitignore features as unsupported in CODEOWNERS: ``!`` negation,
``[...]`` character ranges, and (ignored here, since the file format needs it) ``\#``. The
first two are reported as errors and their lines skipped, as GitHub skips invalid lines.

How matching stays fast: every pattern is split into path segments and all patterns go into
one trie of segments (literal segments are dictionary keys, wildcard segments small regexes,
``**`` a node that loops on itself). Matching a path walks its directories through the trie,
and each directory's walk is memoised, so a tree of N files in D directories costs about D
trie steps plus N dictionary lookups, whatever the number of rules.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeAlias

from codeowners.syntax import Token, Wild, pattern_tokens

__all__ = [
    "CompiledPattern",
    "GithubMatcher",
    "PatternError",
    "check_pattern",
    "compile_pattern",
    "compile_patterns",
    "matches",
]


class PatternError(ValueError):
    """A pattern GitHub cannot use; ``code`` is a short stable name for tools and tests."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class _DoubleStar:
    """The ``**`` segment: zero or more whole directories."""

    def __repr__(self) -> str:
        return "**"


_DOUBLE_STAR = _DoubleStar()
_Segment: TypeAlias = "str | _Glob | _DoubleStar"


@dataclass(frozen=True, slots=True)
class CompiledPattern:
    """One pattern read into path segments; build it with :func:`compile_pattern`."""

    pattern: str
    segments: tuple[_Segment, ...]
    dir_only: bool
    file_only: bool


def check_pattern(pattern: str) -> PatternError | None:
    """The reason GitHub would reject ``pattern``, or None when it is usable."""
    try:
        compile_pattern(pattern)
    except PatternError as error:
        return error
    return None


def matches(pattern: str, path: str) -> bool:
    """Whether one pattern matches one file path; for docs, tests and one-off checks."""
    return GithubMatcher([pattern]).decide(path) == 0


def compile_pattern(pattern: str) -> CompiledPattern:
    """Reads one pattern; raises :class:`PatternError` for one GitHub cannot use."""
    return _compile(pattern, _SegmentReader())


def compile_patterns(patterns: Iterable[str]) -> list[CompiledPattern | PatternError]:
    """Reads a file's patterns, sharing the work on segments they repeat (``src``, ``*.py``)."""
    reader = _SegmentReader()
    compiled: list[CompiledPattern | PatternError] = []
    for pattern in patterns:
        try:
            compiled.append(_compile(pattern, reader))
        except PatternError as error:
            compiled.append(error)
    return compiled


def _compile(pattern: str, reader: _SegmentReader) -> CompiledPattern:
    if not isinstance(pattern, str):
        raise TypeError(f"pattern must be str, got {type(pattern).__name__}")
    if pattern.startswith("!"):
        raise PatternError(
            "negation",
            f"{pattern!r}: '!' negation is not supported in CODEOWNERS; escape it as '\\!'"
            " to match a name starting with '!'",
        )
    if "[" in pattern and Wild.OPEN in pattern_tokens(pattern):
        raise PatternError(
            "char-class",
            f"{pattern!r}: '[...]' character ranges are not supported in CODEOWNERS; escape"
            " the bracket as '\\[' to match it literally",
        )
    if "\\/" in pattern:
        raise PatternError("bad-pattern", f"{pattern!r}: a '/' cannot be escaped")
    pieces = reader.pieces(pattern)
    leading = len(pieces) > 1 and pieces[0] is None
    trailing = len(pieces) > 1 and pieces[-1] is None
    body = pieces[1 if leading else 0 : len(pieces) - 1 if trailing else len(pieces)]
    if not body or None in body:
        raise PatternError(
            "bad-pattern",
            f"{pattern!r}: empty path segment; use '*' to match every file",
        )
    segments: list[_Segment] = []
    for segment in body:
        if segment is _DOUBLE_STAR and segments and segments[-1] is _DOUBLE_STAR:
            continue
        segments.append(segment)  # type: ignore[arg-type]
    anchored = leading or len(segments) > 1
    file_only = anchored and not trailing and body[-1] is reader.lone_star
    dir_only = trailing
    if segments[-1] is _DOUBLE_STAR:
        # `dir/**` is everything inside `dir`: the same as `dir/`. A lone `**` is every path.
        segments.pop()
        if segments:
            dir_only = True
        else:
            segments = [reader.lone_star]
            anchored = False
    if not anchored:
        segments.insert(0, _DOUBLE_STAR)
    return CompiledPattern(pattern, tuple(segments), dir_only, file_only)


class _SegmentReader:
    """Turns pattern text into segments, reading each distinct piece of text once.

    Why the cache: a large file repeats the same pieces (``src``, ``transformers``,
    ``models``) on hundreds of lines, and reading a piece is most of the cost of compiling.
    """

    def __init__(self) -> None:
        self._by_text: dict[str, _Segment | None] = {}
        self.lone_star = _Glob.of((Wild.STAR,))

    def pieces(self, pattern: str) -> list[_Segment | None]:
        """The pattern's segments between unescaped ``/``; None for an empty one."""
        if "\\" not in pattern:
            by_text = self._by_text
            out: list[_Segment | None] = []
            for text in pattern.split("/"):
                if text in by_text:
                    out.append(by_text[text])
                else:
                    segment = by_text[text] = self._text_segment(text)
                    out.append(segment)
            return out
        parts: list[list[Token]] = [[]]
        for token in pattern_tokens(pattern):
            if token is Wild.SLASH:
                parts.append([])
            else:
                parts[-1].append(token)
        return [self._segment(tuple(part)) for part in parts]

    def _text_segment(self, text: str) -> _Segment | None:
        # Text with no backslash: the common shapes need no tokenising at all.
        if "*" not in text and "?" not in text:
            return text or None
        if "?" not in text and "**" not in text:
            return self.lone_star if text == "*" else _Glob.from_pieces(text.split("*"))
        return self._segment(pattern_tokens(text))

    def _segment(self, part: tuple[Token, ...]) -> _Segment | None:
        if not part:
            return None
        if len(part) == 1:
            if isinstance(part[0], str):
                return part[0]
            if part[0] is Wild.STAR:
                return self.lone_star
        if part == (Wild.STAR, Wild.STAR):
            return _DOUBLE_STAR
        return _Glob.of(part)


class _Glob:
    """A one-segment wildcard pattern, matched with string methods where it can be.

    Why not always a regex: compiling hundreds of regexes dominates the cost of loading a
    large file, while the patterns people write (``*.md``, ``mod*_bert*``) are a prefix, a
    suffix and some pieces in between, which ``str`` methods check faster than ``re`` does.
    """

    __slots__ = ("key", "match_all", "test")

    def __init__(self, key: tuple[str, ...], test: Callable[[str], bool], match_all: bool) -> None:
        self.key = key  # equal keys match the same names, so the trie shares their node
        self.test = test
        self.match_all = match_all

    @classmethod
    def from_pieces(cls, pieces: list[str]) -> _Glob:
        """``piece*piece*...``: the literal texts between the stars."""
        return cls(("*", *pieces), _pieces_test(pieces), not any(pieces))

    @classmethod
    def of(cls, part: tuple[Token, ...]) -> _Glob:
        if Wild.QMARK in part:
            regex = "".join(
                ".*" if t is Wild.STAR else "." if t is Wild.QMARK else re.escape(str(t))
                for t in part
            )
            return cls(("re", regex), _regex_test(regex), False)
        pieces = [""]
        for token in part:
            if token is Wild.STAR:
                pieces.append("")
            else:
                pieces[-1] += str(token)
        return cls.from_pieces(pieces)


def _regex_test(regex: str) -> Callable[[str], bool]:
    fullmatch = re.compile(regex, re.DOTALL).fullmatch
    return lambda name: fullmatch(name) is not None


def _pieces_test(pieces: list[str]) -> Callable[[str], bool]:
    """A test for ``piece*piece*...*piece``; the common shapes get a one-call closure."""
    prefix, suffix = pieces[0], pieces[-1]
    middle = tuple(piece for piece in pieces[1:-1] if piece)
    least = len(prefix) + len(suffix) + sum(map(len, middle))
    if not middle:
        if not suffix:
            return lambda name: name.startswith(prefix)
        if not prefix:
            return lambda name: name.endswith(suffix)
        return lambda name: len(name) >= least and name.startswith(prefix) and name.endswith(suffix)
    if not prefix and not suffix and len(middle) == 1:
        (inner,) = middle
        return lambda name: inner in name

    def test(name: str) -> bool:
        if len(name) < least or not (name.startswith(prefix) and name.endswith(suffix)):
            return False
        start, end = len(prefix), len(name) - len(suffix)
        for piece in middle:
            found = name.find(piece, start, end)
            if found < 0:
                return False
            start = found + len(piece)
        return True

    return test


class _Node:
    """A position in the segment trie: the patterns that have matched up to here."""

    __slots__ = (
        "dir_best",
        "dir_rules",
        "file_best",
        "file_globs",
        "file_rules",
        "glob_by_key",
        "globs",
        "is_star",
        "leaf",
        "literal",
        "next",
        "star",
        "wild",
    )

    def __init__(self, *, is_star: bool = False) -> None:
        self.literal: dict[str, _Node] = {}
        self.wild: _Node | None = None  # the child for a lone `*` segment: any name
        self.glob_by_key: dict[tuple[str, ...], _Node] = {}
        self.globs: list[tuple[_Glob, _Node]] = []
        self.file_globs: tuple[tuple[Callable[[str], bool], _Node], ...] = ()
        self.star: _Node | None = None
        self.is_star = is_star
        self.dir_rules: list[int] = []
        self.file_rules: list[int] = []
        self.dir_best = -1
        self.file_best = -1
        self.leaf = False  # set by _finish: nothing can match below this node
        self.next: dict[str, tuple[_Node, ...]] = {}

    def child(self, segment: _Segment) -> _Node:
        if isinstance(segment, str):
            node = self.literal.get(segment)
            if node is None:
                node = self.literal[segment] = _Node()
            return node
        if isinstance(segment, _DoubleStar):
            if self.star is None:
                self.star = _Node(is_star=True)
            return self.star
        if segment.match_all:
            if self.wild is None:
                self.wild = _Node()
            return self.wild
        node = self.glob_by_key.get(segment.key)
        if node is None:
            node = self.glob_by_key[segment.key] = _Node()
            self.globs.append((segment, node))
        return node

    def advance(self, name: str) -> tuple[_Node, ...]:
        """The nodes reached by reading one directory name (memoised per name)."""
        reached = self.next.get(name)
        if reached is not None:
            return reached
        found: list[_Node] = [self] if self.is_star else []
        exact = self.literal.get(name)
        if exact is not None:
            _enter(found, exact)
        if self.wild is not None:
            _enter(found, self.wild)
        for glob, node in self.globs:
            if glob.test(name):
                _enter(found, node)
        reached = self.next[name] = tuple(dict.fromkeys(found))
        return reached


def _enter(found: list[_Node], node: _Node) -> None:
    # Reaching a node also reaches its `**` child, which may match zero directories.
    found.append(node)
    if node.star is not None:
        found.append(node.star)


class _State:
    """A set of trie nodes active in some directory; directories share equal states.

    For file names, the nodes' file rules are merged once per state: the literal names to
    look up, the best rule any name gets (from lone ``*`` segments), and every wildcard test
    sorted by rule, last rule first, so the first test that passes is the answer.
    """

    __slots__ = ("dirs", "file_globs", "file_literals", "file_wild", "files", "nodes")

    def __init__(self, nodes: tuple[_Node, ...]) -> None:
        self.nodes = nodes
        self.files: dict[str, int] = {}
        self.dirs: dict[str, tuple[_State, int]] = {}
        self.file_literals = tuple(node.literal for node in nodes if node.literal)
        self.file_wild = max(
            (node.wild.file_best for node in nodes if node.wild is not None), default=-1
        )
        self.file_globs = tuple(
            sorted(
                ((child.file_best, test) for node in nodes for test, child in node.file_globs),
                key=lambda pair: -pair[0],
            )
        )

    def file_best(self, name: str) -> int:
        best = self.file_wild
        for literal in self.file_literals:
            child = literal.get(name)
            if child is not None and child.file_best > best:
                best = child.file_best
        for rule, test in self.file_globs:
            if rule <= best:
                break
            if test(name):
                best = rule
                break
        self.files[name] = best
        return best


class GithubMatcher:
    """Finds, for a file path, the index of the last pattern that matches it (or -1).

    Compiled once per owners file; answers are memoised per directory and per file name, so
    the memory held grows with the number of distinct directories looked up, not with files.
    """

    def __init__(self, patterns: Iterable[str | CompiledPattern]) -> None:
        root = _Node()
        for index, pattern in enumerate(patterns):
            compiled = pattern if isinstance(pattern, CompiledPattern) else compile_pattern(pattern)
            node = root
            for segment in compiled.segments:
                node = node.child(segment)
            if not compiled.file_only:
                node.dir_rules.append(index)
            if not compiled.dir_only:
                node.file_rules.append(index)
        _finish(root)
        self._root = root
        self._states: dict[frozenset[int], _State] = {}
        start: list[_Node] = []
        _enter(start, root)
        self._root_nodes = tuple(start)
        self._dirs: dict[str, tuple[_State, int]] = {"": (self._state(self._root_nodes), -1)}

    def decide(self, path: str) -> int:
        """Index of the deciding pattern for ``path``; -1 when no pattern matches."""
        cut = path.rfind("/") + 1
        entry = self._dirs.get(path[:cut])
        if entry is None:
            entry = self._enter_dir(path[:cut], path)
        state, best = entry
        name = path[cut:]
        found = state.files.get(name)
        if found is None:
            found = self._file_best(state, name, path)
        return found if found > best else best

    def matching(self, path: str) -> tuple[int, ...]:
        """Every pattern that matches ``path``, in file order (slower; for lint and explain)."""
        parts = path.split("/")
        _check_components(parts, path)
        found: set[int] = set()
        nodes = self._root_nodes
        for name in parts[:-1]:
            reached: dict[_Node, None] = {}
            for node in nodes:
                for nxt in node.advance(name):
                    reached[nxt] = None
                    found.update(nxt.dir_rules)
            nodes = tuple(reached)
        for node in nodes:
            for nxt in node.advance(parts[-1]):
                found.update(nxt.file_rules)
        return tuple(sorted(found))

    def _state(self, nodes: tuple[_Node, ...]) -> _State:
        key = frozenset(id(node) for node in nodes)
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = _State(nodes)
        return state

    def _enter_dir(self, directory: str, path: str) -> tuple[_State, int]:
        # `directory` ends with "/": climb to the nearest memoised ancestor, then walk down,
        # memoising every directory on the way.
        pending: list[tuple[str, str]] = []
        entry = None
        while entry is None:
            cut = directory.rfind("/", 0, len(directory) - 1) + 1
            name = directory[cut:-1]
            if not name:
                raise ValueError(
                    f"bad path {path!r}: paths are relative to the repository root, with no"
                    " empty, leading or doubled '/'"
                )
            pending.append((directory, name))
            directory = directory[:cut]
            entry = self._dirs.get(directory)
        for directory, name in reversed(pending):
            entry = self._dirs[directory] = self._step(entry, name)
        return entry

    def _step(self, entry: tuple[_State, int], name: str) -> tuple[_State, int]:
        state, best = entry
        step = state.dirs.get(name)
        if step is None:
            reached: dict[_Node, None] = {}
            step_best = -1
            for node in state.nodes:
                for nxt in node.advance(name):
                    if nxt.dir_best > step_best:
                        step_best = nxt.dir_best
                    # A node with no way further only mattered for this directory's rules.
                    if not nxt.leaf:
                        reached[nxt] = None
            step = state.dirs[name] = (self._state(tuple(reached)), step_best)
        next_state, step_best = step
        return next_state, best if best > step_best else step_best

    def _file_best(self, state: _State, name: str, path: str) -> int:
        if not name:
            raise ValueError(f"bad path {path!r}: expected a file path, not a directory or ''")
        return state.file_best(name)


def _check_components(parts: list[str], path: str) -> None:
    if not all(parts):
        raise ValueError(
            f"bad path {path!r}: paths are relative to the repository root, with no empty,"
            " leading, trailing or doubled '/'"
        )


def _finish(root: _Node) -> None:
    """Precomputes each node's best rules; the trie is a tree, so each node is seen once."""
    stack = [root]
    while stack:
        node = stack.pop()
        # Rules were added in file order, so the last one is the best.
        node.dir_best = node.dir_rules[-1] if node.dir_rules else -1
        node.file_best = node.file_rules[-1] if node.file_rules else -1
        node.leaf = not (node.literal or node.globs or node.wild or node.star or node.is_star)
        if node.globs:
            node.file_globs = tuple(
                sorted(
                    ((glob.test, child) for glob, child in node.globs if child.file_rules),
                    key=lambda pair: -pair[1].file_rules[-1],
                )
            )
            stack.extend(child for _, child in node.globs)
        stack.extend(node.literal.values())
        if node.wild is not None:
            stack.append(node.wild)
        if node.star is not None:
            stack.append(node.star)
