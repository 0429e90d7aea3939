"""`run-benchmark` on a pull request end to end: the real server and job system, the sandbox
GitHub (real git history), the repository's benchmark script run confined at the head and at the
base. What the pull request is told: one comment and a `benchmarks` check run with the table.

Hostile cases first: a label from someone who may not run the pull request's code, a push by an
outsider while the label stays, metric names that try to write Markdown and mentions, a head
whose benchmark writes junk.
"""

from __future__ import annotations

from typing import Any

import pytest

from bot.kit.comments import MARKER_PREFIX
from tests.support.benchmarks import BENCHMARKS, bench_files

REPO = "acme/models"
LABEL = "run-benchmark"
CONFIG = f'[slow_ci]\nreminder = false\n\n{BENCHMARKS}threshold = 0.05\nchannel = "ci-benchmarks"\n'


def _repo(harness: Any, config: str = CONFIG) -> None:
    harness.github.create_repo(
        REPO,
        files=bench_files(config),
        collaborators={"maint": "write", "reader": "read"},
    )


async def _deliver(harness: Any, event: str, payload: dict) -> None:
    assert (await harness.deliver(event, payload)).status == 202
    await harness.settle()
    await harness.settle_runs(within=120)


async def _open(harness: Any, changes: dict[str, str]) -> int:
    harness.github.commit(REPO, "feature", changes, author="carol")
    number = harness.github.open_pull(REPO, "feature", author="carol")
    opened = harness.github.pull_request_payload(REPO, number, "opened")
    await _deliver(harness, "pull_request", opened)
    return number


async def _label(harness: Any, number: int, by: str = "maint") -> None:
    harness.github.add_label(REPO, number, LABEL)
    payload = harness.github.pull_request_payload(REPO, number, "labeled", sender=by, label=LABEL)
    await _deliver(harness, "pull_request", payload)


async def _push(harness: Any, number: int, changes: dict[str, str], by: str) -> str:
    before = _pull(harness, number)["head"]["sha"]
    after = harness.github.commit(REPO, "feature", changes, author=by)
    payload = harness.github.pull_request_payload(
        REPO, number, "synchronize", sender=by, before=before
    )
    await _deliver(harness, "pull_request", payload)
    return after


def _pull(harness: Any, number: int) -> dict[str, Any]:
    """The pull request as GitHub describes it now."""
    return harness.github.pull_request_payload(REPO, number, "opened")["pull_request"]


async def _runs(harness: Any, number: int) -> list[Any]:
    return await harness.runtime.jobs.runs_of(REPO, number, kind="benchmarks", newest=False)


def _bot_comments(harness: Any, number: int) -> list[str]:
    return [c["body"] for c in harness.github.comments(REPO, number) if MARKER_PREFIX in c["body"]]


def _checks(harness: Any, sha: str) -> list[dict[str, Any]]:
    return [c for c in harness.github.check_runs(REPO, sha) if c["name"] == "benchmarks"]


async def test_the_label_measures_head_and_base_and_a_slower_head_is_neutral_with_its_table(
    harness,
):
    _repo(harness)
    number = await _open(harness, {"latency.txt": "25\n"})
    await _label(harness, number)

    (run,) = await _runs(harness, number)
    pull = _pull(harness, number)
    head_sha, base_sha = pull["head"]["sha"], pull["base"]["sha"]
    assert (run.state, run.head_sha) == ("finished", head_sha)
    jobs = await harness.runtime.jobs.jobs_of(run.id)
    assert sorted(j.name for j in jobs) == ["base · single-gpu", "head · single-gpu"]
    assert {j.state for j in jobs} == {"passed"}
    assert {j.tested_sha for j in jobs} == {head_sha, base_sha}

    (comment,) = _bot_comments(harness, number)
    assert head_sha[:12] in comment and base_sha[:12] in comment
    assert "| latency | ms | 10 ± 0 (n=3) | 25 ± 0 (n=3) | 2.500 | slower |" in comment
    (check,) = _checks(harness, head_sha)
    assert (check["status"], check["conclusion"]) == ("completed", "neutral")
    assert "1 metric slower" in check["output"]["title"]
    assert "slower" in check["output"]["text"]

    records = await harness.runtime.services.records.benchmarks_of(run.id)
    recorded = sorted((r.sha, r.branch, r.pull_number, r.values, r.regression) for r in records)
    assert recorded == sorted(
        [
            (head_sha, "feature", number, (25.0, 25.0, 25.0), True),
            (base_sha, "main", number, (10.0, 10.0, 10.0), False),
        ]
    )
    assert harness.slack.messages == []  # a pull request's regression is its own business


