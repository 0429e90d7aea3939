"""`/style`'s pure decisions: whether a request runs, which files, which ruff settings, how ruff's
output reads."""

from __future__ import annotations

import json
import tomllib
from typing import Any

import pytest

from bot.kit.command_job import CommandFacts, NewRun, Refusal
from bot.kit.conversation import PullInfo
from handlers.style.config import StyleConfig
from handlers.style.plan import (
    CLOSED_REPLY,
    HEAD_GONE_REPLY,
    NO_FILES_REPLY,
    ConfigProblem,
    StyleFacts,
    StyleResult,
    choose_files,
    cut_diff,
    fixed_count,
    not_authorised_reply,
    plan_run,
    remaining_errors,
    render_comment,
    ruff_settings,
    summary,
    toml_text,
)


@pytest.mark.parametrize(
    ("entry", "kept", "why"),
    [
        ({"filename": "a.py", "status": "added"}, True, None),
        ({"filename": "a/b.py", "status": "modified"}, True, None),
        ({"filename": "a/new.py", "status": "renamed"}, True, None),
        ({"filename": "stubs/x.pyi", "status": "added"}, True, None),
        ({"filename": "gone.py", "status": "removed"}, False, "removed in this pull request"),
        ({"filename": "README.md", "status": "added"}, False, None),
        ({"filename": "nb.ipynb", "status": "added"}, False, None),
        ({"filename": "../escape.py", "status": "added"}, False, "not a plain relative path"),
        ({"filename": "-rf.py", "status": "added"}, False, "not a plain relative path"),
        ({"filename": ".git/hooks/x.py", "status": "added"}, False, "not a plain relative path"),
    ],
)
def test_only_python_files_whose_new_content_is_in_the_head_are_chosen(entry, kept, why):
    choice = choose_files([entry])
    assert (entry["filename"] in choice.files) is kept
    if why:
        assert choice.skipped == ((entry["filename"], why),)


def test_configured_paths_and_the_file_limit_bound_the_choice():
    files = [{"filename": n, "status": "added"} for n in ("src/a.py", "srcx/b.py", "c.py")]
    choice = choose_files(files, ("src/",))
    assert choice.files == ("src/a.py",)
    assert dict(choice.skipped) == {
        "srcx/b.py": "outside the configured paths",
        "c.py": "outside the configured paths",
    }
    assert choose_files(files, ("",), max_files=2).skipped == (
        ("c.py", "over the limit of 2 files"),
    )


def test_ruff_settings_follow_ruffs_precedence_and_drop_extend_and_cache_dir():
    pyproject = '[tool.ruff]\nline-length = 60\nextend = "../x.toml"\ncache-dir = "/tmp/c"\n'
    assert ruff_settings({"pyproject.toml": pyproject}) == {"line-length": 60}
    both = {"pyproject.toml": pyproject, "ruff.toml": "line-length = 70\n"}
    assert ruff_settings(both) == {"line-length": 70}
    both[".ruff.toml"] = "line-length = 80\n"
    assert ruff_settings(both) == {"line-length": 80}
    assert ruff_settings({"pyproject.toml": "[project]\nname = 'x'\n"}) == {}
    assert ruff_settings({}) == {}
    with pytest.raises(ConfigProblem, match=r"ruff\.toml is not valid TOML"):
        ruff_settings({"ruff.toml": "line-length = = 1"})


def test_settings_round_trip_through_the_written_ruff_toml():
    settings = {
        "line-length": 60,
        "target-version": 'py311"\nextend = "evil',  # a string cannot break out of its value
        "lint": {"select": ["F", "I"], "per-file-ignores": {"tests/*": ["F401"]}},
        "format": {"quote-style": "single", "docstring-code-format": True},
    }
    assert tomllib.loads(toml_text(settings)) == settings


def test_ruffs_summary_and_json_read_as_counts_and_lines():
    assert fixed_count("x.py:1:1: F821 Undefined\nFound 5 errors (2 fixed, 3 remaining).") == 2
    assert fixed_count("Found 1 error (1 fixed, 0 remaining).") == 1
    assert fixed_count("All checks passed!") == 0
    rows = [
        {"filename": "/w/src/a.py", "location": {"row": 3}, "code": "F821", "message": "x  y"},
        {"filename": "/w/src/b.py", "location": {"row": 1}, "code": None, "message": "bad"},
    ]
    assert remaining_errors(json.dumps(rows), "/w/src") == (
        "a.py:3 F821 x y",
        "b.py:1 invalid-syntax bad",
    )
    assert remaining_errors("not json", "/w") == ()


def test_a_huge_diff_is_cut_at_a_file_boundary():
    one = "diff --git a/a.py b/a.py\n" + "+x\n" * 10
    two = "diff --git a/b.py b/b.py\n" + "+y\n" * 10
    assert cut_diff(one + two, limit=1000) == (one + two, 0)
    assert cut_diff(one + two, limit=len(one) + 5) == (one, 1)
    text, cut = cut_diff(one * 1, limit=30)
    assert text.startswith("diff --git") and len(text) <= 30 and cut == 0


