"""`bot doctor`: each thing wrong with an installation is one line naming it, through the sandbox
GitHub and Slack and a real store; the pure checks on their own."""

from __future__ import annotations

import argparse
import io
import json
import sqlite3
import time
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bot.config import RepoConfig, Settings
from bot.jobs.runners import confine
from bot.ops import doctor
from bot.store.engine import MIGRATIONS, connect
from handlers import FEATURES
from handlers.slow_ci.config import SlowCiConfig
from handlers.style.config import StyleConfig
from tests.sandbox.harness import Harness

ROOT = Path(__file__).resolve().parents[2]
REPO = "acme/widgets"
OWNERS = "* @acme/maintainers\n/docs/ @writer\n"
INSTALLATION = "installation 1 (sandbox-org)"


@pytest.fixture
async def harness(tmp_path):
    settings = Settings(database=str(tmp_path / "bot.sqlite3"), retry_base_seconds=0.05)
    opened = Harness(tmp_path, settings=settings)
    await opened.start()
    opened.slack.create_channel("new-model-notification")
    yield opened
    await opened.close()


def make_repo(harness: Harness, bot_toml: str | None = None) -> None:
    files = {".github/review-owners": OWNERS, "README.md": "hi\n", "docs/index.md": "docs\n"}
    if bot_toml is not None:
        files[".github/bot.toml"] = bot_toml
    harness.github.create_repo(REPO, files=files)


def app_settings(harness: Harness, **changes) -> Settings:
    """The bot's settings in App mode, from the sandbox's App."""
    assert harness.settings is not None
    hub = harness.github
    app_mode = {
        "github_app_id": str(hub.app_id),
        "github_private_key": hub.private_key_pem,
        "github_token": None,
    }
    return replace(harness.settings, **{**app_mode, **changes})


async def run_doctor(settings: Settings, **options) -> tuple[int, list[str]]:
    out = io.StringIO()
    code = await doctor.doctor(settings, out=out, **options)
    return code, out.getvalue().splitlines()


def lines_of(lines: list[str], check: str) -> list[str]:
    return [line for line in lines if line[6:].split(" ", 1)[0] == check]


# --------------------------------------------------------------------------- through the sandbox


async def test_a_healthy_installation_passes_every_check(harness):
    make_repo(harness, '[slow_ci]\nchannel = "ci"\n')
    harness.slack.create_channel("ci")
    code, lines = await run_doctor(app_settings(harness))
    assert code == 0, "\n".join(lines)
    assert [line for line in lines if not line.startswith("ok ")] == []
    checks = [line[6:].split(" ", 1)[0] for line in lines]
    for check in ("secret", "app", "clock", "permissions", "events", "config", "owners"):
        assert check in checks
    for check in ("slack", "channels", "store", "processing", "outbox", "env-cache", "webhooks"):
        assert check in checks
    assert (
        f"ok    owners       {REPO}: .github/review-owners: 2 rules, 0 error(s), 0 warning(s)"
        in lines
    )  # the README is nobody's
    assert lines_of(lines, "channels") == [
        f"ok    channels     #ci ({REPO} [slow_ci]): found, the bot is a member",
        f"ok    channels     #new-model-notification ({REPO} [new_model]): found, the bot is a"
        " member",
    ]


async def test_a_missing_permission_fails_naming_the_feature_that_needs_it(harness):
    make_repo(harness)
    del harness.github.installation_permissions["checks"]
    code, lines = await run_doctor(app_settings(harness))
    assert code == 1
    assert lines_of(lines, "permissions") == [
        f"FAIL  permissions  {INSTALLATION}: missing checks: write (needed by slow tests: the"
        " check run)"
    ]


async def test_a_permission_granted_below_the_level_needed_says_what_it_has(harness):
    make_repo(harness)
    harness.github.installation_permissions["contents"] = "read"
    code, lines = await run_doctor(app_settings(harness))
    assert code == 1
    assert lines_of(lines, "permissions") == [
        f"FAIL  permissions  {INSTALLATION}: missing contents: write (has read; needed by"
        " /style: the `Apply style fixes` commit)"
    ]


async def test_a_missing_event_fails_when_a_repository_uses_its_feature(harness):
    make_repo(harness, '[slow_ci]\nrunner = "github-actions"\n')
    harness.github.installation_events.remove("workflow_run")
    code, lines = await run_doctor(app_settings(harness))
    assert code == 1
    assert lines_of(lines, "events") == [
        f"FAIL  events       {INSTALLATION}: missing workflow_run (needed by slow tests on"
        " GitHub Actions: the run's progress)"
    ]


