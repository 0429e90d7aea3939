"""The bot's features, one package each, and the one list of them.

Each `handlers/<feature>/` exports `FEATURE` (`bot.kit.feature.Feature`): its router, help,
`bot.toml` section, the App permissions and events it needs, its commands, jobs and runners.
Everything the core composes (routing, `/help`, `bot` commands, `RepoConfig`, `bot doctor`'s
checks, `app.yml`'s test) is derived from `FEATURES`, so adding a feature is a folder and a line.
"""

from __future__ import annotations

import handlers.actions_follow
import handlers.benchmarks
import handlers.help
import handlers.new_model
import handlers.reviewers
import handlers.scheduled_ci
import handlers.slow_ci
import handlers.style
from bot.kit.feature import Feature

#: In this order `/help` lists them, `bot --help` shows their commands, `bot config show` their
#: sections, and `bot doctor` the permissions and events they need.
FEATURES: tuple[Feature, ...] = (
    handlers.help.FEATURE,
    handlers.reviewers.FEATURE,
    handlers.new_model.FEATURE,
    handlers.slow_ci.FEATURE,
    handlers.scheduled_ci.FEATURE,
    handlers.benchmarks.FEATURE,
    handlers.actions_follow.FEATURE,
    handlers.style.FEATURE,
)
