"""`@bot /style`: ruff's fixes committed and pushed to the pull request, never running its code."""

from handlers.style.cli import register_cli
from handlers.style.handler import HELP, register_jobs, router
from handlers.style.runner import runners

__all__ = ["HELP", "register_cli", "register_jobs", "router", "runners"]
