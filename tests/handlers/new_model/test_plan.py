"""The new-model planner and message builder: pure, no GitHub or Slack."""

from __future__ import annotations

import json

from handlers.new_model.config import NewModelConfig
from handlers.new_model.plan import (
    FileChange,
    MergedPull,
    NewModel,
    attribution,
    build_message,
    is_default_branch_push,
    net_changes,
    plan_new_models,
)

CONFIG = NewModelConfig()
HEAD = "f" * 40


def plan(*changes: FileChange, added_in=None):
    return plan_new_models(changes, CONFIG, added_in=added_in, head=HEAD)


def test_an_added_modeling_file_is_a_new_model():
    result = plan(
        FileChange("model_lib/models/mamba/__init__.py", "added"),
        FileChange("model_lib/models/mamba/modeling_mamba.py", "added"),
        FileChange("model_lib/models/mamba/configuration_mamba.py", "added"),
    )
    assert result.added == [NewModel("mamba", "model_lib/models/mamba/modeling_mamba.py", HEAD)]


def test_two_models_give_two_and_order_is_kept():
    result = plan(
        FileChange("model_lib/models/zeta/modeling_zeta.py", "added"),
        FileChange("model_lib/models/alpha/modeling_alpha.py", "added"),
    )
    assert [m.name for m in result.added] == ["zeta", "alpha"]


def test_changes_that_are_not_new_models():
    result = plan(
        FileChange("model_lib/models/gpt2/modeling_gpt2.py", "modified"),
        FileChange("model_lib/models/gpt2/modeling_other.py", "added"),  # name differs from folder
        FileChange("model_lib/models/mamba/helpers.py", "added"),
        FileChange("elsewhere/models/mamba/modeling_mamba.py", "added"),
        FileChange("model_lib/models/x/y/modeling_y.py", "added"),  # nested deeper
    )
    assert result.added == []


def test_a_rename_is_reported_as_a_rename():
    result = plan(
        FileChange(
            "model_lib/models/llama3/modeling_llama3.py",
            "renamed",
            "model_lib/models/llama/modeling_llama.py",
        )
    )
    assert result.added == []
    assert [(r.old, r.new) for r in result.renamed] == [("llama", "llama3")]


def test_models_dir_is_configurable():
    config = NewModelConfig(models_dir="src/transformers/models")
    result = plan_new_models(
        [FileChange("src/transformers/models/bert/modeling_bert.py", "added")], config, head=HEAD
    )
    assert [m.name for m in result.added] == ["bert"]


def test_attribution_names_the_first_commit_that_added_the_file():
    commits = [
        {"id": "a1", "added": ["x.py"]},
        {"id": "b2", "added": ["model_lib/models/m/modeling_m.py"]},
        {"id": "c3", "added": ["model_lib/models/m/modeling_m.py"]},
    ]
    added_in = attribution(commits)
    result = plan(FileChange("model_lib/models/m/modeling_m.py", "added"), added_in=added_in)
    assert result.added[0].commit == "b2"


def test_net_changes_folds_commits_like_a_compare_would():
    path = "model_lib/models/m/modeling_m.py"
    # Deleted, then added back: it existed before the push, so it is not new.
    assert net_changes([[FileChange(path, "removed")], [FileChange(path, "added")]]) == [
        FileChange(path, "modified")
    ]
    # Added, then deleted: nothing at all.
    assert net_changes([[FileChange(path, "added")], [FileChange(path, "removed")]]) == []
    # Added in one commit, edited in the next: added.
    assert net_changes([[FileChange(path, "added")], [FileChange(path, "modified")]]) == [
        FileChange(path, "added")
    ]
    # Renamed twice: one rename from the first name to the last.
    a, b, c = (f"model_lib/models/{n}/modeling_{n}.py" for n in ("a", "b", "c"))
    assert net_changes([[FileChange(b, "renamed", a)], [FileChange(c, "renamed", b)]]) == [
        FileChange(c, "renamed", a)
    ]


def test_only_pushes_to_the_default_branch_count():
    base = {"repository": {"default_branch": "main"}, "after": "a" * 40, "deleted": False}
    assert is_default_branch_push({**base, "ref": "refs/heads/main"})
    assert not is_default_branch_push({**base, "ref": "refs/heads/feature"})
    assert not is_default_branch_push({**base, "ref": "refs/tags/main"})
    assert not is_default_branch_push(
        {**base, "ref": "refs/heads/main", "deleted": True, "after": "0" * 40}
    )


def test_message_is_valid_block_kit_and_escapes_user_text():
    model = NewModel("mamba", "model_lib/models/mamba/modeling_mamba.py", "abc123")
    pull = MergedPull(7, "Add <script>& mamba", "eve<>", "https://github.com/o/r/pull/7")
    message = build_message(
        model=model,
        repo_url="https://github.com/o/r",
        channel="new-models",
        mention=("U024BE7LH",),
        pull=pull,
    )
    header, section = message["blocks"]
    assert header == {"type": "header", "text": {"type": "plain_text", "text": "New model!"}}
    text = section["text"]["text"]
    assert "<https://github.com/o/r/commit/abc123|New model: mamba>" in text
    assert "#7 Add &lt;script&gt;&amp; mamba> by eve&lt;&gt;" in text
    assert "<script>" not in text
    assert "<@U024BE7LH>" in text
    assert "commit SHA: `abc123`" in text
    assert message["channel"] == "new-models"
    assert message["text"] == "New model: mamba (#7 Add &lt;script&gt;&amp; mamba by eve&lt;&gt;)"
    json.dumps(message)  # serialisable as sent


def test_message_limits_hold_for_huge_titles():
    model = NewModel("m", "p", "s")
    pull = MergedPull(1, "x" * 10_000, "a", "u")
    message = build_message(model=model, repo_url="r", channel="c", mention=(), pull=pull)
    assert len(message["blocks"][0]["text"]["text"]) <= 150
    assert len(message["blocks"][1]["text"]["text"]) <= 3000
    assert len(message["text"]) <= 3000
