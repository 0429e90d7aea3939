"""The reviewer-selection planner: one test per rule, no I/O."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from codeowners.owners_file import OwnersFile
from handlers.reviewers.plan import (
    Candidate,
    ChangedFile,
    PassedOver,
    ReviewerPlan,
    ReviewerSettings,
    plan_reviewers,
    review_request_body,
)

OWNERS = OwnersFile.parse(
    """
* @fallback
*.md @docs-writer
/src/core/ @alice @bob
/src/models/ @carol
/src/models/vision/ @dave @acme/vision
/src/gen/
/src/legacy/ legacy@acme.example
/src/partner/ @partner/integrations
"""
)
DEFAULT = ReviewerSettings()


def plan(
    files: Sequence[tuple[str, int]],
    *,
    author: str = "contributor",
    reviews: Sequence[str] = (),
    requested: Sequence[str] = (),
    owners: OwnersFile = OWNERS,
    settings: ReviewerSettings = DEFAULT,
    open_requests: Mapping[str, int] | None = None,
) -> ReviewerPlan:
    return plan_reviewers(
        [ChangedFile(path, changes) for path, changes in files],
        author,
        reviews,
        requested,
        owners,
        settings,
        open_requests,
        repo_owner="acme",
    )


def chosen(result: ReviewerPlan) -> list[str]:
    return [c.owner for c in result.next_batch()]


# --------------------------------------------------------------------------- reference rules


def test_top_two_owners_by_credited_lines() -> None:
    result = plan([("src/core/a.py", 300), ("src/models/m.py", 150), ("README.md", 50)])
    assert result.skip_reason is None
    assert chosen(result) == ["@alice", "@bob"]
    assert [(c.owner, c.lines) for c in result.candidates] == [
        ("@alice", 300),
        ("@bob", 300),
        ("@carol", 150),
        ("@docs-writer", 50),
    ]
    assert result.total_lines == 500


def test_every_owner_of_a_file_gets_its_lines() -> None:
    result = plan([("src/models/vision/vit.py", 40), ("src/models/bert.py", 30)])
    assert [(c.owner, c.lines, c.files) for c in result.candidates] == [
        ("@acme/vision", 40, 1),
        ("@dave", 40, 1),
        ("@carol", 30, 1),
    ]


def test_lines_add_up_across_files() -> None:
    result = plan([("src/models/a.py", 10), ("src/models/b.py", 15), ("src/core/c.py", 20)])
    assert result.candidates[0] == Candidate(
        "@carol", "carol", False, 25, 2, 25 / 45, "@carol: 56% of changed lines (25 of 45)"
    )


def test_count_is_configurable() -> None:
    files = [("src/core/a.py", 300), ("src/models/m.py", 150), ("README.md", 50)]
    assert chosen(plan(files, settings=ReviewerSettings(count=1))) == ["@alice"]
    assert chosen(plan(files, settings=ReviewerSettings(count=3))) == ["@alice", "@bob", "@carol"]


def test_skip_when_the_author_owns_anything() -> None:
    result = plan([("src/models/m.py", 10)], author="Bob")
    assert result.skip_reason == (
        "the author @Bob is listed in the owners file (line 4) and picks their own reviewers"
    )
    assert result.candidates == ()
    assert result.next_batch() == ()


def test_skip_when_a_review_exists() -> None:
    result = plan([("src/core/a.py", 10)], reviews=["zed", "yan"])
    assert result.skip_reason == "the pull request already has a review (from @yan, @zed)"


def test_reviews_by_the_author_or_bots_do_not_count() -> None:
    result = plan(
        [("src/core/a.py", 10)],
        author="contributor",
        reviews=["Contributor", "copilot-pull-request-reviewer[bot]"],
    )
    assert result.skip_reason is None
    assert chosen(result) == ["@alice", "@bob"]


def test_skip_when_reviewers_are_already_requested() -> None:
    result = plan([("src/core/a.py", 10)], requested=["someone", "vision"])
    assert result.skip_reason == "reviewers are already requested (@someone, @vision)"


def test_skip_when_no_file_changed() -> None:
    assert plan([]).skip_reason == "the pull request changes no files"


def test_skip_when_no_changed_file_has_an_owner() -> None:
    result = plan([("src/gen/stub.py", 500)])
    assert result.skip_reason == "none of the changed files has an owner in the owners file"
    unmatched = OwnersFile.parse("/docs/ @docs\n")
    assert plan([("src/a.py", 1)], owners=unmatched).skip_reason == result.skip_reason


def test_unowned_files_still_count_in_the_total() -> None:
    result = plan([("src/gen/stub.py", 300), ("src/models/m.py", 100)])
    assert result.candidates[0].reason == "@carol: 25% of changed lines (100 of 400)"


# --------------------------------------------------------------------------- additions


def test_teams_are_requested_as_team_reviewers() -> None:
    result = plan([("src/models/vision/vit.py", 40)])
    batch = result.next_batch()
    assert [(c.owner, c.login, c.is_team) for c in batch] == [
        ("@acme/vision", "vision", True),
        ("@dave", "dave", False),
    ]
    assert review_request_body(batch) == {"reviewers": ["dave"], "team_reviewers": ["vision"]}


def test_teams_of_another_organisation_are_passed_over() -> None:
    result = plan([("src/partner/x.py", 10), ("src/models/m.py", 5)])
    assert chosen(result) == ["@carol"]
    assert result.passed_over == (
        PassedOver(
            "@partner/integrations",
            "a team of partner, not of acme; GitHub only requests the owner's teams",
        ),
    )


def test_email_owners_are_passed_over() -> None:
    result = plan([("src/legacy/x.py", 10), ("src/models/m.py", 5)])
    assert chosen(result) == ["@carol"]
    assert result.passed_over[0].owner == "legacy@acme.example"
    assert "e-mail owner cannot be requested" in result.passed_over[0].reason


def test_unavailable_users_and_teams_are_never_chosen() -> None:
    settings = ReviewerSettings(unavailable=("ALICE", "@acme/Vision"))
    result = plan(
        [("src/core/a.py", 50), ("src/models/vision/v.py", 40), ("src/models/m.py", 1)],
        settings=settings,
    )
    assert [c.owner for c in result.candidates] == ["@bob", "@dave", "@carol"]
    assert {p.owner for p in result.passed_over} == {"@alice", "@acme/vision"}
    assert all(p.reason == "listed as unavailable in the configuration" for p in result.passed_over)


def test_ties_are_broken_by_name_whatever_the_file_order() -> None:
    owners = OwnersFile.parse("/a/ @zoe\n/b/ @Yann\n/c/ @adam\n")
    files = [("a/x", 10), ("b/x", 10), ("c/x", 10)]
    for order in (files, files[::-1]):
        assert [c.owner for c in plan(order, owners=owners).candidates] == [
            "@adam",
            "@Yann",
            "@zoe",
        ]


def test_one_person_written_in_two_cases_is_one_owner() -> None:
    owners = OwnersFile.parse("* @ArthurZucker\n/src/ @arthurzucker @bob\n")
    result = plan([("src/a.py", 10), ("README", 5)], owners=owners)
    assert [(c.owner, c.lines, c.files) for c in result.candidates] == [
        ("@ArthurZucker", 15, 2),
        ("@bob", 10, 1),
    ]


def test_owner_listed_twice_in_a_rule_is_credited_once() -> None:
    owners = OwnersFile.parse("* @alice @Alice\n")
    (candidate,) = plan([("a.py", 10)], owners=owners).candidates
    assert (candidate.lines, candidate.files) == (10, 1)


# --------------------------------------------------------------------------- load balancing


def test_owner_over_the_cap_is_passed_over_for_the_next() -> None:
    settings = ReviewerSettings(count=1, max_open_reviews=3)
    files = [("src/core/a.py", 100), ("src/models/m.py", 10)]
    result = plan(files, settings=settings, open_requests={"alice": 4, "bob": 3})
    assert chosen(result) == ["@bob"]
    assert [c.owner for c in result.candidates] == ["@bob", "@carol", "@alice"]
    assert result.candidates[-1].reason == (
        "@alice: 91% of changed lines (100 of 110); has 4 open review requests, over the cap"
        " of 3, so asked only if no other owner can be"
    )


def test_overloaded_owner_is_still_asked_when_no_one_else_can_be() -> None:
    settings = ReviewerSettings(max_open_reviews=0)
    result = plan([("src/models/m.py", 10)], settings=settings, open_requests={"@Carol": 2})
    assert chosen(result) == ["@carol"]


def test_team_load_is_keyed_by_org_and_slug() -> None:
    settings = ReviewerSettings(count=1, max_open_reviews=1)
    result = plan(
        [("src/models/vision/v.py", 10)], settings=settings, open_requests={"acme/vision": 5}
    )
    assert chosen(result) == ["@dave"]


def test_load_counts_of_one_person_in_two_spellings_add_up() -> None:
    settings = ReviewerSettings(count=1, max_open_reviews=3)
    files = [("src/core/a.py", 10)]
    result = plan(files, settings=settings, open_requests={"alice": 2, "@Alice": 2})
    assert chosen(result) == ["@bob"]


def test_load_balancing_is_off_by_default() -> None:
    result = plan([("src/core/a.py", 10)], open_requests={"alice": 99, "bob": 99})
    assert chosen(result) == ["@alice", "@bob"]


# --------------------------------------------------------------------------- 422 fall-through


def test_rejected_reviewer_falls_through_to_the_next_candidate() -> None:
    result = plan([("src/core/a.py", 300), ("src/models/m.py", 150), ("README.md", 50)])
    assert [c.owner for c in result.next_batch(rejected={"@bob"})] == ["@alice", "@carol"]
    # Alice was accepted, Bob refused: one more is needed, and it is the next in line.
    batch = result.next_batch(requested=["@alice"], rejected=["@BOB"])
    assert [c.owner for c in batch] == ["@carol"]
    assert result.next_batch(requested=["@alice", "@carol"], rejected=["@bob"]) == ()


def test_candidates_run_out_without_error() -> None:
    result = plan([("src/core/a.py", 10)])
    assert result.next_batch(rejected=["@alice", "@bob"]) == ()
    assert result.next_batch(requested=["@alice"], rejected=["@bob"]) == ()


# --------------------------------------------------------------------------- reasons


def test_small_shares_and_empty_changes_read_well() -> None:
    result = plan([("src/core/a.py", 999), ("src/models/m.py", 1)])
    assert result.candidates[-1].reason == "@carol: <1% of changed lines (1 of 1000)"
    renamed = plan([("src/models/m.py", 0), ("src/models/n.py", 0)])
    assert renamed.candidates[0].reason == "@carol: owns 2 changed files (no changed lines)"
    assert renamed.candidates[0].share == 0.0


def test_summary_for_people() -> None:
    result = plan([("src/legacy/x.py", 10), ("src/models/m.py", 30)])
    assert result.summary() == (
        "@carol: 75% of changed lines (30 of 40)\n"
        "legacy@acme.example passed over: an e-mail owner cannot be requested through the"
        " API; write the GitHub login"
    )
    assert plan([]).summary() == "No reviewers requested: the pull request changes no files."


def test_no_eligible_owner_says_why() -> None:
    result = plan([("src/legacy/x.py", 10)])
    assert result.skip_reason == (
        "no owner of the changed files can be requested (legacy@acme.example: an e-mail owner"
        " cannot be requested through the API; write the GitHub login)"
    )


def test_reference_semantics_owners_file() -> None:
    owners = OwnersFile.parse("* @all\ntrainer.py @trainer\n", semantics="reference")
    result = plan([("examples/seq2seq_trainer.py", 10)], owners=owners)
    assert chosen(result) == ["@trainer"]


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(("path", "changes"), [("", 1), ("a.py", -1)])
def test_a_changed_file_from_github_must_make_sense(path: str, changes: int) -> None:
    with pytest.raises(ValueError):
        ChangedFile(path, changes)
