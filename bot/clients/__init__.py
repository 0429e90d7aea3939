"""The bot's clients of the outside world: GitHub (gidgethub, App tokens, the pinned API version),
Slack, git, a repository's `bot.toml`, and the backoff all of them share when a server says wait."""
