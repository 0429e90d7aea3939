"""The bisect as data: it finds the first bad commit in log2 steps, probes tests that broke
together once per step, survives a restart through JSON, and never blames a commit it did not
see fail right after one it saw pass."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handlers.scheduled_ci.bisect import Bisect, BisectResult


def chain(n: int) -> list[str]:
    return [f"{i:040x}" for i in range(1, n + 1)]


Oracle = Callable[[str, str], str]  # (sha, test) → outcome


def breaks_at(commits: list[str], first_bad: Mapping[str, int]) -> Oracle:
    """Each test passes before its first bad commit's index and fails from it on."""
    index = {sha: i for i, sha in enumerate(commits)}
    return lambda sha, test: "failed" if index[sha] >= first_bad[test] else "passed"


def drive(bisect: Bisect, oracle: Oracle, *, restart: bool = False) -> tuple[int, Bisect]:
    """Runs the bisect to its end: the number of pytest runs (probes) it took, and the bisect
    (a new one with `restart`, where every step goes through JSON as a restarted bot's would)."""
    runs = 0
    while not bisect.done:
        probes = bisect.next_probes()
        assert probes
        for sha, tests in probes:
            runs += 1
            bisect.record(sha, {test: oracle(sha, test) for test in tests})
            if restart:
                bisect = Bisect.from_json(json.loads(json.dumps(bisect.to_json())))
    return runs, bisect


# --------------------------------------------------------------------------- finding it


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=1, max_value=300).flatmap(
    lambda n: st.tuples(st.just(n), st.integers(min_value=0, max_value=n - 1))
))  # fmt: skip
def test_the_first_bad_commit_is_found_in_log2_probes(case):
    n, bad = case
    commits = chain(n)
    runs, bisect = drive(Bisect.start(commits, ["t"]), breaks_at(commits, {"t": bad}))
    result = bisect.results()["t"]
    assert (result.verdict, result.first_bad) == ("new", commits[bad])
    assert runs <= math.ceil(math.log2(n)) + 1 if n > 1 else runs == 0
    assert result.runs == runs == len(bisect.steps)


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=2, max_value=200).flatmap(
    lambda n: st.tuples(st.just(n), st.integers(min_value=0, max_value=n - 1))
))  # fmt: skip
def test_tests_that_broke_together_cost_the_runs_of_one(case):
    n, bad = case
    commits = chain(n)
    alone = Bisect.start(commits, ["a"])
    together = Bisect.start(commits, ["a", "b", "c"])
    oracle = breaks_at(commits, dict.fromkeys("abc", bad))
    assert drive(together, oracle)[0] == drive(alone, oracle)[0]
    assert {r.first_bad for r in together.results().values()} == {commits[bad]}


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=2, max_value=200).flatmap(
    lambda n: st.tuples(
        st.just(n),
        st.integers(min_value=0, max_value=n - 1),
        st.integers(min_value=0, max_value=n - 1),
    )
))  # fmt: skip
def test_tests_that_broke_apart_part_ways_and_each_finds_its_commit(case):
    n, bad_a, bad_b = case
    commits = chain(n)
    runs, bisect = drive(
        Bisect.start(commits, ["a", "b"]), breaks_at(commits, {"a": bad_a, "b": bad_b})
    )
    found = bisect.results()
    assert (found["a"].first_bad, found["b"].first_bad) == (commits[bad_a], commits[bad_b])
    # at most one group's worth of probes each, and shared while their ranges agree
    assert runs <= 2 * (math.ceil(math.log2(n)) + 1)


def test_a_hundred_commits_take_at_most_seven_steps():
    commits = chain(100)
    worst = 0
    for bad in range(100):
        runs, _ = drive(Bisect.start(commits, ["t"]), breaks_at(commits, {"t": bad}))
        worst = max(worst, runs)
    assert worst == 7


def test_one_commit_needs_no_probe():
    (sha,) = commits = chain(1)
    bisect = Bisect.start(commits, ["t"])
    assert bisect.done and bisect.next_probes() == []
    assert bisect.results()["t"] == BisectResult(
        "new", sha, f"{sha[:12]} fails; the good commit passes"
    )


def test_probes_name_the_commit_and_the_tests_in_order():
    commits = chain(8)
    bisect = Bisect.start(commits, ["b", "a", "b"], good="f" * 40)
    assert bisect.next_probes() == [(commits[3], ("b", "a"))]
    bisect.record(commits[3], {"a": "passed", "b": "failed"})
    assert bisect.next_probes() == [(commits[1], ("b",)), (commits[5], ("a",))]
    assert bisect.results() == {}
    assert not bisect.done


def test_the_reason_names_the_passing_and_the_failing_commit():
    commits = chain(4)
    bisect = Bisect.start(commits, ["t"], good="f" * 40)
    drive(bisect, breaks_at(commits, {"t": 0}))
    result = bisect.results()["t"]
    assert result.reason == f"{commits[0][:12]} fails; {'f' * 12} passes"
    assert result.evidence == [
        {"sha": commits[1], "outcome": "failed"},
        {"sha": commits[0], "outcome": "failed"},
    ]


# --------------------------------------------------------------------------- untestable commits


