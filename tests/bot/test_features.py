"""The feature contract: every package under `handlers/` is one `Feature` in the one list, and a
feature the core has never heard of is read, shown, routed, helped and checked by doctor from its
`Feature` alone."""

from __future__ import annotations

import argparse
import copy
import dataclasses
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from gidgethub.routing import Router
from gidgethub.sansio import Event

from bot.config import (
    ConfigError,
    RepoConfig,
    config_sections,
    default_config_toml,
    parse_repo_config,
)
from bot.kit.feature import EventNeed, Feature, PermissionNeed
from bot.kit.help import Help
from bot.ops import doctor
from bot.server import routing
from handlers import FEATURES
from handlers.slow_ci.config import SlowCiConfig

ROOT = Path(__file__).resolve().parents[2]
#: The bot's `bot.toml` sections, in the features' order.
SECTIONS = ["reviewers", "new_model", "slow_ci", "scheduled_ci", "benchmarks", "style"]


# --------------------------------------------------------------------------- the one list


def test_every_feature_package_exports_its_feature_and_is_in_the_list():
    packages = sorted(
        path.name
        for path in (ROOT / "handlers").iterdir()
        if path.is_dir() and path.name != "__pycache__"
    )
    for name in packages:
        feature = importlib.import_module(f"handlers.{name}").FEATURE
        assert isinstance(feature, Feature), name
        assert feature.name == name  # its id is its folder (and its bot.toml section)
        assert feature in FEATURES, name
    assert sorted(f.name for f in FEATURES) == packages


def test_following_actions_runs_is_a_feature_with_help():
    (actions,) = [f for f in FEATURES if f.name == "actions_follow"]
    assert actions.title == "slow tests on GitHub Actions"
    assert actions.help in routing.all_help()
    assert {e.event for e in actions.events} == {"workflow_run", "workflow_job"}
    assert [(p.permission, p.level) for p in actions.permissions] == [("actions", "write")]


def test_the_bots_sections_are_its_features_configs_in_order():
    assert list(config_sections()) == SECTIONS
    headers = [line for line in default_config_toml().splitlines() if line.startswith("[")]
    assert headers == ["[reviewers]", "[new_model]", "[slow_ci]", "[benchmarks]", "[style]"]


# --------------------------------------------------------------------------- a new feature


@dataclass(frozen=True)
class GreeterConfig:
    enabled: bool = False
    greeting: str = "hello"

    def validate(self, source: str, prefix: str) -> None:
        if not self.greeting.strip():
            raise ConfigError(f"{source}: '{prefix}greeting' must not be empty")


greeter_router = Router()
greeted: list[str] = []


@greeter_router.register("discussion", action="created")
async def on_discussion(event: Event, *_: Any, **__: Any) -> None:
    greeted.append(event.delivery_id)


def _register_cli(sub: Any) -> None:
    sub.add_parser("greet", help="say hello")


GREETER = Feature(
    name="greeter",
    title="greetings",
    router=greeter_router,
    help=Help(name="greetings", summary="Says hello.", who="automatic"),
    config=GreeterConfig,
    permissions=(PermissionNeed("discussions", "write", "the greeting"),),
    events=(EventNeed("discussion", "new discussions"),),
    cli=_register_cli,
)
WITH_GREETER = (*FEATURES, GREETER)


def test_a_new_features_section_is_read_validated_and_defaulted():
    config = parse_repo_config('[greeter]\ngreeting = "hi"\n', features=WITH_GREETER)
    assert config.greeter == GreeterConfig(greeting="hi")
    assert config.slow_ci == SlowCiConfig()  # the others keep their defaults
    assert parse_repo_config("", features=WITH_GREETER) == RepoConfig.of(WITH_GREETER)
    with pytest.raises(ConfigError, match=r"'greeter\.greeting' must not be empty"):
        parse_repo_config('[greeter]\ngreeting = " "\n', features=WITH_GREETER)
    with pytest.raises(ConfigError, match=r"'greeter\.greeting' must be a string"):
        parse_repo_config("[greeter]\ngreeting = 3\n", features=WITH_GREETER)
    with pytest.raises(ConfigError, match=r"unknown key 'greeter\.nope' \(known here: enabled,"):
        parse_repo_config("[greeter]\nnope = 1\n", features=WITH_GREETER)
    with pytest.raises(ConfigError, match=r"known here: benchmarks, greeter, new_model, reviewers"):
        parse_repo_config("[nope]\n", features=WITH_GREETER)
    # The bot's own list does not have it: its section is an unknown key there.
    with pytest.raises(ConfigError, match=r"unknown key 'greeter'"):
        parse_repo_config("[greeter]\n")


