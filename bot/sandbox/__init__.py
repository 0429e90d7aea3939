"""A local stand-in for GitHub and Slack, used by the tests and by `make run` without credentials.

Real HTTP servers (aiohttp) over real git repositories on disk: the bot talks to them through
its real gidgethub and slack_sdk clients, exactly as it talks to the real services.
"""

from bot.sandbox.fake_github import RecordedRequest, SandboxGitHub
from bot.sandbox.fake_slack import SandboxSlack
from bot.sandbox.webhooks import Sent, send_webhook, signature

__all__ = [
    "RecordedRequest",
    "SandboxGitHub",
    "SandboxSlack",
    "Sent",
    "send_webhook",
    "signature",
]