def test_a_commit_that_cannot_be_built_is_skipped_not_blamed():
    commits = chain(9)
    real = breaks_at(commits, {"t": 4})

    def oracle(sha: str, test: str) -> str:
        return "error" if sha == commits[4] else real(sha, test)

    bisect = Bisect.start(commits, ["t"])
    drive(bisect, oracle)
    result = bisect.results()["t"]
    # 4 could not be tested and 5 fails: the break is 4 or 5, and neither is blamed.
    assert result.verdict == "unknown"
    assert result.first_bad is None
    assert result.suspects == (commits[4], commits[5])
    assert "1 commit between" in result.reason and "(error)" in result.reason
    assert {"sha": commits[4], "outcome": "error"} in result.evidence


def test_a_skipped_commit_beside_the_answer_does_not_hide_it():
    commits = chain(16)
    real = breaks_at(commits, {"t": 9})

    def oracle(sha: str, test: str) -> str:
        return "missing" if sha == commits[12] else real(sha, test)

    bisect = Bisect.start(commits, ["t"])
    drive(bisect, oracle)
    assert bisect.results()["t"].first_bad == commits[9]


@settings(max_examples=150, deadline=None)
@given(st.integers(min_value=2, max_value=60).flatmap(
    lambda n: st.tuples(
        st.just(n),
        st.integers(min_value=0, max_value=n - 1),
        st.sets(st.integers(min_value=0, max_value=n - 2)),
    )
))  # fmt: skip
def test_never_blames_a_commit_it_did_not_see_fail_after_one_it_saw_pass(case):
    n, bad, broken = case
    commits = chain(n)
    real = breaks_at(commits, {"t": bad})

    def oracle(sha: str, test: str) -> str:
        return "error" if commits.index(sha) in broken else real(sha, test)

    bisect = Bisect.start(commits, ["t"])
    drive(bisect, oracle)
    result = bisect.results()["t"]
    seen = {e["sha"]: e["outcome"] for e in result.evidence}
    if result.verdict == "new":
        assert result.first_bad == commits[bad]
        i = commits.index(result.first_bad)
        assert i == n - 1 or seen[commits[i]] == "failed"  # the bad commit was seen by the caller
        assert i == 0 or seen[commits[i - 1]] == "passed"
    else:
        assert result.first_bad is None
        assert commits[bad] in result.suspects
        assert all(seen.get(s) in ("error", None) for s in result.suspects[:-1])


def test_a_test_that_errors_at_the_bad_commit_is_bisected_for_that_error():
    commits = chain(8)
    index = {sha: i for i, sha in enumerate(commits)}
    bisect = Bisect.start(commits, ["t"], symptoms={"t": "error"})
    drive(bisect, lambda sha, test: "error" if index[sha] >= 5 else "passed")
    assert bisect.results()["t"].first_bad == commits[5]


# --------------------------------------------------------------------------- stored steps


def test_a_restart_resumes_from_the_stored_steps():
    commits = chain(50)
    oracle = breaks_at(commits, {"a": 10, "b": 40})
    straight = Bisect.start(commits, ["a", "b"])
    runs, straight = drive(straight, oracle)
    resumed_runs, resumed = drive(Bisect.start(commits, ["a", "b"]), oracle, restart=True)
    assert resumed_runs == runs
    assert resumed.results() == straight.results()
    assert resumed.steps == straight.steps


def test_recording_a_step_again_changes_nothing():
    commits = chain(8)
    bisect = Bisect.start(commits, ["t"])
    ((sha, _),) = bisect.next_probes()
    bisect.record(sha, {"t": "failed"})
    before = bisect.to_json()
    bisect.record(sha, {"t": "failed"})  # replayed after a crash
    assert bisect.to_json() == before


def test_recording_a_commit_nobody_waits_for_is_refused():
    commits = chain(8)
    bisect = Bisect.start(commits, ["t"])
    with pytest.raises(ValueError, match="not one of the commits"):
        bisect.record("0" * 40, {"t": "failed"})
    with pytest.raises(ValueError, match="no test is waiting"):
        bisect.record(commits[0], {"t": "failed"})


def test_a_test_left_out_of_a_probes_results_is_missing_there():
    commits = chain(8)
    bisect = Bisect.start(commits, ["a", "b"])
    ((sha, _),) = bisect.next_probes()
    bisect.record(sha, {"a": "failed"})
    assert bisect.to_json()["tests"]["b"]["evidence"] == [{"sha": sha, "outcome": "missing"}]


def test_a_stored_state_that_does_not_fit_is_refused():
    state = Bisect.start(chain(4), ["t"]).to_json()
    state["tests"]["t"]["hi"] = 9
    with pytest.raises(ValueError, match="does not fit its commits"):
        Bisect.from_json(state)
    with pytest.raises(ValueError, match="version"):
        Bisect.from_json({**Bisect.start(chain(4), ["t"]).to_json(), "version": 99})


def test_start_refuses_an_empty_or_repeating_range():
    with pytest.raises(ValueError, match="no commits"):
        Bisect.start([], ["t"])
    with pytest.raises(ValueError, match="twice"):
        Bisect.start(["a", "b", "a"], ["t"])
