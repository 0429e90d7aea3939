"""`bot new-models` and `bot new-model`: the alert's rules on a local range, and a scaffold.

`new-models` shows the messages a merge would send (and sends them with `--notify`), without a
server or a GitHub token.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from bot.clients.git import GitError, added_by, diff, rev_parse
from bot.clients.github import new_session
from bot.clients.slack import SlackDeliveryError, make_sender
from bot.config import CONFIG_PATH, Settings
from bot.kit.checkout import UsageError, local_config, repo_url
from handlers.new_model.plan import FileChange, build_message, plan_new_models


def register_cli(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds this feature's commands to `bot`'s subparsers."""
    text = "the models a local git range adds"
    new_models = sub.add_parser("new-models", help=text, description=text)
    new_models.set_defaults(func=cmd_new_models)
    new_models.add_argument("--base", default="HEAD~1")
    new_models.add_argument("--head", default="HEAD")
    new_models.add_argument("--config", help=f"default: ./{CONFIG_PATH} when present")
    new_models.add_argument("--repo-url", help="for links (default: the origin remote)")
    new_models.add_argument("--notify", action="store_true", help="send the Slack messages")

    text = "scaffold a model and its tests from another"
    new_model = sub.add_parser("new-model", help=text, description=text)
    new_model.set_defaults(func=cmd_new_model)
    new_model.add_argument("name", help="the new model's name, e.g. my_model")
    new_model.add_argument("--like", required=True, help="the model to copy, e.g. gpt2")
    new_model.add_argument("--root", default=".", help="repository root (default: here)")


def cmd_new_models(args: argparse.Namespace) -> int:
    config = local_config(args.config).new_model
    try:
        base, head = rev_parse(args.base), rev_parse(args.head)
        changes = [
            FileChange(c.path, c.status, c.previous_path)
            for c in diff(base, head, merge_base=False)
        ]
        plan = plan_new_models(changes, config, head=head)
        added_in = {m.path: added_by(m.path, base, head) or head for m in plan.added}
    except GitError as exc:
        raise UsageError(str(exc)) from None
    plan = plan_new_models(changes, config, added_in=added_in, head=head)
    messages = [
        build_message(
            model=model,
            repo_url=args.repo_url or repo_url(),
            channel=config.channel,
            mention=config.mention,
            pull=None,
        )
        for model in plan.added
    ]
    report = {
        "base": base,
        "head": head,
        "new_models": [m.name for m in plan.added],
        "renamed": [{"from": r.old, "to": r.new} for r in plan.renamed],
        "messages": messages,
    }
    print(json.dumps(report, indent=2))
    if not args.notify or not messages:
        return 0
    return asyncio.run(_notify(messages))


async def _notify(messages: list[dict[str, Any]]) -> int:
    settings = Settings.from_env()
    async with new_session() as session:
        sender = make_sender(settings, session)
        failed = 0
        for message in messages:
            try:
                await sender.send(message)
                print(f"sent to Slack via {sender.name}: {message['text']}", file=sys.stderr)
            except SlackDeliveryError as exc:
                failed += 1
                print(f"error: not sent: {exc}", file=sys.stderr)
    return 1 if failed else 0


def cmd_new_model(args: argparse.Namespace) -> int:
    # The scaffold belongs to the model library, which the bot's code never imports: it runs
    # as its own process, with an explicit argv and nothing from this environment but PATH.
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "model_lib.scaffold",
            args.name,
            "--like",
            args.like,
            "--root",
            str(Path(args.root).resolve()),
        ],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        message = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"
        raise UsageError(message.removeprefix("error: "))
    created = done.stdout.split()
    for path in created:
        print(path)
    print(f"created model {args.name!r} like {args.like!r}: {len(created)} files", file=sys.stderr)
    return 0
