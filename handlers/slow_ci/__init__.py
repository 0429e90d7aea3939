"""`run-slow`: maintainer-approved slow test runs, pinned to the approved commit."""

from handlers.slow_ci.cli import register_cli
from handlers.slow_ci.handler import HELP, register_jobs, router

__all__ = ["HELP", "register_cli", "register_jobs", "router"]