def test_bot_config_show_writes_a_new_features_defaults_last():
    text = default_config_toml(WITH_GREETER)
    assert text.startswith(default_config_toml())
    assert text.endswith('\n[greeter]\nenabled = false\ngreeting = "hello"\n')
    assert parse_repo_config(text, features=WITH_GREETER) == RepoConfig.of(WITH_GREETER)


def test_doctor_checks_what_a_new_feature_needs_once_a_repository_enables_it():
    everything = {
        "id": 7,
        "account": {"login": "acme"},
        "permissions": {
            name: max((n.level for n in needs), key=["read", "write", "admin"].index)
            for name, needs in doctor.permission_needs().items()
        },
        "events": list(doctor.event_needs()),
    }
    off = doctor.enabled_features([], WITH_GREETER)
    assert "greeter" not in off
    assert doctor.check_permissions(everything, off, WITH_GREETER).detail == (
        "installation 7 (acme): missing discussions: write (only greetings: the greeting,"
        " not enabled)"
    )
    assert doctor.check_events(everything, off, WITH_GREETER).detail == (
        "installation 7 (acme): missing discussion (only greetings: new discussions, not enabled)"
    )
    used = RepoConfig.of(WITH_GREETER, greeter=GreeterConfig(enabled=True))
    on = doctor.enabled_features([RepoConfig.of(WITH_GREETER), used], WITH_GREETER)
    assert "greeter" in on
    permissions = doctor.check_permissions(everything, on, WITH_GREETER)
    assert (permissions.status, permissions.detail) == (
        "fail",
        "installation 7 (acme): missing discussions: write (needed by greetings: the greeting)",
    )
    assert doctor.check_events(everything, on, WITH_GREETER).status == "fail"
    # The bot's own list does not need it.
    assert doctor.check_permissions(everything, doctor.enabled_features([])).status == "ok"


async def test_a_new_feature_is_routed_helped_and_given_its_command():
    greeted.clear()
    event = Event({"action": "created"}, event="discussion", delivery_id="d-1")
    for callback in routing.combined_router(WITH_GREETER).fetch(event):
        await callback(event, None)
    assert greeted == ["d-1"]
    assert not routing.combined_router().fetch(event)
    assert routing.all_help(WITH_GREETER)[-1].name == "greetings"
    parser = argparse.ArgumentParser()
    routing.register_feature_commands(parser.add_subparsers(dest="command"), WITH_GREETER)
    assert parser.parse_args(["greet"]).command == "greet"


# --------------------------------------------------------------------------- RepoConfig


def test_repo_config_keeps_the_shape_of_the_dataclass_it_replaces():
    config = RepoConfig(slow_ci=SlowCiConfig(runner="github-actions"))
    assert config.slow_ci.runner == "github-actions"
    assert config.reviewers.count == 2
    assert config == RepoConfig(slow_ci=SlowCiConfig(runner="github-actions"))
    assert config != RepoConfig()
    assert list(config.sections) == SECTIONS
    assert repr(config).startswith("RepoConfig(reviewers=ReviewersConfig(enabled=True,")
    assert copy.deepcopy(config) == config
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.slow_ci = SlowCiConfig()  # type: ignore[misc]
    with pytest.raises(AttributeError, match="no section 'greeter'"):
        _ = config.greeter
    with pytest.raises(TypeError, match="no section 'greeter'"):
        RepoConfig(greeter=GreeterConfig())
