"""`bot bisect` and `bot scheduled-ci show` on real git repositories with real pytest runs: a
test that breaks at a known commit is traced to it, a flaky one and one already broken are told
apart, and bad input is one clear line."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from bot.ops.cli import main
from handlers.scheduled_ci.cli import node_id_problem, outcomes_for
from tests.support.checkout import ENV, git

TEST_FILE = "tests/models/tiny/test_it.py"
TESTS = """\
from pathlib import Path

from tiny import VALUE, OTHER

COUNTER = Path({counter!r})


def test_stable():
    assert True


def test_breaks():
    assert VALUE == 1, "VALUE changed"


def test_breaks_too():
    assert OTHER == "a"


def test_flaky():
    runs = int(COUNTER.read_text()) + 1 if COUNTER.exists() else 1
    COUNTER.write_text(str(runs))
    assert runs % 2 == 0


def test_already_broken():
    assert False
"""


def commit(repo: Path, message: str, files: dict[str, str]) -> str:
    for name, text in files.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)
    return head(repo)


def head(repo: Path) -> str:
    done = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, env=ENV, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


@pytest.fixture
def history(tmp_path, monkeypatch):
    """Eight commits after `good`; the fourth sets VALUE and OTHER to what the tests refuse."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    counter = tmp_path / "flaky-count"
    good = commit(
        repo,
        "start",
        {
            "tiny.py": 'VALUE = 1\nOTHER = "a"\n',
            TEST_FILE: TESTS.format(counter=str(counter)),
            "tests/models/tiny/conftest.py": "import sys, pathlib\n"
            "sys.path.insert(0, str(pathlib.Path(__file__).parents[3]))\n",
        },
    )
    shas = []
    for i in range(1, 9):
        files = {f"notes/{i}.txt": f"{i}\n"}
        if i == 4:
            files["tiny.py"] = 'VALUE = 2\nOTHER = "b"\n'
        shas.append(commit(repo, f"change {i}", files))
    monkeypatch.chdir(repo)
    monkeypatch.delenv("BOT_TEST_PYTHON", raising=False)
    return repo, good, shas


def bisect_json(capsys, *argv: str) -> dict[str, dict]:
    assert main(["bisect", *argv, "--json"]) == 0
    return {answer["test"]: answer for answer in json.loads(capsys.readouterr().out)}


def test_bisect_finds_the_commit_that_broke_tests_and_tells_flaky_and_broken_apart(history, capsys):
    repo, good, shas = history
    tests = [f"{TEST_FILE}::{name}" for name in
             ("test_breaks", "test_breaks_too", "test_flaky", "test_already_broken",
              "test_stable")]  # fmt: skip
    answers = bisect_json(capsys, *tests, "--good", good, "--bad", "HEAD")
    breaks, breaks_too, flaky, broken, stable = (answers[t] for t in tests)
    assert (breaks["verdict"], breaks["first_bad"]) == ("new", shas[3])
    assert (breaks_too["verdict"], breaks_too["first_bad"]) == ("new", shas[3])
    # 3 runs at bad, 1 at good, then ceil(log2(8)) = 3 bisect steps, run together
    assert breaks["runs"] == breaks_too["runs"] == 7
    steps = [(e["sha"], e["step"]) for e in breaks["evidence"]]
    assert steps[:4] == [(shas[-1], "bad")] * 3 + [(good, "good")]
    assert [e["step"] for e in breaks["evidence"][4:]] == ["bisect"] * 3
    assert breaks["evidence"][4:] == breaks_too["evidence"][4:]
    assert {e["sha"]: e["outcome"] for e in breaks["evidence"]}[shas[3]] == "failed"
    assert {e["sha"]: e["outcome"] for e in breaks["evidence"]}[shas[2]] == "passed"
    assert (flaky["verdict"], flaky["first_bad"], flaky["runs"]) == ("flaky", None, 2)
    assert (broken["verdict"], broken["runs"]) == ("pre-existing", 4)
    assert (stable["verdict"], stable["runs"]) == ("passes", 3)
    assert set(breaks) == {"test", "verdict", "first_bad", "runs", "reason", "evidence"}
    # Every worktree is gone and the checkout is as it was.
    listed = subprocess.run(
        ["git", "worktree", "list"], cwd=repo, env=ENV, capture_output=True, text=True, check=True
    )
    assert len(listed.stdout.splitlines()) == 1
    assert head(repo) == shas[-1]


