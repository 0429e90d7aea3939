"""`bot new-models` and `bot new-model` on a real git checkout, with no token."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from bot.ops.cli import main
from tests.support.checkout import add_model

ROOT = Path(__file__).resolve().parents[3]


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


def test_new_model_scaffolds_in_its_own_process(tmp_path, capsys):
    for part in ("model_lib/models/gpt2", "tests/models/gpt2"):
        shutil.copytree(ROOT / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
    assert main(["new-model", "tiny_gpt", "--like", "gpt2", "--root", str(tmp_path)]) == 0
    created = capsys.readouterr().out.split()
    assert str(tmp_path / "model_lib/models/tiny_gpt/modeling_tiny_gpt.py") in created
    assert (tmp_path / "tests/models/tiny_gpt/test_modeling_tiny_gpt.py").exists()
    assert main(["new-model", "tiny_gpt", "--like", "gpt2", "--root", str(tmp_path)]) == 2
    assert "already exists" in capsys.readouterr().err