async def test_fail_on_regression_makes_the_check_run_fail(harness):
    _repo(harness, CONFIG + "fail_on_regression = true\n")
    number = await _open(harness, {"latency.txt": "25\n"})
    await _label(harness, number)
    (run,) = await _runs(harness, number)
    (check,) = _checks(harness, run.head_sha)
    assert check["conclusion"] == "failure"


async def test_an_unchanged_head_succeeds(harness):
    _repo(harness)
    number = await _open(harness, {"README.md": "toy, documented\n"})
    await _label(harness, number)
    (run,) = await _runs(harness, number)
    (check,) = _checks(harness, run.head_sha)
    assert check["conclusion"] == "success"
    (comment,) = _bot_comments(harness, number)
    assert "no change" in comment


async def test_a_label_from_someone_who_may_not_run_slow_tests_runs_nothing(harness):
    _repo(harness)
    number = await _open(harness, {"latency.txt": "25\n"})
    await _label(harness, number, by="reader")
    assert await _runs(harness, number) == []
    (reply,) = _bot_comments(harness, number)
    assert "@reader" in reply and "nothing ran" in reply


async def test_an_outsiders_push_under_the_label_runs_nothing_and_a_maintainers_reruns(harness):
    _repo(harness)
    number = await _open(harness, {"latency.txt": "25\n"})
    await _label(harness, number)
    assert len(await _runs(harness, number)) == 1

    refused = await _push(harness, number, {"latency.txt": "1\n"}, by="reader")
    assert len(await _runs(harness, number)) == 1
    assert any(refused[:12] in c and "@reader" in c for c in _bot_comments(harness, number))

    # The label again approves the outsider's head, as a maintainer looked at it.
    harness.github.remove_label(REPO, number, LABEL)
    await _label(harness, number)
    runs = await _runs(harness, number)
    assert [r.head_sha for r in runs][-1] == refused

    # A maintainer's push on top of an approved head is measured while the label stays, and
    # the pull request keeps one benchmarks comment, now about the newest head.
    newest = await _push(harness, number, {"latency.txt": "10\n"}, by="maint")
    runs = await _runs(harness, number)
    assert runs[-1].head_sha == newest and runs[-1].state == "finished"
    tables = [c for c in _bot_comments(harness, number) if "### Benchmarks" in c]
    assert len(tables) == 1 and newest[:12] in tables[0] and "no change" in tables[0]


async def test_metric_names_from_the_benchmark_stay_text(harness):
    _repo(harness)
    number = await _open(
        harness, {"latency.txt": "25\n", "name.txt": "lat|ency @admins <img src=x> [x](http://e)\n"}
    )
    await _label(harness, number)
    (comment,) = _bot_comments(harness, number)
    assert "@admins" not in comment.replace("@\u200badmins", "")
    assert "<img" not in comment and "[x](http://e)" not in comment
    # base and head name different metrics: each is missing on the other side, never zero
    assert "missing" in comment and "| 0 |" not in comment


@pytest.mark.parametrize(
    ("bench", "said"),
    [
        ("print('oops, broken')\nraise SystemExit(3)\n", "oops, broken"),
        ("import sys\nopen(sys.argv[-1], 'w').write('not json')\n", "not JSON"),
    ],
)
async def test_a_head_whose_benchmark_fails_or_writes_junk_fails_with_what_it_said(
    harness, bench, said
):
    _repo(harness)
    number = await _open(harness, {"bench.py": bench})
    await _label(harness, number)
    (run,) = await _runs(harness, number)
    (check,) = _checks(harness, run.head_sha)
    assert check["conclusion"] == "failure"
    (comment,) = _bot_comments(harness, number)
    assert "The head could not be measured" in comment and said in comment
    records = await harness.runtime.services.records.benchmarks_of(run.id)
    assert [r.branch for r in records] == ["main"]  # the base's, which could be measured


async def test_without_a_benchmark_the_label_says_so_once_and_pushes_say_nothing(harness):
    _repo(harness, "[slow_ci]\nreminder = false\n")
    number = await _open(harness, {"latency.txt": "25\n"})
    await _label(harness, number)
    (reply,) = _bot_comments(harness, number)
    assert "names no benchmark" in reply and "[benchmarks] command" in reply
    await _push(harness, number, {"latency.txt": "1\n"}, by="reader")
    await _push(harness, number, {"latency.txt": "2\n"}, by="maint")
    assert _bot_comments(harness, number) == [reply]
    assert await _runs(harness, number) == []