async def test_a_missing_event_no_enabled_feature_needs_is_a_warning(harness):
    make_repo(harness)  # slow tests run on this machine's GPUs: no Actions events needed
    harness.github.installation_events.remove("workflow_run")
    code, lines = await run_doctor(app_settings(harness))
    assert code == 0
    assert lines_of(lines, "events") == [
        f"warn  events       {INSTALLATION}: missing workflow_run (only slow tests on GitHub"
        " Actions: the run's progress, not enabled)"
    ]


async def test_a_bad_bot_toml_fails_naming_the_key(harness):
    make_repo(harness, "[reviewers]\nnope = 1\n")
    code, lines = await run_doctor(app_settings(harness))
    assert code == 1
    [line] = lines_of(lines, "config")
    assert line.startswith(
        f"FAIL  config       {REPO}:.github/bot.toml: unknown key 'reviewers.nope' (known here:"
    )
    assert line.endswith("(on main)")


async def test_an_absent_bot_toml_is_the_defaults_and_a_missing_owners_file_a_warning(harness):
    harness.github.create_repo(REPO, files={"README.md": "hi\n"})
    code, lines = await run_doctor(app_settings(harness))
    assert code == 0
    assert lines_of(lines, "config") == [
        f"ok    config       {REPO}: no .github/bot.toml on main: the defaults"
    ]
    assert lines_of(lines, "owners") == [
        f"warn  owners       {REPO}: .github/review-owners is not on main: no reviewers are"
        " requested (add it, or set [reviewers] enabled = false)"
    ]


async def test_an_unknown_slack_channel_fails_and_so_does_one_the_bot_is_not_in(harness):
    make_repo(harness, '[new_model]\nchannel = "#no-such-channel"\n[slow_ci]\nchannel = "ci"\n')
    harness.slack.create_channel("ci")
    harness.slack.not_joined.add("ci")
    code, lines = await run_doctor(app_settings(harness))
    assert code == 1
    assert lines_of(lines, "channels") == [
        f"FAIL  channels     #ci ({REPO} [slow_ci]): the bot is not a member (/invite it there)",
        f"FAIL  channels     #no-such-channel ({REPO} [new_model]): not found among the 3"
        " channels the bot can see",
    ]


async def test_without_slack_messages_are_only_logged(harness):
    make_repo(harness)
    code, lines = await run_doctor(app_settings(harness, slack_bot_token=None))
    assert code == 0
    assert lines_of(lines, "slack") == [
        "warn  slack        not configured (SLACK_BOT_TOKEN): messages are only logged"
    ]
    assert lines_of(lines, "channels") == []


async def test_a_wrong_private_key_fails_with_githubs_message_and_the_keys_fingerprint(harness):
    make_repo(harness)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = other.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    code, lines = await run_doctor(app_settings(harness, github_private_key=pem))
    assert code == 1
    fingerprint = doctor.key_fingerprint(pem)
    assert fingerprint and fingerprint != doctor.key_fingerprint(harness.github.private_key_pem)
    assert lines_of(lines, "app") == [
        "FAIL  app          App 1: GitHub refused the App's JWT (401: A JSON web token could not"
        " be decoded); is GITHUB_PRIVATE_KEY a current key of App 1? The App's settings page"
        f" lists its keys' fingerprints; this key is {fingerprint}"
    ]
    # Nothing that needs the App's access is tried, nor reported twice.
    assert lines_of(lines, "permissions") == lines_of(lines, "webhooks") == []


async def test_a_key_that_cannot_sign_fails_without_showing_it(harness):
    code, lines = await run_doctor(app_settings(harness, github_private_key="not a key"))
    assert code == 1
    assert lines_of(lines, "app") == [
        "FAIL  app          App 1: GITHUB_PRIVATE_KEY cannot sign a JWT (InvalidKeyError)"
    ]


@pytest.mark.parametrize(
    ("skew", "status"), [(45, "warn"), (-45, "warn"), (600, "FAIL"), (2, "ok")]
)
async def test_clock_skew_from_githubs_date_header(harness, skew, status):
    make_repo(harness)
    harness.github.clock_skew_s = skew
    code, lines = await run_doctor(app_settings(harness))
    [line] = lines_of(lines, "clock")
    assert line.startswith(status)
    assert code == (1 if status == "FAIL" else 0)


