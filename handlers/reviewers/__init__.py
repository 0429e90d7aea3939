"""Reviewer requests: the owners of the changed lines are asked to review a pull request."""

from bot.kit.feature import EventNeed, Feature, PermissionNeed
from handlers.reviewers.cli import register_cli
from handlers.reviewers.config import ReviewersConfig
from handlers.reviewers.handler import HELP, router

FEATURE = Feature(
    name="reviewers",
    title="reviewer requests",
    router=router,
    help=HELP,
    config=ReviewersConfig,
    permissions=(
        PermissionNeed("contents", "read", "the review-owners file"),
        PermissionNeed("pull_requests", "write", "list files and reviews, request reviewers"),
    ),
    events=(EventNeed("pull_request", "opened / ready_for_review"),),
    cli=register_cli,
)

__all__ = ["FEATURE"]
