"""Local, token-free commands on a real git checkout: new-models, owners, reviewers, lint."""

from __future__ import annotations

import json
import subprocess

import pytest

from bot.cli import main

ENV = {"PATH": "/usr/bin:/bin", "GIT_CONFIG_NOSYSTEM": "1", "HOME": "/nonexistent"}
OWNERS = "* @core\n/model_lib/ @models\n/model_lib/models/gpt2/ @gpt2-owner\n/docs/ @docs\n"


def git(cwd, *args):
    ident = ["-c", "user.name=Dev", "-c", "user.email=dev@example.invalid"]
    subprocess.run(["git", *ident, *args], cwd=cwd, check=True, env=ENV, capture_output=True)


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    (repo / ".github").mkdir(parents=True)
    (repo / ".github" / "review-owners").write_text(OWNERS)
    (repo / "model_lib" / "models" / "gpt2").mkdir(parents=True)
    (repo / "model_lib" / "models" / "gpt2" / "modeling_gpt2.py").write_text("x = 1\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "start")
    monkeypatch.chdir(repo)
    for name in ("SLACK_BOT_TOKEN", "SLACK_WEBHOOK_URL"):
        monkeypatch.delenv(name, raising=False)
    return repo


def add_model(repo, name):
    folder = repo / "model_lib" / "models" / name
    folder.mkdir(parents=True)
    (folder / f"modeling_{name}.py").write_text("".join(f"line {i}\n" for i in range(30)))
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", f"Add {name}")


def test_new_models_lists_what_the_range_adds(checkout, capsys):
    add_model(checkout, "mamba")
    assert main(["new-models", "--repo-url", "https://github.com/o/r"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["new_models"] == ["mamba"]
    (message,) = report["messages"]
    assert message["text"] == "New model: mamba"
    assert f"<https://github.com/o/r/commit/{report['head']}|New model: mamba>" in json.dumps(
        message
    )


def test_new_models_notify_without_slack_logs_it(checkout, capsys):
    add_model(checkout, "mamba")
    assert main(["new-models", "--notify"]) == 0
    assert "sent to Slack via log" in capsys.readouterr().err


def test_owners_explains_the_deciding_rule(checkout, capsys):
    assert main(["owners", "model_lib/models/gpt2/modeling_gpt2.py", "README.md"]) == 0
    out = capsys.readouterr().out
    assert (
        "model_lib/models/gpt2/modeling_gpt2.py: @gpt2-owner  (line 3: /model_lib/models/gpt2/)"
        in out
    )
    assert "README.md: @core  (line 1: *)" in out
    assert main(["owners", "--json", "model_lib/x.py"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["rule"]["line"] == 2


def test_reviewers_for_a_local_branch(checkout, capsys):
    git(checkout, "checkout", "-q", "-b", "feature")
    add_model(checkout, "mamba")
    (checkout / "model_lib" / "models" / "gpt2" / "modeling_gpt2.py").write_text("x = 2\ny = 3\n")
    git(checkout, "commit", "-qam", "tweak")
    assert main(["reviewers", "--base", "main", "--author", "outsider", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert [r["owner"] for r in plan["request"]] == ["@models", "@gpt2-owner"]
    assert plan["request"][0]["reason"].startswith("@models: ")
    assert main(["reviewers", "--base", "main", "--author", "gpt2-owner"]) == 0
    assert "picks their own reviewers" in capsys.readouterr().out


def test_lint_reports_and_fails_on_errors(checkout, capsys):
    assert main(["codeowners", "lint"]) == 0
    out = capsys.readouterr().out
    assert "no-match" in out  # /docs/ matches nothing
    (checkout / "broken").write_text("[abc] @x\n")
    assert main(["codeowners", "lint", "broken"]) == 1
    assert "error" in capsys.readouterr().out


def test_new_model_scaffolds_in_its_own_process(tmp_path, capsys):
    import shutil
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    for part in ("model_lib/models/gpt2", "tests/models/gpt2"):
        shutil.copytree(root / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
    assert main(["new-model", "tiny_gpt", "--like", "gpt2", "--root", str(tmp_path)]) == 0
    created = capsys.readouterr().out.split()
    assert str(tmp_path / "model_lib/models/tiny_gpt/modeling_tiny_gpt.py") in created
    assert (tmp_path / "tests/models/tiny_gpt/test_modeling_tiny_gpt.py").exists()
    assert main(["new-model", "tiny_gpt", "--like", "gpt2", "--root", str(tmp_path)]) == 2
    assert "already exists" in capsys.readouterr().err
