"""`bot backup` and `bot restore`: the store's copies, as commands an operator runs."""

from __future__ import annotations

import argparse

from bot.config import Settings
from bot.kit.checkout import UsageError
from bot.store.backup import BackupError, backup, restore
from bot.store.engine import MIGRATIONS


def cmd_backup(args: argparse.Namespace) -> int:
    database = Settings.from_environment().database
    try:
        held = backup(database, args.path, force=args.force)
    except BackupError as exc:
        raise UsageError(str(exc)) from None
    print(f"backed up {database} to {args.path}: {held.describe()}; integrity ok")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    database = Settings.from_environment().database
    try:
        held = restore(database, args.path)
    except BackupError as exc:
        raise UsageError(str(exc)) from None
    print(f"restored {args.path} to {database}: {held.describe()}")
    if held.schema_version < len(MIGRATIONS):
        print(f"the schema moves to version {len(MIGRATIONS)} at the next start")
    if held.kept is not None:
        print(f"the database it replaced is kept as {held.kept}")
    return 0


def register_cli(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds `bot backup` and `bot restore` to `bot`'s subparsers."""
    text = "copy the live database to PATH, safely while `bot serve` runs"
    backup_cmd = sub.add_parser("backup", help=text, description=text)
    backup_cmd.add_argument("path", metavar="PATH")
    backup_cmd.add_argument("--force", action="store_true", help="replace PATH if it exists")
    backup_cmd.set_defaults(func=cmd_backup)
    text = "put the backup at PATH back as the database (with `bot serve` stopped)"
    restore_cmd = sub.add_parser("restore", help=text, description=text)
    restore_cmd.add_argument("path", metavar="PATH")
    restore_cmd.set_defaults(func=cmd_restore)