def test_bisect_prints_a_table_without_json(history, capsys):
    _, good, shas = history
    assert main(["bisect", f"{TEST_FILE}::test_breaks", "--good", good, "--bad", "HEAD",
                 "--reruns", "1"]) == 0  # fmt: skip
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "8 first-parent commits after good"
    assert out[1].split() == ["verdict", "first", "bad", "runs", "test"]
    assert out[2].split() == ["new", shas[3][:12], "5", f"{TEST_FILE}::test_breaks"]


def test_a_commit_that_cannot_be_collected_is_not_blamed(tmp_path, monkeypatch, capsys):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    test = {TEST_FILE: "from tiny import VALUE\n\ndef test_it():\n    assert VALUE == 1\n"}
    conftest = "tests/conftest.py"
    path_line = "import sys, pathlib\nsys.path.insert(0, str(pathlib.Path(__file__).parents[1]))\n"
    good = commit(repo, "start", {"tiny.py": "VALUE = 1\n", conftest: path_line, **test})
    broken = commit(repo, "broken build", {conftest: path_line + "this is not python\n"})
    bad = commit(repo, "fix build, break test", {conftest: path_line, "tiny.py": "VALUE = 2\n"})
    monkeypatch.chdir(repo)
    answers = bisect_json(capsys, f"{TEST_FILE}::test_it", "--good", good, "--bad", "HEAD",
                          "--reruns", "1")  # fmt: skip
    (answer,) = answers.values()
    assert (answer["verdict"], answer["first_bad"]) == ("unknown", None)
    assert "could not be tested (missing)" in answer["reason"]
    assert {"sha": broken, "outcome": "missing", "step": "bisect"} in answer["evidence"]
    assert bad == head(repo)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["tests/x.py::t", "--good", "nope", "--bad", "HEAD"], "--good 'nope' is not a commit"),
        (["tests/x.py::t", "--good", "HEAD~1", "--bad", "nope"], "--bad 'nope' is not a commit"),
        (["../x.py::t", "--good", "HEAD~1", "--bad", "HEAD"], "is not a test to bisect"),
        (["/etc/x.py", "--good", "HEAD~1", "--bad", "HEAD"], "is not a test to bisect"),
        (["tests/../x.py", "--good", "HEAD~1", "--bad", "HEAD"], "is not a test to bisect"),
        (["src/x.py::t", "--good", "HEAD~1", "--bad", "HEAD"], "a relative path under tests/"),
        (["--", "-x", "--good", "HEAD~1", "--bad", "HEAD"], None),
        (["tests/x.py::t", "--good", "HEAD", "--bad", "HEAD"], "the same commit"),
        (["tests/x.py::t", "--good", "HEAD", "--bad", "HEAD~2"], "not on the first-parent"),
        (["tests/x.py::t", "--good", "HEAD~1", "--bad", "HEAD", "--reruns", "0"], "--reruns"),
    ],
)
def test_bad_input_is_one_clear_line(history, capsys, argv, message):
    if argv[0] == "--":
        with pytest.raises(SystemExit):  # argparse: an option it does not know
            main(["bisect", *argv])
        return
    assert main(["bisect", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert message in err


def test_a_dirty_tree_is_refused(history, capsys):
    repo, good, _ = history
    (repo / "tiny.py").write_text("VALUE = 3\n")
    assert main(["bisect", f"{TEST_FILE}::test_breaks", "--good", good, "--bad", "HEAD"]) == 2
    assert "uncommitted changes" in capsys.readouterr().err


def test_a_good_commit_off_the_first_parent_line_is_refused(history, capsys):
    repo, good, _ = history
    git(repo, "checkout", "-q", "-b", "side", good)
    side = commit(repo, "side work", {"side.txt": "x\n"})
    git(repo, "checkout", "-q", "main")
    git(repo, "merge", "-q", "--no-ff", "-m", "merge side", "side")
    assert main(["bisect", f"{TEST_FILE}::test_breaks", "--good", side, "--bad", "HEAD"]) == 2
    assert "is not on the first-parent history of --bad HEAD" in capsys.readouterr().err


def test_a_test_that_does_not_run_at_bad_is_an_error_not_a_verdict(history, capsys):
    _, good, _ = history
    argv = [f"{TEST_FILE}::test_nope", "--good", good, "--bad", "HEAD", "--reruns", "1"]
    assert main(["bisect", *argv]) == 2
    assert "pytest did not run tests/models/tiny/test_it.py::test_nope at --bad" in (
        capsys.readouterr().err
    )


def test_an_interpreter_that_is_not_there_is_refused(history, capsys, monkeypatch):
    _, good, _ = history
    monkeypatch.setenv("BOT_TEST_PYTHON", "/nonexistent/python")
    assert main(["bisect", f"{TEST_FILE}::test_breaks", "--good", good, "--bad", "HEAD"]) == 2
    assert "BOT_TEST_PYTHON='/nonexistent/python' is not an interpreter" in capsys.readouterr().err


def test_node_ids_and_outcomes():
    assert node_id_problem("tests/models/bert/test_x.py::T::test_y[a/b]") is None
    assert node_id_problem("tests/models/bert") is None
    assert node_id_problem("tests/x.py::t\n--rootdir=/") is not None
    results = [
        ("tests/a.py::t1", "passed"),
        ("tests/a.py::t2[x]", "failed"),
        ("tests/a.py::t2[y]", "passed"),
        ("tests/b.py::t", "skipped"),
        ("tests/c.py::t", "error"),
    ]
    assert outcomes_for(
        ["tests/a.py", "tests/a.py::t1", "tests/a.py::t2", "tests/b.py::t", "tests/c.py", "x"],
        results,
    ) == {
        "tests/a.py": "failed",
        "tests/a.py::t1": "passed",
        "tests/a.py::t2": "failed",
        "tests/b.py::t": "skipped",
        "tests/c.py": "error",
        "x": "missing",
    }


# --------------------------------------------------------------------------- scheduled-ci show


def test_show_lists_each_schedule_with_its_next_fire_time_and_folders(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    for folder in ("models/bert", "models/gpt2", "quantization/bnb"):
        (tmp_path / "tests" / folder).mkdir(parents=True)
    config = tmp_path / ".github" / "bot.toml"
    config.parent.mkdir()
    config.write_text(
        '[[scheduled_ci]]\nname = "nightly"\ncron = "17 2 * * *"\nchannel = "ci-daily"\n'
        '[[scheduled_ci]]\nname = "weekly"\ncron = "0 4 * * sun"\n'
        'folders = ["models/b*", "vision/*"]\n'
        'machine_types = ["multi-gpu"]\nbisect = false\n'
    )
    assert main(["scheduled-ci", "show", "--after", "2024-05-01T03:00"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "nightly: 17 2 * * *  next 2024-05-02 02:17 UTC",
        "  folders: every model folder and quantization/* (3 here)",
        "  machine types: single-gpu, multi-gpu",
        "  report: #ci-daily",
        "  a new failure gets: 3 re-runs, the previous run's commit, bisect",
        "weekly: 0 4 * * sun  next 2024-05-05 04:00 UTC",
        "  folders: models/b*, vision/* (1 here)",
        "  warning: 'vision/*' matches no folder under tests/ here",
        "  machine types: multi-gpu",
        "  report: none",
        "  a new failure gets: 3 re-runs, the previous run's commit",
    ]


def test_show_without_schedules_says_so(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["scheduled-ci", "show"]) == 0
    assert capsys.readouterr().out == "no [[scheduled_ci]] in .github/bot.toml\n"
    assert main(["scheduled-ci", "show", "--after", "yesterday"]) == 2
    assert "--after takes an ISO 8601 time" in capsys.readouterr().err
