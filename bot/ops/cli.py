"""`bot ...`: the server, one-shot and local runs of the same handlers, and operator commands.

This module holds the bot's own commands; each feature adds its local ones (`bot reviewers`,
`bot new-models`, ...) through `bot.server.routing`. Errors a person can fix are one line and a
non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import os
import sqlite3
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bot.config import CONFIG_PATH, ConfigError, RepoConfig, Settings, default_config_toml
from bot.kit.checkout import UsageError, read_config_file
from bot.ops import doctor
from bot.ops.backup import register_cli as register_maintenance_cli
from bot.ops.setup import register_cli as register_setup_cli
from bot.server.intake import shape_problem
from bot.server.routing import register_feature_commands
from bot.store import deliveries as deliveries_db
from bot.store import outbox as outbox_db
from bot.store.engine import Store


def _settings() -> Settings:
    return Settings.from_environment()


def _setup_logging(settings: Settings) -> None:
    from bot import logs

    logs.configure(level=settings.log_level, fmt=settings.log_format, secrets=settings.secrets)


# ---------------------------------------------------------------------------- serve / run


def cmd_serve(args: argparse.Namespace) -> int:
    from bot.server import serving
    from bot.server.app import create_app

    settings = _settings()
    _setup_logging(settings)
    app = create_app(settings)
    try:
        serving.run(app, args.host, args.port, shutdown_timeout=args.shutdown_timeout)
    except OSError as exc:
        return _stopped(exc, args.host, args.port)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    settings = _settings()
    if settings.webhook_secret and settings.has_github_credentials:
        return cmd_serve(args)
    try:
        # The stand-in is not part of the installed package: it comes with a clone.
        from tests.sandbox.scenario import run_demo
    except ModuleNotFoundError as exc:
        if exc.name not in ("tests", "tests.sandbox", "tests.sandbox.scenario"):
            raise
        raise UsageError(
            "no GitHub App credentials are set (GITHUB_APP_ID, GITHUB_PRIVATE_KEY_PATH,"
            " GITHUB_WEBHOOK_SECRET), and the sandbox demo comes only with a clone of the"
            " bot's repository: set the credentials, or run `make run` in a clone"
        ) from None

    _setup_logging(settings)
    try:
        return run_demo(host=args.host, port=args.port)
    except OSError as exc:
        return _stopped(exc, args.host, args.port)


#: What binding a socket fails with. `TimeoutError` and every other `OSError` are OSErrors too,
#: and saying "cannot listen" for those sends the reader after the wrong problem.
_LISTEN_ERRNOS = frozenset({errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES, errno.EPERM})


def _stopped(exc: OSError, host: str, port: int) -> int:
    """Says in one line why serving stopped: a port that cannot be had is the caller's to fix
    (a usage error), a timeout or another failure is the run's."""
    if isinstance(exc, TimeoutError):
        what = f" ({exc})" if str(exc) else ""
        print(
            f"error: timed out{what}: a step did not finish in its time limit;"
            " the log above shows the last one that did",
            file=sys.stderr,
        )
        return 1
    if exc.errno in _LISTEN_ERRNOS:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
    return 1


# ---------------------------------------------------------------------------- handle / replay


def _load_payload(path: str) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_bytes())
    except FileNotFoundError:
        raise UsageError(f"payload file not found: {path}") from None
    except RecursionError:
        raise UsageError(f"{path} is not a webhook payload: JSON nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path} does not hold a JSON object")
    return data


def _delivery_from(event: str, payload: dict[str, Any], delivery_id: str) -> deliveries_db.Delivery:
    installation = payload.get("installation") or {}
    repository = payload.get("repository") or {}
    return deliveries_db.Delivery(
        id=delivery_id,
        event=event,
        headers={"X-GitHub-Event": event, "X-GitHub-Delivery": delivery_id},
        body=json.dumps(payload).encode(),
        action=payload.get("action") if isinstance(payload.get("action"), str) else None,
        repo=repository.get("full_name") if isinstance(repository, dict) else None,
        installation_id=installation.get("id") if isinstance(installation, dict) else None,
        received_at=time.time(),
    )


def cmd_handle(args: argparse.Namespace) -> int:
    event, path = args.event, args.payload
    if event is None and path is None:
        # Inside a GitHub Actions step: the runner describes the triggering event.
        event = os.environ.get("GITHUB_EVENT_NAME")
        path = os.environ.get("GITHUB_EVENT_PATH")
        if not event or not path:
            raise UsageError(
                "give EVENT and PAYLOAD.json, or run inside GitHub Actions"
                " (GITHUB_EVENT_NAME and GITHUB_EVENT_PATH)"
            )
    elif event is None or path is None:
        raise UsageError("give both EVENT and PAYLOAD.json")
    payload = _load_payload(path)
    if problem := shape_problem(event, payload):
        raise UsageError(f"{path} is not a {event} payload the handlers can read: {problem}")
    override = None
    if args.config:
        override = read_config_file(args.config)
    settings = _settings()
    _setup_logging(settings)
    run_id = os.environ.get("GITHUB_RUN_ID")
    delivery_id = f"actions-{run_id}" if run_id else f"local-{uuid.uuid4()}"
    delivery = _delivery_from(event, payload, delivery_id)
    return asyncio.run(_handle_once(settings, delivery, dry_run=args.dry_run, override=override))


