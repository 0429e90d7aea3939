"""A local stand-in for GitHub and Slack, used by the tests and by `make run` without credentials.

Real HTTP servers (aiohttp) over real git repositories on disk: the bot talks to them through
its real gidgethub and slack_sdk clients, exactly as it talks to the real services.
"""

from tests.sandbox.github_server import SandboxGitHub
from tests.sandbox.gitrepo import GitRepo, SandboxGitError, UnknownRevision
from tests.sandbox.slack_server import SandboxSlack
from tests.sandbox.state import RecordedRequest, SandboxRepo
from tests.sandbox.webhooks import Sent, send_webhook, signature

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
