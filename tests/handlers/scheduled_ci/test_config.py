"""`[[scheduled_ci]]`: an array section read, checked and shown by the generic config machinery,
with errors that name the entry and the key."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest
from gidgethub.routing import Router

from bot.config import (
    MAX_ARRAY_ENTRIES,
    ConfigError,
    RepoConfig,
    array_sections,
    default_config_toml,
    parse_repo_config,
)
from bot.kit.feature import Feature
from bot.ops.cli import main
from handlers import FEATURES
from handlers.scheduled_ci.config import Schedule

NIGHTLY = """
[[scheduled_ci]]
name = "nightly"
cron = "17 2 * * *"            # UTC, standard five-field cron
folders = ["models/*"]
machine_types = ["single-gpu", "multi-gpu"]
channel = "ci-daily"
bisect = true

[[scheduled_ci]]
name = "weekly-multi"
cron = "0 4 * * sun"
machine_types = ["multi-gpu"]
reruns = 5
notify_pr = true
job_timeout_seconds = 14400

[scheduled_ci.mentions]
octocat = "U024BE7LH"
"hubot[bot]" = "W012A3CDE"
"""


def parse(text: str) -> RepoConfig:
    return parse_repo_config(text)


def entry(**keys: object) -> str:
    """One `[[scheduled_ci]]` entry with these keys besides a valid name and cron."""
    values = {"name": '"nightly"', "cron": '"17 2 * * *"'}
    values.update({k: str(v) for k, v in keys.items()})
    return "[[scheduled_ci]]\n" + "".join(f"{k} = {v}\n" for k, v in values.items())


def test_several_schedules_are_read_in_order_with_their_defaults():
    nightly, weekly = parse(NIGHTLY).scheduled_ci
    assert nightly == Schedule(
        name="nightly",
        cron="17 2 * * *",
        folders=("models/*",),
        channel="ci-daily",
    )
    assert (nightly.reruns, nightly.bisect, nightly.notify_pr) == (3, True, False)
    assert nightly.machine_types == ("single-gpu", "multi-gpu")
    assert nightly.job_timeout_seconds == 7200
    assert weekly.machine_types == ("multi-gpu",)
    assert (weekly.reruns, weekly.notify_pr, weekly.job_timeout_seconds) == (5, True, 14400)
    assert weekly.folders == ()
    assert weekly.mentions == {"octocat": "U024BE7LH", "hubot[bot]": "W012A3CDE"}
    assert weekly.mention_for("OctoCat") == "U024BE7LH"
    assert weekly.mention_for("someone") is None


def test_no_schedule_is_the_default_and_the_feature_is_then_unused():
    (feature,) = [f for f in FEATURES if f.name == "scheduled_ci"]
    assert feature.config_array
    assert RepoConfig().scheduled_ci == ()
    assert parse("").scheduled_ci == ()
    assert not feature.is_enabled(RepoConfig())
    assert feature.is_enabled(parse(NIGHTLY))
    assert "scheduled_ci" in array_sections()


def test_next_fire_comes_from_the_cron():
    (nightly,) = parse(entry()).scheduled_ci
    assert nightly.next_fire(1714521600.0) == 1714529820.0  # 2024-05-01 00:00 → 02:17 UTC


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            entry(cron='"0 0 30 2 *"'),
            r"'scheduled_ci\[1\]\.cron' is not a five-field cron in UTC: day-of-month '30' never"
            r" falls in month '2'",
        ),
        (entry(cron='"0 0 * * * *"'), r"'scheduled_ci\[1\]\.cron' .*expected five fields"),
        (entry(cron='"61 * * * *"'), r"'scheduled_ci\[1\]\.cron' .*minute: 61 is out of range"),
        (entry(cron="17"), r"'scheduled_ci\[1\]\.cron' must be a string, got 17"),
        ('[[scheduled_ci]]\nname = "x"\n', r"'scheduled_ci\[1\]\.cron' is required"),
        ('[[scheduled_ci]]\ncron = "* * * * *"\n', r"'scheduled_ci\[1\]\.name' is required"),
        (entry(name='"night ly"'), r"'scheduled_ci\[1\]\.name' must be 1 to 64 of"),
        (entry(name='""'), r"'scheduled_ci\[1\]\.name' must be 1 to 64"),
        (entry(name='"' + "n" * 65 + '"'), r"'scheduled_ci\[1\]\.name' must be 1 to 64"),
        (
            entry(nope=1),
            r"unknown key 'scheduled_ci\[1\]\.nope' \(known here: benchmarks, bisect, channel,",
        ),
        (entry(folders='["../secrets"]'), r"'scheduled_ci\[1\]\.folders' takes globs under tests/"),
        (entry(folders='["/etc/*"]'), r"folders' .*'/etc/\*': an absolute path"),
        (entry(folders='["models/*/.."]'), r"folders' .*`\.\.` is not allowed"),
        (entry(folders='["models//bert"]'), r"folders' .*an empty path segment"),
        (entry(folders='["models/$(id)"]'), r"folders' .*holds a character"),
        (entry(folders='"models/*"'), r"'scheduled_ci\[1\]\.folders' must be a list of strings"),
        (entry(machine_types='["tpu"]'), r"'scheduled_ci\[1\]\.machine_types' takes single-gpu"),
        (entry(machine_types="[]"), r"machine_types' takes single-gpu and multi-gpu"),
        (entry(machine_types='["multi-gpu", "multi-gpu"]'), r"machine_types' .*each once"),
        (entry(reruns=0), r"'scheduled_ci\[1\]\.reruns' must be between 1 and 10, got 0"),
        (entry(reruns=11), r"'scheduled_ci\[1\]\.reruns' must be between 1 and 10, got 11"),
        (entry(reruns="true"), r"'scheduled_ci\[1\]\.reruns' must be an integer"),
        (entry(bisect='"yes"'), r"'scheduled_ci\[1\]\.bisect' must be true or false"),
        (entry(job_timeout_seconds=0), r"'scheduled_ci\[1\]\.job_timeout_seconds' must be between"),
        (entry(channel='"<!channel>"'), r"'scheduled_ci\[1\]\.channel' must be a Slack channel"),
        (
            entry(mentions='{ octocat = "<!channel>" }'),
            r"'scheduled_ci\[1\]\.mentions\.octocat' must be a Slack member id",
        ),
        (entry(mentions='{ "a b" = "U024BE7LH" }'), r"mentions' takes GitHub logins as keys"),
        (
            entry(mentions='{ Octo = "U024BE7LH", octo = "U024BE7LH" }'),
            r"mentions' names 'octo' twice \(logins ignore case\)",
        ),
        (entry(mentions='{ octo = ["U1"] }'), r"'scheduled_ci\[1\]\.mentions' must be a table of"),
        (
            entry() + entry(cron='"0 0 * * *"'),
            r"'scheduled_ci\[2\]\.name' 'nightly' is already the name of scheduled_ci\[1\]",
        ),
        (
            '[scheduled_ci]\nname = "x"\ncron = "* * * * *"\n',
            r"'scheduled_ci' must be an array of tables \(\[\[scheduled_ci\]\]\)",
        ),
        ("scheduled_ci = [1, 2]\n", r"'scheduled_ci' must be an array of tables"),
        (
            entry(name='"a"') + entry(name='"b"', cron='"0 0 30 2 *"'),
            r"'scheduled_ci\[2\]\.cron'",
        ),
    ],
)
def test_a_bad_schedule_is_refused_naming_its_entry_and_key(text, message):
    with pytest.raises(ConfigError, match=message):
        parse(text)


def test_too_many_schedules_are_refused():
    text = "".join(entry(name=f'"s{i}"') for i in range(MAX_ARRAY_ENTRIES + 1))
    with pytest.raises(ConfigError, match=f"takes at most {MAX_ARRAY_ENTRIES} entries"):
        parse(text)


def test_bot_config_show_offers_a_commented_entry_that_parses_when_uncommented():
    text = default_config_toml()
    assert parse_repo_config(text) == RepoConfig()  # still the defaults: the entry is a comment
    lines = text.splitlines()
    start = lines.index("# [[scheduled_ci]]")
    block = []
    for line in lines[start:]:
        if not line.startswith("# "):
            break
        block.append(line.removeprefix("# "))
    (example,) = parse_repo_config("\n".join(block)).scheduled_ci
    assert example == Schedule.example()
    assert example.mentions == {"octocat": "U024BE7LH"}
    assert {f.name for f in dataclasses.fields(Schedule)} <= {
        line.split(" = ")[0] for line in block[1:]
    }


def test_bot_config_check_fails_on_a_bad_cron_naming_the_key(tmp_path, capsys):
    path = tmp_path / "bot.toml"
    path.write_text(entry(cron='"0 0 30 2 *"'))
    assert main(["config", "check", str(path)]) == 2
    assert "'scheduled_ci[1].cron' is not a five-field cron in UTC" in capsys.readouterr().err
    path.write_text(NIGHTLY)
    assert main(["config", "check", str(path)]) == 0
    assert capsys.readouterr().out == f"{path}: ok\n"


# --------------------------------------------------------------------------- any array section


@dataclass(frozen=True)
class Alarm:
    at: str
    loud: bool = False

    @classmethod
    def example(cls) -> Alarm:
        return cls(at="07:00")


ALARMS = Feature(name="alarms", title="alarms", router=Router(), config=Alarm, config_array=True)
WITH_ALARMS = (*FEATURES, ALARMS)


def test_any_feature_may_have_an_array_section():
    config = parse_repo_config(
        '[[alarms]]\nat = "06:00"\n[[alarms]]\nat = "07:00"\nloud = true\n', features=WITH_ALARMS
    )
    assert config.alarms == (Alarm("06:00"), Alarm("07:00", loud=True))
    assert config.slow_ci == RepoConfig().slow_ci
    assert RepoConfig.of(WITH_ALARMS).alarms == ()
    with pytest.raises(ConfigError, match=r"'alarms\[2\]\.loud' must be true or false"):
        parse_repo_config(
            '[[alarms]]\nat = "1"\n[[alarms]]\nat = "2"\nloud = 1\n', features=WITH_ALARMS
        )
    assert default_config_toml(WITH_ALARMS).endswith(
        "\n# Any number of [[alarms]] entries; none by default. One looks like this:\n"
        '# [[alarms]]\n# at = "07:00"\n# loud = false\n'
    )
