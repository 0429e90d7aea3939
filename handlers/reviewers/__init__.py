"""Reviewer requests: the owners of the changed lines are asked to review a pull request."""

from handlers.reviewers.cli import register_cli
from handlers.reviewers.handler import HELP, router

__all__ = ["HELP", "register_cli", "router"]
