"""`bot owners`, `bot reviewers`, `bot codeowners lint` on a real git checkout, with no token."""

from __future__ import annotations

import json
import time

import pytest

from bot.ops.cli import main
from tests.support.checkout import add_model, git

BINARY = bytes(range(256)) * 4


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


@pytest.mark.parametrize(
    ("files", "argv", "message"),
    [
        ({}, ["owners", "--file", "absent", "x"], "owners file not found: absent"),
        ({"owners": BINARY}, ["owners", "--file", "owners", "x.py"], "owners is not UTF-8 text"),
        ({"owners": BINARY}, ["codeowners", "lint", "owners"], "owners is not UTF-8 text"),
    ],
    ids=["owners-missing", "owners-binary", "lint-binary"],
)
def test_bad_owners_files_are_one_line_errors(tmp_path, monkeypatch, capsys, files, argv, message):
    monkeypatch.chdir(tmp_path)
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_an_owners_file_over_githubs_size_is_refused_quickly(tmp_path, monkeypatch, capsys):
    from codeowners import MAX_BYTES

    monkeypatch.chdir(tmp_path)
    with open(tmp_path / "owners", "wb") as handle:
        line = b"/some/deep/path/*.py @owner-one @owner-two\n"
        handle.write(line * (MAX_BYTES // len(line) + 10))
    started = time.monotonic()
    assert main(["owners", "--file", "owners", "x.py"]) == 2
    assert "larger than 3 MB" in capsys.readouterr().err
    assert time.monotonic() - started < 5  # refused before parsing, not after
