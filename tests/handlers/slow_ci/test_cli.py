"""`bot slow-models` and `bot run-slow` on a real checkout, with real git and real pytest."""

from __future__ import annotations

import json

import pytest

from bot.ops.cli import main
from tests.support.checkout import git


def _tests(checkout, folder: str, body: str) -> None:
    path = checkout / "tests" / folder
    path.mkdir(parents=True, exist_ok=True)
    (path / "test_it.py").write_text(body)
    git(checkout, "add", "-A")
    git(checkout, "commit", "-qm", f"tests for {folder}")


def test_slow_models_names_the_folders_and_every_dropped_name(checkout, capsys):
    _tests(checkout, "models/gpt2", "def test_ok():\n    assert True\n")
    argv = ["slow-models", "run-slow: gpt2, GPT2, bert; rm -rf /, $(id)", "--base", "HEAD"]
    assert main([*argv, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["folders"] == ["models/gpt2"]
    dropped = {d["name"]: d["reason"] for d in report["dropped"]}
    assert "no tests/models/rm" in dropped["rm"]
    assert "not a valid name" in dropped["bert;"]
    assert "not a valid name" in dropped["$(id)"]


def test_slow_models_takes_a_model_the_branch_adds(checkout, capsys):
    git(checkout, "checkout", "-q", "-b", "feature")
    folder = checkout / "model_lib" / "models" / "tiny"
    folder.mkdir(parents=True)
    (folder / "modeling_tiny.py").write_text("x = 1\n")
    _tests(checkout, "models/tiny", "def test_ok():\n    assert True\n")
    assert main(["slow-models", "run-slow", "--base", "main"]) == 0
    assert "models/tiny (added by this PR)" in capsys.readouterr().out


@pytest.mark.parametrize(
    "comment",
    [
        "please run-slow: gpt2",
        "lgtm",
        "gpt2",
        "    run-slow: gpt2",
        "> run-slow: gpt2",
        "run-slowly gpt2",
    ],
)
def test_slow_models_says_when_a_comment_would_not_start_a_run(checkout, capsys, comment):
    _tests(checkout, "models/gpt2", "def test_ok():\n    assert True\n")
    assert main(["slow-models", comment, "--base", "HEAD"]) == 1
    out = capsys.readouterr().out
    assert "would not start a run" in out
    assert "models/gpt2" not in out
    assert main(["slow-models", comment, "--base", "HEAD", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert (report["triggers"], report["folders"], report["dropped"]) == (False, [], [])
    assert report["reason"]


def test_slow_models_takes_bare_names_only_with_their_own_flag(checkout, capsys):
    _tests(checkout, "models/gpt2", "def test_ok():\n    assert True\n")
    argv = ["slow-models", "--names", "gpt2", "bert", "--base", "HEAD", "--json"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["triggers"] is True
    assert report["folders"] == ["models/gpt2"]
    assert [d["name"] for d in report["dropped"]] == ["bert"]


def test_slow_models_wants_a_comment_or_names_not_both(checkout, capsys):
    with pytest.raises(SystemExit) as both:
        main(["slow-models", "run-slow: gpt2", "--names", "gpt2"])
    with pytest.raises(SystemExit) as neither:
        main(["slow-models"])
    assert both.value.code == neither.value.code == 2


def test_slow_models_says_what_run_slow_failed_would_rerun(checkout, capsys):
    _tests(checkout, "models/gpt2", "def test_ok():\n    assert True\n")
    assert main(["slow-models", "run-slow --failed gpt2", "--base", "HEAD", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["triggers"], report["failed_only"], report["folders"]) == (True, True, [])
    assert main(["slow-models", "run-slow --failed", "--base", "HEAD"]) == 0
    assert "failed in the pull request's previous run" in capsys.readouterr().out


def test_run_slow_runs_the_jobs_here_and_reruns_only_what_failed(checkout, capsys):
    _tests(
        checkout,
        "models/gpt2",
        "def test_ok():\n    assert True\n\n\ndef test_bad():\n    assert 6 == 7\n",
    )
    assert main(["run-slow", "gpt2", "--base", "HEAD"]) == 1
    out = capsys.readouterr().out
    assert "single-gpu_run_models_gpu_models_gpt2  failed" in out
    assert "assert 6 == 7" in out
    assert "no multi-GPU machine" in out
    assert main(["run-slow", "--failed"]) == 1
    captured = capsys.readouterr()
    assert "test_bad" in captured.err and "test_ok" not in captured.err  # only the failure ran
