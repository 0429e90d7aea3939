"""`bot reviewers`, `bot owners`, `bot codeowners lint`: the same rules on a local checkout.

A maintainer sees whom the bot would request, and why, without a server or a token.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bot.clients.git import GitError, diff, run_git
from bot.config import CONFIG_PATH, RepoConfig
from bot.kit.checkout import UsageError, local_config, repo_url
from codeowners import OwnersFile, OwnersFileTooLarge, lint
from handlers.reviewers.plan import ChangedFile, plan_reviewers, settings_from


def register_cli(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds this feature's commands to `bot`'s subparsers."""
    owners = sub.add_parser(
        "owners",
        help="each path's owners and the deciding rule",
        description="each path's owners and the deciding rule",
    )
    owners.set_defaults(func=cmd_owners)
    owners.add_argument("paths", nargs="+", metavar="PATH")
    owners.add_argument("--file", help="owners file (default: the configured review-owners file)")
    owners.add_argument("--json", action="store_true")

    reviewers = sub.add_parser(
        "reviewers",
        help="the reviewers the bot would request",
        description="the reviewers the bot would request",
    )
    reviewers.set_defaults(func=cmd_reviewers)
    reviewers.add_argument("--base", default="main")
    reviewers.add_argument("--head", default="HEAD")
    reviewers.add_argument("--author", help="PR author login (default: the head commit's author)")
    reviewers.add_argument("--file", help="owners file (default: the configured one at --base)")
    reviewers.add_argument("--config", help=f"default: ./{CONFIG_PATH} when present")
    reviewers.add_argument(
        "--repo-owner", default="", help="org whose teams can be requested (default: origin's)"
    )
    reviewers.add_argument("--json", action="store_true")

    codeowners = sub.add_parser("codeowners", help="owners-file tools")
    codeowners_sub = codeowners.add_subparsers(dest="codeowners_command", required=True)
    lint_cmd = codeowners_sub.add_parser("lint", help="check the owners file against the tree")
    lint_cmd.add_argument("file", nargs="?")
    lint_cmd.set_defaults(func=cmd_codeowners_lint)


def owners_file(path: str | None, config: RepoConfig, *, revision: str | None = None) -> OwnersFile:
    """The owners file from a path, else the configured one at `revision` or on disk."""
    semantics = config.reviewers.semantics
    configured = path or config.reviewers.owners_file
    try:
        if path is not None:
            return OwnersFile.read(path, semantics=semantics)
        if revision is not None:
            try:
                text = run_git(["show", f"{revision}:{configured}"])
            except GitError:
                raise UsageError(f"{configured} does not exist at {revision}") from None
            return OwnersFile.parse(text, semantics=semantics)
        if not Path(configured).exists():
            raise UsageError(f"owners file not found: {configured} (give --file)")
        return OwnersFile.read(configured, semantics=semantics)
    except FileNotFoundError:
        raise UsageError(f"owners file not found: {path}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{configured} is not UTF-8 text") from None
    except OwnersFileTooLarge as exc:
        raise UsageError(str(exc)) from None


def cmd_owners(args: argparse.Namespace) -> int:
    owners = owners_file(args.file, local_config(None))
    answers = []
    for path in args.paths:
        rule = owners.explain(path.removeprefix("./"))
        answers.append(
            {
                "path": path,
                "owners": list(rule.owners) if rule else [],
                "rule": None
                if rule is None
                else {"line": rule.line, "pattern": rule.pattern, "owners": list(rule.owners)},
            }
        )
    if args.json:
        print(json.dumps(answers, indent=2))
        return 0
    for answer in answers:
        rule = answer["rule"]
        if rule is None:
            print(f"{answer['path']}: no owner (no rule matches)")
        elif not rule["owners"]:
            print(f"{answer['path']}: explicitly unowned (line {rule['line']}: {rule['pattern']})")
        else:
            who = " ".join(rule["owners"])
            print(f"{answer['path']}: {who}  (line {rule['line']}: {rule['pattern']})")
    return 0


def cmd_reviewers(args: argparse.Namespace) -> int:
    config = local_config(args.config)
    owners = owners_file(args.file, config, revision=None if args.file else args.base)
    try:
        changes = diff(args.base, args.head)
        author = args.author or run_git(["log", "-1", "--format=%an", args.head]).strip()
    except GitError as exc:
        raise UsageError(str(exc)) from None
    files = [ChangedFile(c.path, c.changes) for c in changes]
    plan = plan_reviewers(
        files,
        author,
        [],
        [],
        owners,
        settings_from(config.reviewers),
        repo_owner=args.repo_owner or repo_url().rstrip("/").split("/")[-2:][0] or "local",
    )
    if args.json:
        print(
            json.dumps(
                {
                    "author": author,
                    "files": len(files),
                    "changed_lines": plan.total_lines,
                    "skip_reason": plan.skip_reason,
                    "request": [
                        {"owner": c.owner, "team": c.is_team, "reason": c.reason}
                        for c in plan.next_batch()
                    ],
                    "fallbacks": [c.owner for c in plan.candidates[plan.count :]],
                    "passed_over": [
                        {"owner": p.owner, "reason": p.reason} for p in plan.passed_over
                    ],
                },
                indent=2,
            )
        )
        return 0
    print(f"{len(files)} changed files by {author}, {args.base}...{args.head}")
    print(plan.summary())
    return 0


def cmd_codeowners_lint(args: argparse.Namespace) -> int:
    owners = owners_file(args.file, local_config(None))
    try:
        paths = run_git(["ls-files", "-z"]).split("\0")
    except GitError as exc:
        raise UsageError(f"cannot list the working tree: {exc}") from None
    findings = lint(owners, [p for p in paths if p])
    for finding in findings:
        print(finding)
    errors = sum(1 for f in findings if f.severity == "error")
    print(f"{errors} error(s), {len(findings) - errors} warning(s)")
    return 1 if errors else 0