def test_the_reply_says_files_fixes_commit_and_remaining_errors():
    result = StyleResult(
        "pushed",
        files_fixed=("a.py",),
        fixes=2,
        reformatted=1,
        commit_sha="a" * 40,
        remaining=("b.py:1 F821 Undefined name `x`",),
        remaining_total=31,
    )
    text = summary(result, "https://github.com/o/r/commit/" + "a" * 40)
    assert text.startswith("Style fixes have been applied to 1 file (2 lint fixes, 1 reformatted)")
    assert "(https://github.com/o/r/commit/" in text
    assert "ruff cannot fix 31 error(s)" in text and "… and 30 more." in text
    assert summary(StyleResult("nothing")).startswith("Nothing to fix")
    moved = summary(StyleResult("head_moved", reason="feature is now at 1234"))
    assert "nothing was overwritten" in moved and "Run `/style` again" in moved
    suggestion = summary(StyleResult("suggested", files_fixed=("a.py",), suggestion="+x\n"))
    assert "<details><summary>Suggested diff</summary>" in suggestion
    assert "```diff\n+x\n```" in suggestion


def test_the_comment_moves_from_queued_to_running_to_the_result():
    assert "is queued" in render_comment(marker="<!-- m -->", phase="queued", result=None)
    assert "is running" in render_comment(marker="<!-- m -->", phase="running", result=None)
    done = render_comment(marker="<!-- m -->", phase="finished", result=StyleResult("nothing"))
    assert done.startswith("Nothing to fix") and done.endswith("<!-- m -->")


def test_a_result_survives_its_json_row():
    result = StyleResult("pushed", files_fixed=("a.py",), skipped=(("b.py", "removed"),))
    assert StyleResult.from_json(json.loads(json.dumps(result.to_json()))) == result


# ---------------------------------------------------------------------- the request


def _pull(**changes: Any) -> PullInfo:
    base = {
        "number": 7, "state": "open", "draft": False, "title": "t", "html_url": "",
        "author": "carol", "head_sha": "a" * 40, "head_ref": "feature",
        "head_repo": "carol/r", "head_clone_url": "/carol/r.git", "base_sha": "b" * 40,
        "base_ref": "main", "base_repo": "o/r", "base_clone_url": "/o/r.git",
        "maintainer_can_modify": False, "comments_url": "/c",
    }  # fmt: skip
    return PullInfo(**{**base, **changes})


def _facts(
    *,
    authorised: bool = True,
    pull: PullInfo | None = None,
    files: tuple[dict[str, str], ...] = ({"filename": "a.py", "status": "modified"},),
    runner_refusal: str | None = None,
) -> StyleFacts:
    command = CommandFacts(authorised, pull or _pull(), files, runner_refusal)
    return StyleFacts("o/r", 7, "ada", 99, StyleConfig(), command, 5, 1000.0)


@pytest.mark.parametrize(
    ("facts", "reply"),
    [
        (_facts(authorised=False), not_authorised_reply("ada", "admin")),
        (
            _facts(authorised=False, pull=_pull(state="closed")),
            not_authorised_reply("ada", "admin"),
        ),
        (_facts(pull=_pull(state="closed")), CLOSED_REPLY),
        (_facts(pull=_pull(head_clone_url="")), HEAD_GONE_REPLY),
        (_facts(files=({"filename": "README.md", "status": "added"},)), NO_FILES_REPLY),
        (_facts(files=(), runner_refusal="no server"), NO_FILES_REPLY),
        (_facts(runner_refusal="no server"), "no server"),
    ],
)
def test_every_refusal_of_a_style_request_is_its_reply(facts, reply):
    assert plan_run(facts) == Refusal(reply)


def test_a_style_request_is_a_run_pinned_to_the_head_and_base_on_the_chosen_files():
    files = (
        {"filename": "a.py", "status": "modified"},
        {"filename": "gone.py", "status": "removed"},
    )
    run = plan_run(_facts(files=files))
    assert isinstance(run, NewRun)
    assert (run.kind, run.runner, run.private) == ("style", "style", True)
    assert run.head_sha == "a" * 40 and run.key == "style:o/r#7:comment-99"
    assert run.jobs == (("style", {"runner": "style"}),)
    assert run.requested_at == 1000.0 and run.summary == "1 files"
    assert run.spec["comment_id"] == 99 and run.spec["installation_id"] == 5
    assert run.spec["skipped"] == [["gone.py", "removed in this pull request"]]
    request = run.spec["request"]
    assert request["files"] == ["a.py"] and request["base_sha"] == "b" * 40
    assert request["push"] is False  # a fork that does not allow maintainers' edits
