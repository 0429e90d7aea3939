"""New-model alerts: a Slack message when a merge adds a model to the library."""

from handlers.new_model.cli import register_cli
from handlers.new_model.handler import HELP, router

__all__ = ["HELP", "register_cli", "router"]