async def test_token_mode_says_the_installation_checks_need_app_mode(harness):
    assert harness.settings is not None
    code, lines = await run_doctor(harness.settings)
    assert code == 0
    assert lines_of(lines, "app") == [
        "warn  app          token mode (GITHUB_TOKEN): the installation, repository and"
        " delivery checks need App mode (GITHUB_APP_ID + GITHUB_PRIVATE_KEY)"
    ]
    assert lines_of(lines, "permissions") == lines_of(lines, "config") == []


async def test_a_short_webhook_secret_fails(harness):
    make_repo(harness)
    code, lines = await run_doctor(app_settings(harness, webhook_secret="short"))
    assert code == 1
    assert lines_of(lines, "secret") == [
        "FAIL  secret       GITHUB_WEBHOOK_SECRET has 5 characters; use at least 20 (a short"
        " one is guessed, and deliveries forged)"
    ]


def failed_on_githubs_side(harness: Harness, status_code: int = 502) -> str:
    """A pull request opened while the bot was down: GitHub logged a failed delivery."""
    hub = harness.github
    hub.commit(REPO, "feature", {"docs/index.md": "more docs\n"}, author="outsider")
    number = hub.open_pull(REPO, "feature", author="outsider")
    guid = str(uuid.uuid4())
    payload = hub.pull_request_payload(REPO, number, "opened")
    hub.record_hook_delivery(guid, "pull_request", "opened", payload, status_code=status_code)
    return guid


async def test_a_delivery_github_failed_to_make_fails_until_redelivered(harness):
    make_repo(harness)
    guid = failed_on_githubs_side(harness)
    code, lines = await run_doctor(app_settings(harness))
    assert code == 1
    assert lines_of(lines, "webhooks") == [
        f"FAIL  webhooks     1 of 1 failed deliveries in the last 24 h not redelivered: {guid}"
        " (pull_request.opened: Invalid HTTP Response: 502) (bot doctor --redeliver)"
    ]
    assert lines_of(lines, "redeliver") == []
    assert await harness.deliveries() == []  # only looked


async def test_redeliver_gets_the_missed_delivery_processed_once(harness):
    make_repo(harness)
    guid = failed_on_githubs_side(harness)
    settings = app_settings(harness)
    code, lines = await run_doctor(settings, redeliver=True)
    assert lines_of(lines, "redeliver") == [
        f"ok    redeliver    asked GitHub to redeliver {guid} (pull_request.opened: Invalid HTTP"
        " Response: 502)"
    ]
    await harness.settle()
    [stored] = await harness.deliveries()
    assert (stored.id, stored.event, stored.status) == (guid, "pull_request", "done")
    attempts = [d for d in harness.github.hook_log() if d.guid == guid]
    assert [(d.redelivery, d.status_code) for d in attempts] == [(True, 202), (False, 502)]

    code, lines = await run_doctor(settings, redeliver=True)
    assert code == 0, "\n".join(lines)
    assert lines_of(lines, "redeliver") == []
    assert lines_of(lines, "webhooks") == [
        "warn  webhooks     1 deliveries failed on GitHub's side in the last 24 h; all"
        " redelivered since or stored by the bot"
    ]
    assert len(await harness.deliveries()) == 1
    assert len([d for d in harness.github.hook_log() if d.guid == guid]) == 2


async def test_a_failure_github_logged_for_a_delivery_the_bot_has_asks_for_nothing(harness):
    """GitHub gave up waiting (a 504 in its log) while the bot stored the delivery."""
    make_repo(harness)
    guid = failed_on_githubs_side(harness, status_code=504)
    [attempt] = [d for d in harness.github.hook_log() if d.guid == guid]
    sent = await harness.deliver("pull_request", attempt.payload, delivery_id=guid)
    assert sent.status == 202
    await harness.settle()
    code, lines = await run_doctor(app_settings(harness), redeliver=True)
    assert code == 0
    assert lines_of(lines, "redeliver") == []
    assert lines_of(lines, "webhooks")[0].startswith("warn  webhooks     1 deliveries failed")


async def test_json_is_a_list_of_check_status_detail(harness):
    make_repo(harness)
    del harness.github.installation_permissions["checks"]
    out = io.StringIO()
    code = await doctor.doctor(app_settings(harness), as_json=True, out=out)
    assert code == 1
    results = json.loads(out.getvalue())
    assert all(set(r) == {"check", "status", "detail"} for r in results)
    assert {r["status"] for r in results} <= {"ok", "warn", "fail"}
    assert {
        "check": "permissions",
        "status": "fail",
        "detail": f"{INSTALLATION}: missing checks: write (needed by slow tests: the check run)",
    } in results


