"""Pure pieces of the core: commands, configuration, log redaction, rate limits, metrics."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from bot.clients.backoff import rate_limit_wait
from bot.config import ConfigError, RepoConfig, Settings, default_config_toml, parse_repo_config
from bot.kit.commands import Command, parse_commands
from bot.logs import configure, redact
from bot.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]


def test_the_bot_process_never_imports_torch_or_model_lib():
    code = (
        "import sys\n"
        "import bot.server.app, bot.ops.cli, bot.server.worker, bot.server.runtime\n"
        "import bot.server.routing\n"
        "from bot.server.routing import FEATURES\n"
        "import handlers.help, handlers.reviewers, handlers.new_model, codeowners\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'model_lib'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ""


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("@bot /help", [Command("help", ())]),
        ("please @bot /style now", [Command("style", ("now",))]),
        ("@BOT /Help", [Command("help", ())]),
        ("first\n@bot /style\n@bot /help", [Command("style", ()), Command("help", ())]),
        ("> @bot /style\nquoted, not asked", []),
        ("```\n@bot /style\n```", []),
        ("mail@bot /style", []),
        ("@botty /style", []),
        ("@bot /style/x", []),
        ("", []),
        (None, []),
    ],
)
def test_parse_commands(body, expected):
    assert parse_commands(body, "bot") == expected


def test_parse_commands_with_another_handle():
    assert parse_commands("@maintainer-bot /help", "@maintainer-bot") == [Command("help", ())]
    assert parse_commands("@bot /help", "maintainer-bot") == []


def test_repo_config_defaults_and_overrides():
    assert parse_repo_config("") == RepoConfig()
    config = parse_repo_config(
        '[reviewers]\ncount = 3\nunavailable = ["alice"]\n[new_model]\nchannel = "models"\n'
    )
    assert config.reviewers.count == 3
    assert config.reviewers.unavailable == ("alice",)
    assert config.new_model.channel == "models"
    assert parse_repo_config(default_config_toml()) == RepoConfig()


def test_slow_ci_extras_default_to_every_group_and_narrow():
    assert RepoConfig().slow_ci.extras is None  # unset: every optional dependency group
    assert "# extras = [...]  (unset: every optional dependency group)" in default_config_toml()
    narrowed = parse_repo_config('[slow_ci]\nextras = ["models", "dev"]\n')
    assert narrowed.slow_ci.extras == ("models", "dev")
    assert parse_repo_config("[slow_ci]\nextras = []\n").slow_ci.extras == ()
    with pytest.raises(ConfigError, match=r"'slow_ci\.extras' must be a list of strings"):
        parse_repo_config('[slow_ci]\nextras = "models"\n')
    with pytest.raises(ConfigError, match=r"'slow_ci\.extras' takes names of optional"):
        parse_repo_config('[slow_ci]\nextras = ["--index-url=http://evil"]\n')


def test_this_repository_ships_its_own_bot_toml():
    """What this repository really uses, so `run-slow` here installs its `models` group."""
    text = (ROOT / ".github" / "bot.toml").read_text()
    config = parse_repo_config(text)
    assert config.slow_ci.extras is not None and "models" in config.slow_ci.extras
    assert "hf" not in config.slow_ci.extras  # transformers: the tests never import it
    out = subprocess.run(
        [sys.executable, "-m", "bot", "config", "check", ".github/bot.toml"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[reviewers]\ncount = 'two'", "'reviewers.count' must be an integer"),
        ("[reviewers]\ncount = 0", "'reviewers.count' must be at least 1"),
        ("[reviewers]\ncount = true", "'reviewers.count' must be an integer"),
        ("[reviewers]\ncuont = 2", "unknown key 'reviewers.cuont'"),
        ("[nope]\nx = 1", "unknown key 'nope'"),
        ("reviewers = 3", "'reviewers' must be a table"),
        ("[reviewers]\nsemantics = 'gitlab'", "'reviewers.semantics' must be one of"),
        ("[reviewers]\nunavailable = 'alice'", "'reviewers.unavailable' must be a list"),
        ("[new_model]\nmodels_dir = '/abs/'", "'new_model.models_dir' must be a relative"),
        ("[reviewers", "not valid TOML"),
    ],
)
def test_repo_config_errors_name_the_key(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_repo_config(text)


def test_settings_from_env(tmp_path):
    key = tmp_path / "key.pem"
    key.write_text("-----BEGIN KEY-----\nabc\n-----END KEY-----\n")
    settings = Settings.from_env(
        {
            "GITHUB_APP_ID": "12",
            "GITHUB_PRIVATE_KEY_PATH": str(key),
            "GITHUB_WEBHOOK_SECRET": "s3cret-value",
            "GITHUB_API_URL": "https://ghe.example.org/api/v3/",
            "BOT_HANDLE": "@maintainer-bot",
        }
    )
    assert settings.github_private_key.startswith("-----BEGIN KEY-----")
    assert settings.github_api_url == "https://ghe.example.org/api/v3"
    assert settings.handle == "maintainer-bot"
    assert "s3cret-value" in settings.secrets
    assert "abc" not in repr(settings)  # the key never shows in a repr


def test_settings_paths_are_absolute_against_the_starting_folder(tmp_path, monkeypatch):
    """A service manager starts the bot in its folder; every path is anchored there at once."""
    start = tmp_path / "install"
    (start / "keys").mkdir(parents=True)
    (start / "keys" / "app.pem").write_text("-----BEGIN KEY-----\nabc\n-----END KEY-----\n")
    (start / "bin").mkdir()
    monkeypatch.chdir(start)
    defaults = Settings.from_env({})
    assert defaults.database == str(start / "var" / "bot.sqlite3")
    assert defaults.job_work_dir == str(start / "var" / "jobs")
    assert defaults.env_cache_dir == str(start / "var" / "envs")
    assert defaults.test_python is None

    env = {
        "GITHUB_APP_ID": "7",
        "GITHUB_PRIVATE_KEY_PATH": "keys/app.pem",
        "BOT_DATABASE": "state/../state/bot.db",
        "BOT_JOB_DIR": "/srv/jobs",
        "BOT_ENV_CACHE": "~/envs",
        "BOT_TEST_PYTHON": "bin/python",
        "HOME": str(tmp_path / "home"),
    }
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    given = Settings.from_env(env)
    monkeypatch.chdir(tmp_path)  # nothing read above depends on where the process is now
    assert given.github_private_key.startswith("-----BEGIN KEY-----")
    assert given.github_private_key_path == str(start / "keys" / "app.pem")
    assert given.database == str(start / "state" / ".." / "state" / "bot.db")
    assert given.job_work_dir == "/srv/jobs"
    assert given.env_cache_dir == str(tmp_path / "home" / "envs")
    assert given.test_python == str(start / "bin" / "python")
    assert Settings.from_env({}, cwd=start / "bin").database == str(start / "bin/var/bot.sqlite3")
    # A bare interpreter name is found on PATH now, not in a job's folder later.
    assert Settings.from_env({"BOT_TEST_PYTHON": "sh", "PATH": "/bin"}).test_python == "/bin/sh"
    assert Settings.from_env({"BOT_DATABASE": ":memory:"}).database == ":memory:"


def test_serve_logs_its_paths_absolute(tmp_path):
    """`bot serve` as the Procfile starts it, in a folder of its own, with no path variable."""
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "GITHUB_WEBHOOK_SECRET": "s3cret-value",
        "BOT_LOG_FORMAT": "json",
    }
    argv = [sys.executable, "-m", "bot", "serve", "--host", "127.0.0.1", "--port", "0"]
    server = subprocess.Popen(
        argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[dict] = []
    try:
        assert server.stdout is not None
        for raw in server.stdout:
            lines.append(json.loads(raw))
            if lines[-1]["msg"] == "listening":
                break
    finally:
        server.terminate()
        server.wait(timeout=30)
    (paths,) = [line for line in lines if line["msg"] == "paths"]
    assert paths["database"] == str(tmp_path / "var" / "bot.sqlite3")
    assert paths["job_dir"] == str(tmp_path / "var" / "jobs")
    assert paths["env_cache"] == str(tmp_path / "var" / "envs")
    assert (tmp_path / "var" / "bot.sqlite3").is_file()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"GITHUB_APP_ID": "1"}, "go together"),
        ({"GITHUB_PRIVATE_KEY_PATH": "/nonexistent/key.pem", "GITHUB_APP_ID": "1"}, "cannot read"),
        ({"BOT_MAX_ATTEMPTS": "many"}, "BOT_MAX_ATTEMPTS: expected an integer"),
        ({"BOT_MAX_ATTEMPTS": "0"}, "at least 1"),
    ],
)
def test_settings_errors(env, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_private_key_on_one_line_is_unfolded():
    settings = Settings.from_env(
        {"GITHUB_APP_ID": "1", "GITHUB_PRIVATE_KEY": "-----BEGIN-----\\nabc\\n-----END-----"}
    )
    assert settings.github_private_key == "-----BEGIN-----\nabc\n-----END-----"


def test_secrets_never_reach_the_log(capsys):
    secret = "ghs_0123456789abcdefSECRET"
    configure(level="INFO", fmt="json", secrets=[secret])
    log = logging.getLogger("test.redaction")
    log.info("calling https://x-access-token:%s@github.com", secret, extra={"token": secret})
    try:
        raise RuntimeError(f"bad credentials {secret}")
    except RuntimeError:
        log.exception("failed")
    err = capsys.readouterr().err
    assert secret not in err
    assert err.count("***") >= 3
    first = json.loads(err.splitlines()[0])
    assert first["token"] == "***"


def test_redact_handles_overlapping_secrets():
    assert redact("a-longer-secret and a-long", ["a-long", "a-longer-secret"]) == "*** and ***"


def test_rate_limit_wait():
    assert rate_limit_wait(403, {"Retry-After": "7"}) == 7.0
    assert rate_limit_wait(429, {"retry-after": "2"}) == 2.0
    reset = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1010"}
    assert rate_limit_wait(403, reset, now=1000.0) == 11.0
    assert rate_limit_wait(403, {"X-RateLimit-Remaining": "5"}) is None  # a plain 403
    assert rate_limit_wait(500, {"Retry-After": "1"}) is None


def test_metrics_render_prometheus_text():
    metrics = Metrics()
    metrics.deliveries.labels("push", "accepted").inc()
    metrics.deliveries.labels("push", "accepted").inc()
    metrics.handler_seconds.labels('h"x').observe(0.02)
    metrics.set_store_figures({"deliveries": {"done": 2}}, depth=3, commits=1)
    text = metrics.render().decode()
    assert 'bot_deliveries_total{event="push",outcome="accepted"} 2.0' in text
    assert 'bot_handler_duration_seconds_bucket{handler="h\\"x",le="0.025"} 1.0' in text
    assert 'bot_handler_duration_seconds_bucket{handler="h\\"x",le="0.01"} 0.0' in text
    assert 'bot_handler_duration_seconds_count{handler="h\\"x"} 1.0' in text
    assert "# TYPE bot_queue_depth gauge\nbot_queue_depth 3.0" in text
    assert 'bot_deliveries_stored{status="done"} 2.0' in text
    # A status whose rows are gone leaves the gauge rather than staying at its last count.
    metrics.set_store_figures({"deliveries": {}}, depth=0, commits=1)
    assert 'status="done"' not in metrics.render().decode()


def test_a_secret_minted_at_run_time_is_masked_in_every_log_line(capsys):
    import logging

    from bot import logs

    logs.configure(fmt="text", secrets=("configured-secret-123",))
    token = "ghs_minted0123456789abcdef"
    logs.add_secret(token)
    logging.getLogger("bot.test").warning(
        "fetch https://x-access-token:%s@github.com/o/r failed", token
    )
    err = capsys.readouterr().err
    assert token not in err
    assert "x-access-token:***@github.com" in err
