"""A local stand-in for GitHub and Slack, used by the tests and by `make run` without credentials.

Real HTTP servers (aiohttp) over real git repositories on disk: the bot talks to them through
its real gidgethub and slack_sdk clients, exactly as it talks to the real services.
"""

from bot.sandbox.github import SandboxGitHub
from bot.sandbox.gitrepo import GitRepo, SandboxGitError, UnknownRevision
from bot.sandbox.slack import SandboxSlack
from bot.sandbox.state import RecordedRequest, SandboxRepo
from bot.sandbox.webhooks import Sent, send_webhook, signature

__all__ = [
    "GitRepo",
    "RecordedRequest",
    "SandboxGitError",
    "SandboxGitHub",
    "SandboxRepo",
    "SandboxSlack",
    "Sent",
    "UnknownRevision",
    "send_webhook",
    "signature",
]