def test_register_cli_adds_doctor_with_its_options():
    parser = argparse.ArgumentParser()
    doctor.register_cli(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["doctor", "--json", "--redeliver"])
    assert (args.func, args.json, args.redeliver) == (doctor.cmd_doctor, True, True)
    args = parser.parse_args(["doctor"])
    assert (args.json, args.redeliver) == (False, False)


# --------------------------------------------------------------------------- the pure checks


def test_app_yml_asks_for_exactly_what_the_features_need_at_their_highest_levels():
    manifest = yaml.safe_load((ROOT / "app.yml").read_text())
    levels = {"read": 1, "write": 2, "admin": 3}
    wanted = {"metadata": "read"}  # GitHub's own requirement of every App
    for feature in FEATURES:
        for need in feature.permissions:
            wanted[need.permission] = max(
                wanted.get(need.permission, need.level), need.level, key=levels.__getitem__
            )
    assert manifest["default_permissions"] == wanted
    events = [need.event for feature in FEATURES for need in feature.events]
    assert sorted(manifest["default_events"]) == sorted(set(events))
    assert len(set(manifest["default_events"])) == len(manifest["default_events"])
    # Doctor checks what app.yml asks for, no more and no less.
    assert set(doctor.permission_needs()) == set(manifest["default_permissions"])
    assert set(doctor.event_needs()) == set(manifest["default_events"])


def test_following_actions_runs_is_a_feature_of_its_own_in_doctors_tables():
    (actions,) = doctor.permission_needs()["actions"]
    assert (actions.feature, actions.title, actions.level) == (
        "actions_follow",
        "slow tests on GitHub Actions",
        "write",
    )
    assert [n.feature for n in doctor.event_needs()["workflow_run"]] == ["actions_follow"]
    assert [n.feature for n in doctor.event_needs()["workflow_job"]] == ["actions_follow"]


def test_enabled_features_follow_the_repositories_configs():
    assert "actions_follow" not in doctor.enabled_features([])
    actions = RepoConfig(slow_ci=SlowCiConfig(runner="github-actions"))
    assert "actions_follow" in doctor.enabled_features([RepoConfig(), actions])
    off = RepoConfig(style=StyleConfig(enabled=False), slow_ci=SlowCiConfig(enabled=False))
    assert doctor.enabled_features([off]) == {"app", "help", "reviewers", "new_model"}
    stopped = RepoConfig(slow_ci=SlowCiConfig(enabled=False, runner="github-actions"))
    assert "actions_follow" not in doctor.enabled_features([stopped])


def test_permissions_only_disabled_features_need_are_a_warning():
    installation = {
        "id": 7,
        "account": {"login": "acme"},
        "permissions": {
            "metadata": "read",
            "contents": "read",
            "pull_requests": "write",
            "issues": "write",
        },
    }
    features = frozenset({"app", "help", "reviewers", "new_model"})
    result = doctor.check_permissions(installation, features)
    assert result.status == "warn"
    assert result.detail.startswith("installation 7 (acme): missing contents: write (only")
    assert "statuses: write (only slow tests: the pytest/custom-tests status, not enabled)" in (
        result.detail
    )
    installation["permissions"] = {"metadata": "read"}
    assert doctor.check_permissions(installation, features).status == "fail"


def test_secret_needs_twenty_characters():
    assert doctor.check_secret(None).status == "fail"
    assert doctor.check_secret("x" * 19).status == "fail"
    assert doctor.check_secret("x" * 20) == doctor.ok(
        "secret", "GITHUB_WEBHOOK_SECRET is set (20 characters)"
    )


def test_clock_thresholds_and_the_date_header():
    assert doctor.check_clock(30).status == "ok"
    assert doctor.check_clock(-31).status == "warn"
    assert doctor.check_clock(300).status == "warn"
    assert doctor.check_clock(301).status == "fail"
    assert "behind" in doctor.check_clock(-400).detail
    at = 1_700_000_000.0
    date = "Tue, 14 Nov 2023 22:13:40 GMT"  # at + 20 s
    assert doctor.skew_from_date(date, at) == pytest.approx(20.5)
    assert doctor.skew_from_date(None, at) is None
    assert doctor.skew_from_date("yesterday", at) is None