async def _handle_once(
    settings: Settings, delivery: deliveries_db.Delivery, *, dry_run: bool, override: Any
) -> int:
    from bot.server.dispatch import dispatch
    from bot.server.runtime import Runtime

    runtime = Runtime(
        settings,
        dry_run=dry_run,
        store=Store(":memory:"),
        config_override=override,
        one_shot=True,
    )
    await runtime.start(background=False)
    try:
        if not dry_run:
            # Jobs go to GitHub Actions only; this process follows them to their end.
            await runtime.jobs.start()
        result = await dispatch(runtime.services, runtime.router, delivery)
        if not dry_run:
            followed = await runtime.jobs.drain()
            if followed:
                print(f"followed {followed} run(s) on GitHub Actions to their end", file=sys.stderr)
        writes: list[dict[str, Any]] = []
        if dry_run:
            writes = [
                {"github": {"method": w.method, "url": w.url, "body": w.body}}
                for w in runtime.services.github.dry_run_writes
            ]
            writes += [{"slack": message} for message in runtime.outbox.dry_run_messages]
        else:
            await runtime.outbox.send_due()
            pending = await runtime.store.call(
                lambda conn: outbox_db.list_outbox(conn, status="pending")
            )
            for item in pending:
                print(f"not delivered yet: {item.key}: {item.last_error}", file=sys.stderr)
        summary = {
            "delivery": delivery.id,
            "event": delivery.event,
            "action": delivery.action,
            "handlers_run": result.ran,
            "handlers_failed": sorted(result.errors),
            "dry_run": dry_run,
        }
        if writes:
            summary["would_send"] = writes
        print(json.dumps(summary, indent=2))
        for name, trace in result.errors.items():
            print(f"\n{name} failed:\n{trace}", file=sys.stderr)
        return 0 if result.ok else 1
    finally:
        await runtime.stop()


def cmd_replay(args: argparse.Namespace) -> int:
    settings = _settings()
    store = Store(settings.database)
    try:
        found = store.call_sync(lambda conn: deliveries_db.get_delivery(conn, args.delivery_id))
        if found is None:
            raise UsageError(f"no stored delivery {args.delivery_id!r} in {settings.database}")
        outcome = store.call_sync(
            lambda conn: deliveries_db.replay_delivery(conn, args.delivery_id)
        )
    finally:
        store.close()
    if outcome == "unfinished":
        raise UsageError(
            f"delivery {args.delivery_id} is {found.status}, not finished: a worker may hold it,"
            " so it is not queued a second time"
        )
    if outcome == "pruned":
        raise UsageError(
            f"delivery {args.delivery_id}'s payload was pruned by retention"
            " (BOT_RETENTION_DAYS): there is nothing left to replay"
        )
    if outcome == "missing":
        raise UsageError(f"no stored delivery {args.delivery_id!r} in {settings.database}")
    print(f"delivery {args.delivery_id} queued again ({found.event}.{found.action or '-'});")
    print("the running server processes it within a few seconds.")
    return 0


# ---------------------------------------------------------------------------- inspection


def _when(timestamp: float | None) -> str:
    if not timestamp:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def cmd_deliveries(args: argparse.Namespace) -> int:
    settings = _settings()
    store = Store(settings.database)
    try:
        status = "failed" if args.failed else args.status
        rows = store.call_sync(
            lambda conn: deliveries_db.list_deliveries(conn, status=status, limit=args.limit)
        )
        total = store.call_sync(lambda conn: deliveries_db.count_deliveries(conn, status=status))
    finally:
        store.close()
    if args.json:
        print(
            json.dumps(
                {
                    "total": total,
                    "shown": len(rows),
                    # A script learns it saw only part of the list, and how to see the rest.
                    "truncated": total > len(rows),
                    "deliveries": [
                        {
                            "id": d.id,
                            "event": d.event,
                            "action": d.action,
                            "repo": d.repo,
                            "status": d.status,
                            "attempts": d.attempts,
                            "received_at": d.received_at,
                            "error": d.error,
                        }
                        for d in rows
                    ],
                },
                indent=2,
            )
        )
        return 0
    if not rows:
        print("no deliveries" + (" with that status" if status else ""))
        return 0
    for d in rows:
        kind = f"{d.event}.{d.action}" if d.action else d.event
        print(
            f"{_when(d.received_at)}  {d.status:<10} {d.attempts:>2}x  {kind:<32}"
            f" {d.repo or '-':<30} {d.id}"
        )
        if args.failed and d.error:
            print("    " + d.error.rstrip().replace("\n", "\n    "))
    if total > len(rows):
        print(f"... {total - len(rows)} more (newest {len(rows)} shown; --limit N shows more)")
    return 0


