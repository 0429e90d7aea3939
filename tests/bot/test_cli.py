"""The command line: one-line errors, one-shot handling, operator commands over a real store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.ops.cli import main
from bot.store import deliveries as deliveries_db
from bot.store import outbox as outbox_db
from bot.store.engine import Store

ROOT = Path(__file__).resolve().parents[2]
PAYLOAD = ROOT / "tests" / "fixtures" / "issue_comment.created.json"


@pytest.fixture
def env(monkeypatch, tmp_path):
    for name in ("GITHUB_TOKEN", "GITHUB_APP_ID", "GITHUB_PRIVATE_KEY", "SLACK_BOT_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BOT_DATABASE", str(tmp_path / "bot.sqlite3"))
    monkeypatch.setenv("BOT_LOG_FORMAT", "text")
    monkeypatch.setenv("GITHUB_API_URL", "http://127.0.0.1:9")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["handle", "push", "missing.json"], "payload file not found: missing.json"),
        (["handle", "push"], "give both EVENT and PAYLOAD.json"),
        (["handle"], "run inside GitHub Actions"),
        (["replay", "nope"], "no stored delivery 'nope'"),
        (["config", "check", "absent.toml"], "config file not found"),
        (["outbox", "--retry", "3"], "no undelivered outbox item 3"),
    ],
)
def test_errors_are_one_line_and_exit_2(env, capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_handle_rejects_non_json_payload(env, capsys):
    (env / "bad.json").write_text("[1, 2]")
    assert main(["handle", "push", "bad.json"]) == 2
    assert "does not hold a JSON object" in capsys.readouterr().err


def test_handle_runs_the_handlers_once(env, capsys):
    assert main(["handle", "issue_comment", str(PAYLOAD), "--dry-run"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["event"] == "issue_comment"
    assert summary["handlers_failed"] == []
    assert "handlers.help.handler.on_comment" in summary["handlers_run"]


def test_handle_inside_github_actions(env, capsys, monkeypatch):
    push = {
        "ref": "refs/heads/feature",
        "before": "a" * 40,
        "after": "b" * 40,
        "repository": {"full_name": "o/r", "default_branch": "main"},
    }
    (env / "event.json").write_text(json.dumps(push))
    monkeypatch.setenv("GITHUB_EVENT_NAME", "push")
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(env / "event.json"))
    monkeypatch.setenv("GITHUB_RUN_ID", "77")
    assert main(["handle"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["delivery"] == "actions-77"
    assert sorted(summary["handlers_run"]) == [
        "handlers.benchmarks.handler.on_push",  # no [benchmarks] command: it runs nothing
        "handlers.new_model.handler.on_push",
    ]


def test_config_check_and_show(env, capsys):
    (env / "ok.toml").write_text("[reviewers]\ncount = 3\n")
    assert main(["config", "check", "ok.toml", "-v"]) == 0
    out = capsys.readouterr().out
    assert "ok.toml: ok" in out
    assert '"count": 3' in out
    (env / "bad.toml").write_text("[reviewers]\ncount = -1\n")
    assert main(["config", "check", "bad.toml"]) == 2
    assert "'reviewers.count' must be at least 1" in capsys.readouterr().err
    assert main(["config", "show"]) == 0
    assert "[new_model]" in capsys.readouterr().out


def test_config_check_shows_every_schedule_and_names_a_bad_cron(env, capsys):
    (env / "nightly.toml").write_text(
        '[[scheduled_ci]]\nname = "nightly"\ncron = "17 2 * * *"\n'
        '[[scheduled_ci]]\nname = "weekly"\ncron = "0 4 * * sun"\nchannel = "ci"\n'
    )
    assert main(["config", "check", "nightly.toml", "-v"]) == 0
    shown = json.loads(capsys.readouterr().out.split(": ok\n", 1)[1])
    assert [s["name"] for s in shown["scheduled_ci"]] == ["nightly", "weekly"]
    (env / "bad.toml").write_text('[[scheduled_ci]]\nname = "n"\ncron = "17 2 * *"\n')
    assert main(["config", "check", "bad.toml"]) == 2
    assert "'scheduled_ci[1].cron'" in capsys.readouterr().err


def _store_delivery(env: Path, delivery_id: str, *, status: str, error: str | None = None) -> None:
    store = Store(str(env / "bot.sqlite3"))
    delivery = deliveries_db.Delivery(
        id=delivery_id,
        event="push",
        headers={},
        body=b"{}",
        repo="o/r",
        received_at=time.time(),
    )
    store.call_sync(lambda conn: deliveries_db.insert_deliveries(conn, [delivery]))
    store.call_sync(
        lambda conn: deliveries_db.finish_delivery(
            conn, delivery_id, status=status, attempts=5, done_callbacks=(), error=error
        )
    )
    store.close()


def test_deliveries_failed_shows_the_error_and_replay_requeues(env, capsys):
    _store_delivery(env, "d-ok", status="done")
    _store_delivery(env, "d-bad", status="failed", error="Traceback: RuntimeError: boom")
    assert main(["deliveries", "--failed"]) == 0
    out = capsys.readouterr().out
    assert "d-bad" in out
    assert "RuntimeError: boom" in out
    assert "d-ok" not in out
    assert main(["deliveries", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert (listing["total"], listing["shown"], listing["truncated"]) == (2, 2, False)
    assert {r["id"]: r["status"] for r in listing["deliveries"]} == {
        "d-ok": "done",
        "d-bad": "failed",
    }
    assert main(["replay", "d-bad"]) == 0
    store = Store(str(env / "bot.sqlite3"))
    replayed = store.call_sync(lambda conn: deliveries_db.get_delivery(conn, "d-bad"))
    store.close()
    assert (replayed.status, replayed.attempts, replayed.error) == ("stored", 0, None)


def test_outbox_lists_pending_and_failed(env, capsys):
    store = Store(str(env / "bot.sqlite3"))
    store.call_sync(
        lambda conn: outbox_db.enqueue_outbox(conn, key="k1", kind="slack", payload={"text": "hi"})
    )
    store.close()
    assert main(["outbox"]) == 0
    assert "k1" in capsys.readouterr().out


def test_an_unusable_database_is_one_line(env, capsys, monkeypatch):
    (env / "not-a-folder").write_text("x")
    monkeypatch.setenv("BOT_DATABASE", str(env / "not-a-folder" / "bot.sqlite3"))
    assert main(["deliveries"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert len(err.strip().splitlines()) == 1


# ------------------------------------------------------------------ hostile input files


def _write(env: Path, name: str, data: bytes) -> str:
    (env / name).write_bytes(data)
    return name


BINARY = bytes(range(256)) * 4


@pytest.mark.parametrize(
    ("files", "argv", "message"),
    [
        ({"b.toml": BINARY}, ["config", "check", "b.toml"], "b.toml is not UTF-8 text"),
        (
            {"deep.toml": b"a = " + b"[" * 5000 + b"]" * 5000},
            ["config", "check", "deep.toml"],
            "nested too deeply",
        ),
        ({"big.toml": b"a = " + b"9" * 5000}, ["config", "check", "big.toml"], "not valid TOML"),
        (
            {"deep.json": b"[" * 100_000 + b"]" * 100_000},
            ["handle", "push", "deep.json"],
            "nested too deeply",
        ),
        (
            {"push.json": b'{"ref": "refs/heads/main", "repository": "x"}'},
            ["handle", "push", "push.json"],
            "repository is a string, expected an object",
        ),
        (
            {"p.json": b'{"action": "created"}', "c.toml": BINARY},
            ["handle", "ping", "p.json", "--config", "c.toml"],
            "c.toml is not UTF-8 text",
        ),
    ],
    ids=[
        "config-binary",
        "config-deep",
        "config-huge-int",
        "handle-deep-json",
        "handle-poison-push",
        "handle-binary-config",
    ],
)
def test_hostile_input_files_are_one_line_errors(env, capsys, files, argv, message):
    for name, data in files.items():
        _write(env, name, data)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_deliveries_says_when_there_are_more_than_it_shows(env, capsys):
    for i in range(60):
        _store_delivery(env, f"d-{i:02}", status="done")
    assert main(["deliveries", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert (listing["total"], listing["shown"], listing["truncated"]) == (60, 50, True)
    assert main(["deliveries", "--limit", "100", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["truncated"] is False
    assert main(["deliveries"]) == 0
    assert "10 more" in capsys.readouterr().out


def test_settings_read_the_env_file_bot_setup_wrote_and_the_environment_wins(tmp_path, monkeypatch):
    from bot.ops.cli import _settings

    (tmp_path / ".env").write_text(
        "# written by bot setup\nGITHUB_WEBHOOK_SECRET=from-the-file-0123456789\n"
        "BOT_HANDLE='filebot'\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GITHUB_WEBHOOK_SECRET", raising=False)
    monkeypatch.setenv("BOT_HANDLE", "envbot")
    settings = _settings()
    assert settings.webhook_secret == "from-the-file-0123456789"
    assert settings.handle == "envbot"


@pytest.fixture
def demo(env, monkeypatch):
    """`bot run` without credentials, its scenario replaced by one that raises what it is given."""
    import tests.sandbox.scenario as scenario

    monkeypatch.delenv("GITHUB_WEBHOOK_SECRET", raising=False)
    raised: list[BaseException] = []

    def run_demo(*, host: str, port: int) -> int:
        raise raised[0]

    monkeypatch.setattr(scenario, "run_demo", run_demo)
    return raised


@pytest.mark.parametrize("exc", [TimeoutError(), TimeoutError("settle")])
def test_run_reports_a_timeout_in_its_scenario_as_a_timeout(demo, capsys, exc):
    demo.append(exc)
    assert main(["run", "--port", "18080"]) == 1
    err = capsys.readouterr().err
    assert "timed out" in err
    assert "cannot listen" not in err and "None" not in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_run_still_says_when_it_cannot_listen(demo, capsys):
    import errno

    demo.append(OSError(errno.EADDRINUSE, "Address already in use"))
    assert main(["run", "--port", "18080"]) == 2
    assert "cannot listen on 127.0.0.1:18080: Address already in use" in capsys.readouterr().err


def test_run_does_not_blame_listening_for_another_os_error(demo, capsys):
    demo.append(ConnectionRefusedError(111, "Connection refused"))
    assert main(["run", "--port", "18080"]) == 1
    err = capsys.readouterr().err
    assert "cannot listen" not in err and "Connection refused" in err


def test_bot_run_outside_a_clone_without_credentials_says_where_the_demo_is(tmp_path):
    # The stand-in is not part of the installed package: an installed bot with no credentials
    # says what to set, or where the demo comes from, and starts nothing.
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    done = subprocess.run(
        [sys.executable, "-m", "bot", "run", "--port", "0"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "the sandbox demo comes only with a clone" in done.stderr
    assert "GITHUB_APP_ID" in done.stderr