def test_result_lines_and_json():
    result = doctor.fail("permissions", "installation 42 (acme): missing checks: write")
    assert result.line() == "FAIL  permissions  installation 42 (acme): missing checks: write"
    assert doctor.ok("app", "fine").line() == "ok    app          fine"
    assert result.as_json() == {
        "check": "permissions",
        "status": "fail",
        "detail": "installation 42 (acme): missing checks: write",
    }


def _iso(moment: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))


def test_review_hook_deliveries_by_guid():
    now = 1_700_000_000.0

    def attempt(id_, guid, code, age, redelivery=False):
        return {
            "id": id_,
            "guid": guid,
            "delivered_at": _iso(now - age),
            "redelivery": redelivery,
            "status": "OK" if 200 <= code < 300 else f"Invalid HTTP Response: {code}",
            "status_code": code,
            "event": "push",
            "action": None,
        }

    log = [
        attempt(9, "redone", 202, 10, redelivery=True),
        attempt(8, "missed", 502, 20),
        attempt(7, "missed", 500, 30, redelivery=True),
        attempt(6, "redone", 502, 40),
        attempt(5, "bot-has-it", 504, 50),
        attempt(4, "bot-failed", 502, 60),
        attempt(10, "bot-queued", 502, 65),
        attempt(3, "fine", 200, 70),
        attempt(2, "old", 502, 25 * 3600),
    ]
    review = doctor.review_hook_deliveries(
        log, {"bot-has-it": "done", "bot-failed": "failed", "bot-queued": "stored"}, now=now
    )
    assert review.failed == 5
    assert sorted(review.recovered) == ["bot-has-it", "bot-queued", "redone"]
    assert {guid: a["id"] for guid, a in review.missed.items()} == {"missed": 8, "bot-failed": 4}
    assert review.stored == {"bot-failed": "failed"}
    assert [a["id"] for a in doctor.redelivery_plan(review)] == [8]
    assert doctor.check_hook_deliveries(review).status == "fail"
    assert doctor.check_hook_deliveries(doctor.HookReview()).status == "ok"


def test_channels_match_by_name_or_id():
    channels = [
        {"id": "C1", "name": "alerts", "is_member": True},
        {"id": "C2", "name": "old", "is_member": True, "is_archived": True},
    ]
    wanted = {"C1": ["a/b [new_model]"], "old": ["a/b [slow_ci]"], "gone": ["c/d [new_model]"]}
    assert [
        (r.status, r.detail.split(":")[0]) for r in doctor.check_channels(wanted, channels)
    ] == [
        ("ok", "#C1 (a/b [new_model])"),
        ("fail", "#gone (c/d [new_model])"),
        ("fail", "#old (a/b [slow_ci])"),
    ]
    configs = {"a/b": RepoConfig(), "c/d": RepoConfig(slow_ci=SlowCiConfig(channel="#ci"))}
    assert doctor.wanted_channels(configs) == {
        "new-model-notification": ["a/b [new_model]", "c/d [new_model]"],
        "ci": ["c/d [slow_ci]"],
    }


def test_owners_lint_errors_are_a_warning_counted():
    config = RepoConfig()
    result = doctor.check_owners(REPO, "main", config, "docs/[ @writer\n* @a\n", ["README.md"])
    assert result.status == "warn"
    assert "1 error(s)" in result.detail and "bot codeowners lint" in result.detail


def test_store_writable_current_and_counted(tmp_path):
    database = tmp_path / "bot.sqlite3"
    assert doctor.check_store(str(database))[0].status == "warn"  # not made yet
    assert not database.exists()  # and the doctor did not make it
    conn = connect(str(database))
    now = time.time()
    conn.execute(
        "INSERT INTO deliveries (id, event, status, received_at, finished_at)"
        " VALUES ('a', 'push', 'failed', ?, ?), ('b', 'push', 'failed', ?, ?)",
        (now, now, now - 3 * 86400, now - 3 * 86400),
    )
    conn.execute(
        "INSERT INTO outbox (key, kind, payload, status, created_at) VALUES"
        " ('k1', 'slack', '{}', 'pending', 0), ('k2', 'slack', '{}', 'failed', 0)"
    )
    conn.commit()
    conn.close()
    results = {r.check: r for r in doctor.check_store(str(database), now=now)}
    assert results["store"].status == "ok"
    assert f"schema {len(MIGRATIONS)}" in results["store"].detail
    assert results["processing"] == doctor.warn(
        "processing", "1 deliveries failed in the last 24 h (bot deliveries --failed)"
    )
    assert results["outbox"].detail.startswith("1 waiting, 1 failed")
    with sqlite3.connect(database) as raw:
        assert raw.execute("SELECT COUNT(*) FROM effects").fetchone()[0] == 0  # rolled back
        raw.execute(f"PRAGMA user_version = {len(MIGRATIONS) - 1}")
    [behind] = doctor.check_store(str(database))
    assert behind.status == "fail" and "behind this bot's" in behind.detail


