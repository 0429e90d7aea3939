"""`bot style` on a real checkout: the base's ruff configuration, a commit only with `--commit`."""

from __future__ import annotations

import subprocess

from bot.ops.cli import main
from tests.support.checkout import ENV, git

UGLY = "import sys\nimport os\n\ndef f(a,b):\n  return os.path.join(a,b)\n"


def _branch(checkout, files: dict[str, str]) -> None:
    (checkout / "pyproject.toml").write_text(
        '[tool.ruff]\nline-length = 60\n[tool.ruff.lint]\nselect = ["F", "I"]\n'
    )
    git(checkout, "add", "-A")
    git(checkout, "commit", "-qm", "ruff config")
    git(checkout, "checkout", "-q", "-b", "feature")
    for name, text in files.items():
        (checkout / name).parent.mkdir(parents=True, exist_ok=True)
        (checkout / name).write_text(text)
    git(checkout, "add", "-A")
    git(checkout, "commit", "-qm", "work")


def _head(checkout) -> str:
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=checkout, env=ENV, capture_output=True, text=True
    ).stdout.strip()


def test_bot_style_fixes_the_changed_files_and_commits_only_when_asked(checkout, capsys):
    _branch(checkout, {"pkg/a.py": UGLY, "pkg/b.py": "x = undefined\n"})
    # The branch's own config would allow anything; the merge-base's rules apply.
    (checkout / "pkg" / "ruff.toml").write_text("line-length = 300\n[lint]\nselect = []\n")
    head = _head(checkout)
    assert main(["style", "--base", "main"]) == 1  # an error ruff cannot fix remains
    out = capsys.readouterr().out
    assert "Style fixes applied to 1 file" in out and "not committed" in out
    assert "pkg/b.py:1 F821 Undefined name `undefined`" in out
    fixed = (checkout / "pkg" / "a.py").read_text()
    assert "import sys" not in fixed and "def f(a, b):\n    return" in fixed
    assert _head(checkout) == head

    (checkout / "pkg" / "a.py").write_text(UGLY)
    assert main(["style", "--base", "main", "--commit"]) == 1
    assert "Style fixes were committed to 1 file" in capsys.readouterr().out
    assert _head(checkout) != head


def test_bot_style_on_clean_files_says_nothing_to_fix(checkout, capsys):
    _branch(checkout, {"pkg/a.py": "def f(a, b):\n    return a + b\n"})
    assert main(["style"]) == 0
    assert "Nothing to fix" in capsys.readouterr().out
