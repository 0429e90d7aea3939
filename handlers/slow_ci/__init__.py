"""`run-slow`: maintainer-approved slow test runs, pinned to the approved commit."""

from bot.kit.feature import EventNeed, Feature, PermissionNeed
from handlers.slow_ci.cli import register_cli
from handlers.slow_ci.config import SlowCiConfig
from handlers.slow_ci.handler import HELP, KIND, register_jobs, router
from handlers.slow_ci.verify import CHECK_KIND

FEATURE = Feature(
    name="slow_ci",
    title="slow tests",
    router=router,
    help=HELP,
    config=SlowCiConfig,
    permissions=(
        PermissionNeed("metadata", "read", "who may ask (the permission API)"),
        PermissionNeed("contents", "read", "the checkout"),
        PermissionNeed("pull_requests", "read", "the pull request's files and head"),
        PermissionNeed("issues", "write", "the result comment"),
        PermissionNeed("statuses", "write", "the pytest/custom-tests status"),
        PermissionNeed("checks", "write", "the check run"),
    ),
    events=(
        EventNeed("pull_request", "the run-slow label and reminder"),
        EventNeed("issue_comment", "run-slow comments"),
        EventNeed("check_run", "the Re-run failed button"),
    ),
    cli=register_cli,
    jobs=register_jobs,
    job_kinds=(KIND, CHECK_KIND),
)

__all__ = ["FEATURE"]