def cmd_outbox(args: argparse.Namespace) -> int:
    settings = _settings()
    store = Store(settings.database)
    try:
        if args.retry is not None:
            if not store.call_sync(lambda conn: outbox_db.retry_outbox(conn, args.retry)):
                raise UsageError(f"no undelivered outbox item {args.retry}")
            print(f"outbox item {args.retry} queued again")
            return 0
        status = None if args.all else "pending"
        items = store.call_sync(lambda conn: outbox_db.list_outbox(conn, status=status, limit=200))
        if not args.all:
            items += store.call_sync(
                lambda conn: outbox_db.list_outbox(conn, status="failed", limit=200)
            )
    finally:
        store.close()
    if not items:
        print("outbox is empty: every message was delivered")
        return 0
    for item in items:
        due = "" if item.status != "pending" else f" next try {_when(item.next_attempt_at)}"
        print(f"#{item.id} {item.status:<9} {item.attempts}x {item.kind:<6} {item.key}{due}")
        if item.last_error:
            print(f"    last error: {item.last_error}")
    return 0


# ---------------------------------------------------------------------------- config


def cmd_config_check(args: argparse.Namespace) -> int:
    path = args.file or CONFIG_PATH
    if args.file is None and not Path(path).exists():
        print(f"{path} does not exist: the defaults apply (see `bot config show`)")
        return 0
    config = read_config_file(path)
    print(f"{path}: ok")
    if args.verbose:
        print(json.dumps(_as_plain(config), indent=2))
    return 0


def _as_plain(value: Any) -> Any:
    import dataclasses

    if isinstance(value, RepoConfig):
        return {name: _as_plain(section) for name, section in value.sections.items()}
    if dataclasses.is_dataclass(value):
        return {f.name: _as_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple):
        return [_as_plain(item) for item in value]
    return value


def cmd_config_show(_: argparse.Namespace) -> int:
    print(default_config_toml(), end="")
    return 0


# ---------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bot", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable[[argparse.Namespace], int], text: str) -> Any:
        command = sub.add_parser(name, help=text, description=text)
        command.set_defaults(func=func)
        return command

    # A deployed server listens on every interface (a platform routes $PORT to it); the local
    # sandbox demo stays on loopback.
    for name, func, text, host in (
        ("serve", cmd_serve, "run the webhook server", "0.0.0.0"),  # noqa: S104
        ("run", cmd_run, "serve for real when configured, else the sandbox demo", "127.0.0.1"),
    ):
        command = add(name, func, text)
        command.add_argument("--host", default=os.environ.get("HOST", host))
        command.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
        command.add_argument("--shutdown-timeout", type=float, default=30.0)

    handle = add("handle", cmd_handle, "run the handlers once on one event payload")
    handle.add_argument("event", nargs="?", help="the event name, e.g. pull_request")
    handle.add_argument("payload", nargs="?", help="a webhook payload (JSON file)")
    handle.add_argument("--dry-run", action="store_true", help="read for real, print writes")
    handle.add_argument("--config", help=f"use this file instead of the repo's {CONFIG_PATH}")

    replay = add("replay", cmd_replay, "queue a stored delivery again")
    replay.add_argument("delivery_id")

    deliveries = add("deliveries", cmd_deliveries, "list stored deliveries")
    deliveries.add_argument("--failed", action="store_true", help="failed ones, with errors")
    deliveries.add_argument("--status", choices=deliveries_db.DELIVERY_STATES)
    deliveries.add_argument(
        "--limit", type=int, default=50, help="newest N deliveries (default 50); says if more"
    )
    deliveries.add_argument("--json", action="store_true")

    outbox = add("outbox", cmd_outbox, "show messages not delivered yet")
    outbox.add_argument("--all", action="store_true", help="include delivered items")
    outbox.add_argument("--retry", type=int, metavar="ID", help="queue a failed item again")

    register_feature_commands(sub)
    register_setup_cli(sub)
    register_maintenance_cli(sub)
    doctor.register_cli(sub)

    config = sub.add_parser("config", help="check or show the per-repo configuration")
    config_sub = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    check = config_sub.add_parser("check", help=f"validate a {CONFIG_PATH}")
    check.add_argument("file", nargs="?")
    check.add_argument("-v", "--verbose", action="store_true", help="print the effective config")
    check.set_defaults(func=cmd_config_check)
    show = config_sub.add_parser("show", help="print the defaults as TOML")
    show.set_defaults(func=cmd_config_show)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (UsageError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except UnicodeDecodeError as exc:
        print(f"error: a file is not UTF-8 text: {exc.reason} at byte {exc.start}", file=sys.stderr)
        return 2
    except (sqlite3.Error, OSError) as exc:
        # An unwritable database folder, a full disk, a corrupt file: say so in one line.
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