def test_env_cache_counts_ready_environments(tmp_path):
    cache = tmp_path / "envs"
    assert doctor.check_env_cache(str(cache), None).status == "ok"
    ready = cache / "acme__widgets" / "abc"
    ready.mkdir(parents=True)
    (ready / ".ready").write_text("")
    (ready / "big").write_bytes(b"x" * 10_000)
    (cache / "acme__widgets" / "half-built").mkdir()
    result = doctor.check_env_cache(str(cache), None)
    assert result.detail.startswith(f"{cache}: 1 environment(s), ")
    assert doctor.check_env_cache(str(cache), "/usr/bin/python3").detail.startswith("not used")


# --------------------------------------------------------------------------- hostile text


async def test_a_bot_toml_that_is_not_utf8_is_that_repositorys_fail(harness):
    make_repo(harness)
    harness.github.create_repo(
        "acme/latin1", files={".github/bot.toml": "# caf\xe9\n[reviewers]\n".encode("latin-1")}
    )
    code, lines = await run_doctor(app_settings(harness))
    assert code == 1
    config = lines_of(lines, "config")
    assert f"ok    config       {REPO}: no .github/bot.toml on main: the defaults" in config
    assert (
        "FAIL  config       acme/latin1:.github/bot.toml: not UTF-8 text (byte 0xe9 at offset 5)"
        " (on main)"
    ) in config
    assert not any(line.startswith("ok    owners       acme/latin1") for line in lines)


async def test_an_owners_file_that_is_not_utf8_is_a_fail_of_the_owners_check(harness):
    harness.github.create_repo(REPO, files={".github/review-owners": b"* @m\xffaint\n"})
    code, lines = await run_doctor(app_settings(harness))
    assert code == 1
    assert lines_of(lines, "owners") == [
        f"FAIL  owners       {REPO}:.github/review-owners: not UTF-8 text (byte 0xff at offset 4)"
    ]


async def test_control_characters_from_github_and_slack_are_shown_escaped(harness):
    make_repo(harness)
    harness.github.fail_next(
        "GET",
        r"/contents/\.github/bot\.toml",
        403,
        body={"message": "\x1b[2J\x1b]0;owned\x07gone\rFAKE ok line\n\x9b31m"},
    )
    harness.slack.team = "\x1b[31mred\r\u202eteam"
    code, lines = await run_doctor(app_settings(harness))
    assert code == 1
    text = "\n".join(lines)
    for raw in ("\x1b", "\x07", "\r", "\x9b", "\u202e"):
        assert raw not in text
    assert (
        f"FAIL  config       {REPO}: cannot read .github/bot.toml (403:"
        " \\x1b[2J\\x1b]0;owned\\x07gone\\rFAKE ok line\\n\\x9b31m)"
    ) in lines
    [slack] = lines_of(lines, "slack")
    assert "in \\x1b[31mred\\r\\u202eteam," in slack


def test_result_lines_escape_what_a_terminal_would_obey():
    result = doctor.fail("config", "o/r\x1b[1A\x1b[2K: ok\u2028\x00\x7f\\ tab\there")
    assert result.line() == (
        "FAIL  config       o/r\\x1b[1A\\x1b[2K: ok\\u2028\\x00\\x7f\\ tab\\there"
    )
    assert result.as_json()["detail"] == "o/r\x1b[1A\x1b[2K: ok\u2028\x00\x7f\\ tab\there"


def test_a_host_that_cannot_confine_fails_with_the_words_a_pull_request_gets() -> None:
    missing = confine.detect({"PATH": "/nonexistent"})
    result = doctor.check_confinement(missing)
    assert result.status == "fail"
    assert result.detail == missing.refusal
    assert "apt-get install bubblewrap" in result.detail


def test_unconfined_jobs_warn_at_every_run() -> None:
    result = doctor.check_confinement(confine.detect({"BOT_UNCONFINED_JOBS": "yes"}))
    assert result.status == "warn" and "BOT_UNCONFINED_JOBS" in result.detail


def test_a_confining_host_is_ok() -> None:
    result = doctor.check_confinement(confine.Confinement("bwrap", bwrap="/usr/bin/bwrap"))
    assert result.status == "ok" and "bubblewrap" in result.detail
