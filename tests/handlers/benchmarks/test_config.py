"""`[benchmarks]`: read, checked and shown by the generic config machinery, with errors that
name the key; off until a command is given."""

from __future__ import annotations

import pytest

from bot.config import ConfigError, RepoConfig, default_config_toml, parse_repo_config
from handlers import FEATURES
from handlers.benchmarks.config import MAX_WORDS, BenchmarksConfig

SECTION = """
[benchmarks]
command = ["python", "bench/model_lib.py", "--json", "{output}"]
machine_types = ["single-gpu", "multi-gpu"]
repeats = 7
threshold = 0.1
channel = "ci-benchmarks"
fail_on_regression = true
timeout_seconds = 600
"""


def test_a_section_is_read_with_every_key():
    config = parse_repo_config(SECTION).benchmarks
    assert config == BenchmarksConfig(
        command=("python", "bench/model_lib.py", "--json", "{output}"),
        machine_types=("single-gpu", "multi-gpu"),
        repeats=7,
        threshold=0.1,
        channel="ci-benchmarks",
        fail_on_regression=True,
        timeout_seconds=600,
    )


def test_benchmarks_are_off_until_a_command_is_named():
    (feature,) = [f for f in FEATURES if f.name == "benchmarks"]
    assert RepoConfig().benchmarks == BenchmarksConfig()
    assert not feature.is_enabled(RepoConfig())
    assert feature.is_enabled(parse_repo_config(SECTION))
    # An integer threshold is a number too.
    assert parse_repo_config("[benchmarks]\nthreshold = 0\n").benchmarks.threshold == 0.0


def test_bot_config_show_writes_the_defaults_and_reads_them_back():
    text = default_config_toml()
    assert '\n[benchmarks]\ncommand = []\nmachine_types = ["single-gpu"]\nrepeats = 5\n' in text
    assert parse_repo_config(text).benchmarks == BenchmarksConfig()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            'command = "python bench.py {output}"',
            r"'benchmarks\.command' must be a list of strings",
        ),
        ('command = ["python", 3, "{output}"]', r"'benchmarks\.command' must be a list of strings"),
        ('command = ["python", "bench.py"]', r"'benchmarks\.command' must name \{output\}"),
        ('command = ["", "{output}"]', r"'benchmarks\.command' must start with the program"),
        (
            'command = ["python", "a\\u0000b", "{output}"]',
            r"'benchmarks\.command' word 2 holds a NUL",
        ),
        (
            "command = [" + ", ".join(['"{output}"'] * (MAX_WORDS + 1)) + "]",
            rf"'benchmarks\.command' takes at most {MAX_WORDS} words, got {MAX_WORDS + 1}",
        ),
        ('machine_types = ["tpu"]', r"'benchmarks\.machine_types' takes single-gpu and multi-gpu"),
        ("machine_types = []", r"'benchmarks\.machine_types' takes single-gpu"),
        ('machine_types = ["single-gpu", "single-gpu"]', r"'benchmarks\.machine_types' takes"),
        ("repeats = 0", r"'benchmarks\.repeats' must be between 1 and 50, got 0"),
        ("repeats = 51", r"'benchmarks\.repeats' must be between 1 and 50, got 51"),
        ("repeats = true", r"'benchmarks\.repeats' must be an integer"),
        ("threshold = -0.01", r"'benchmarks\.threshold' must be a fraction between 0 and 1"),
        ("threshold = 1.5", r"'benchmarks\.threshold' must be a fraction between 0 and 1"),
        ("threshold = nan", r"'benchmarks\.threshold' must be a fraction between 0 and 1"),
        ("threshold = inf", r"'benchmarks\.threshold' must be a fraction between 0 and 1"),
        ('threshold = "5%"', r"'benchmarks\.threshold' must be a number"),
        ('channel = "no spaces"', r"'benchmarks\.channel' must be a Slack channel's name"),
        ("timeout_seconds = 0", r"'benchmarks\.timeout_seconds' must be between 1 and 86400"),
        ("fail_on_regression = 1", r"'benchmarks\.fail_on_regression' must be true or false"),
        ("nope = 1", r"unknown key 'benchmarks\.nope' \(known here: channel, command,"),
    ],
)
def test_a_bad_value_is_refused_naming_its_key(body, message):
    with pytest.raises(ConfigError, match=message):
        parse_repo_config(f"[benchmarks]\n{body}\n", source=".github/bot.toml")


def test_the_argv_puts_the_interpreter_and_the_output_path_in_place():
    config = BenchmarksConfig(command=("python", "bench.py", "--json={output}", "python"))
    assert config.argv("/envs/x/bin/python", "/tmp/m.json") == [
        "/envs/x/bin/python",
        "bench.py",
        "--json=/tmp/m.json",
        "python",  # only the first word is the interpreter
    ]
    other = BenchmarksConfig(command=("./bench", "{output}"))
    assert other.argv("/envs/x/bin/python", "/o.json") == ["./bench", "/o.json"]
