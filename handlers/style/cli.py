"""`bot style`: the `/style` fix on the local checkout, so a contributor gets the bot's answer
before pushing.

The same pieces as the server's job: the files changed since the merge-base with `--base`
(committed or not, deleted ones left out, the configured paths), the ruff configuration of that
merge-base (not the working tree's), and `fix_files` with the bot's ruff. Nothing is committed
unless `--commit`.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from bot.clients.git import GIT_STATUS, GitError, git_env, run_git
from bot.config import CONFIG_PATH
from bot.jobs.runners.confine import Confinement
from bot.kit.checkout import UsageError, local_config
from handlers.style.plan import (
    COMMIT_MESSAGE,
    CONFIG_FILES,
    ConfigProblem,
    StyleResult,
    choose_files,
    ruff_settings,
    summary,
)
from handlers.style.runner import fix_files, write_config


def register_cli(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds `bot style` to `bot`'s subparsers."""
    text = "ruff's fixes for this checkout's changed Python files, with the base's ruff config"
    style = sub.add_parser("style", help=text, description=text)
    style.set_defaults(func=cmd_style)
    style.add_argument("--base", default="main", help="compare with its merge-base (main)")
    style.add_argument("--commit", action="store_true", help=f"commit as {COMMIT_MESSAGE!r}")
    style.add_argument("--config", help=f"default: ./{CONFIG_PATH} when present")


def changed_files(merge_base: str, root: str) -> list[dict[str, str]]:
    """Files changed from the merge-base to the working tree, in the PR files API's terms."""
    raw = run_git(["diff", "--name-status", "-M", "-z", merge_base, "--"], root).split("\0")
    out: list[dict[str, str]] = []
    i = 0
    while i < len(raw) - 1:
        code = raw[i][:1]
        step = 3 if code in ("R", "C") else 2
        out.append({"filename": raw[i + step - 1], "status": GIT_STATUS.get(code, "modified")})
        i += step
    return out


def base_settings(merge_base: str, root: str) -> dict[str, object]:
    found = {}
    for name in CONFIG_FILES:
        try:
            found[name] = run_git(["cat-file", "blob", f"{merge_base}:{name}"], root)
        except GitError:
            continue
    return ruff_settings(found)


#: On a maintainer's own checkout ruff runs as they do (it may write their files); it is the
#: executable of the bot's environment, so nothing in the checkout is imported or run.
YOUR_CHECKOUT = Confinement("unconfined", reason="your own checkout")


def cmd_style(args: argparse.Namespace) -> int:

    config = local_config(args.config).style
    try:
        root = run_git(["rev-parse", "--show-toplevel"]).strip()
        merge_base = run_git(["merge-base", args.base, "HEAD"], root).strip()
        choice = choose_files(changed_files(merge_base, root), config.paths, config.max_files)
        settings = base_settings(merge_base, root)
    except GitError as exc:
        raise UsageError(str(exc)) from None
    except ConfigProblem as exc:
        raise UsageError(str(exc)) from None
    if not choice.files:
        print("Nothing to fix: no changed Python files.")
        return 0
    with tempfile.TemporaryDirectory(prefix="bot-style-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        ruff_config = write_config(settings, Path(tmp))
        fix = asyncio.run(
            fix_files(
                Path(root),
                choice.files,
                ruff_config,
                home,
                git_env=git_env(home),
                confinement=YOUR_CHECKOUT,
            )
        )
    outcome = "applied" if fix.files_fixed else "nothing"
    sha = None
    if fix.files_fixed and args.commit:
        run_git(["add", "--", *fix.files_fixed], root)
        # git runs without the user's configuration (`localgit`), so the commit is by the
        # configured bot identity, as on the server.
        identity = [
            "-c",
            f"user.name={config.commit_name}",
            "-c",
            f"user.email={config.commit_email}",
        ]
        run_git([*identity, "commit", "--quiet", "--no-verify", "-m", COMMIT_MESSAGE, "--",
                 *fix.files_fixed], root)  # fmt: skip
        sha = run_git(["rev-parse", "HEAD"], root).strip()
        outcome = "pushed"
    result = StyleResult(
        outcome,  # type: ignore[arg-type]
        files_fixed=fix.files_fixed,
        fixes=fix.fixes,
        reformatted=fix.reformatted,
        commit_sha=sha,
        remaining=fix.remaining,
        remaining_total=fix.remaining_total,
        skipped=choice.skipped + fix.skipped,
    )
    text = summary(result)
    if outcome == "pushed":
        text = text.replace("Style fixes have been applied", "Style fixes were committed")
    print(text)
    return 1 if fix.remaining_total else 0
