"""Start a new model by copying an existing one under a new name.

    python -m model_lib.scaffold NAME --like gpt2 [--root DIR]

copies `model_lib/models/<like>/` and `tests/models/<like>/` to `<NAME>` folders, renaming
files, modules, `model_type` and classes (`GPT2LMHeadModel` -> `MyModelLMHeadModel` for
NAME `my_model`). The registry in `model_lib.auto` finds models by folder, so the copy is
loadable, and its tests pass, the moment this returns.

Pure text and file work: importing this module does not import torch.
"""

from __future__ import annotations

import argparse
import keyword
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

DEFAULT_ROOT = Path(__file__).resolve().parent.parent
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_CONFIG_CLASS = re.compile(r"^class (\w+)Config\(", re.MULTILINE)
_SKIPPED_PARTS = frozenset({"__pycache__", ".pytest_cache"})


class ScaffoldError(ValueError):
    """The new model cannot be created as asked; nothing was written."""


def validate_name(name: str) -> None:
    """A model name is a lowercase Python identifier not starting or ending with `_`.

    It becomes a package, module and test-folder name, and `run-slow` accepts only names
    of ASCII letters, digits and `_` that neither start nor end with `_`.
    """
    if not _NAME.match(name) or name.endswith("_"):
        raise ScaffoldError(
            f"invalid model name {name!r}: use lowercase ASCII letters, digits and '_', "
            "starting with a letter and not ending with '_'"
        )
    if keyword.iskeyword(name):
        raise ScaffoldError(f"invalid model name {name!r}: it is a Python keyword")


def camel_case(name: str) -> str:
    """`my_model` -> `MyModel`: the prefix of the new model's class names."""
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def _class_prefix(config_source: str, like: str) -> str:
    match = _CONFIG_CLASS.search(config_source)
    if match is None:
        raise ScaffoldError(f"configuration_{like}.py defines no `class <Prefix>Config(`")
    return match.group(1)


def _renamer(like: str, name: str, prefix: str) -> Callable[[str], str]:
    """Replace the model's three spellings: class prefix, upper case, lower case.

    Matches stop at letter boundaries so words that merely contain the old name stay intact,
    and the lower-case form must not be followed by a digit, so values like the "llama3"
    RoPE type, which name a published variant rather than this model, survive.
    """
    new_prefix = camel_case(name)
    rules = [
        (re.compile(rf"(?<![A-Za-z]){re.escape(prefix)}(?![a-z])"), new_prefix),
        (re.compile(rf"(?<![A-Za-z]){re.escape(like.upper())}(?![A-Za-z0-9])"), new_prefix),
        (re.compile(rf"(?<![A-Za-z]){re.escape(like)}(?![a-z0-9])"), name),
    ]

    def rename(text: str) -> str:
        for pattern, replacement in rules:
            text = pattern.sub(replacement, text)
        return text

    return rename


def _source_files(folder: Path) -> list[Path]:
    return sorted(
        path
        for path in folder.rglob("*")
        if path.is_file()
        and not _SKIPPED_PARTS & set(path.relative_to(folder).parts)
        and path.suffix != ".pyc"
    )


def scaffold(name: str, like: str, root: Path) -> list[Path]:
    """Create model `name` as a renamed copy of model `like` under repository `root`.

    Returns the created files. Everything is checked and rendered before the first file is
    written, so an error leaves the tree untouched.
    """
    validate_name(name)
    validate_name(like)
    root = Path(root)
    models_dir = root / "model_lib" / "models"
    tests_dir = root / "tests" / "models"
    source_model = models_dir / like
    config_path = source_model / f"configuration_{like}.py"
    if not config_path.is_file() or not (source_model / f"modeling_{like}.py").is_file():
        raise ScaffoldError(f"no model {like!r} to copy: {source_model} lacks its files")
    if name == like:
        raise ScaffoldError(f"the new model needs a name other than {like!r}")
    target_model = models_dir / name
    target_tests = tests_dir / name
    for target in (target_model, target_tests):
        if target.exists():
            raise ScaffoldError(f"model {name!r} already exists: {target}")

    rename = _renamer(like, name, _class_prefix(config_path.read_text(encoding="utf-8"), like))
    planned: dict[Path, str] = {}
    for source_dir, target_dir in ((source_model, target_model), (tests_dir / like, target_tests)):
        if not source_dir.is_dir():
            continue
        for source in _source_files(source_dir):
            relative = source.relative_to(source_dir)
            target = target_dir / Path(*(rename(part) for part in relative.parts))
            try:
                text = source.read_text(encoding="utf-8")
            except UnicodeDecodeError as exc:
                raise ScaffoldError(f"{source} is not UTF-8 text: {exc}") from exc
            planned[target] = rename(text)

    for target, text in planned.items():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return sorted(planned)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m model_lib.scaffold",
        description="Create a new model as a renamed copy of an existing one.",
    )
    parser.add_argument("name", help="the new model's name, e.g. my_model")
    parser.add_argument("--like", required=True, help="the model to copy, e.g. gpt2")
    parser.add_argument(
        "--root",
        type=Path,
        default=DEFAULT_ROOT,
        help="repository root holding model_lib/ and tests/ (default: this checkout)",
    )
    args = parser.parse_args(argv)
    try:
        created = scaffold(args.name, args.like, args.root)
    except ScaffoldError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path in created:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
