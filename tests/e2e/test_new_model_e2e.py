"""New-model alerts end to end: real server, sandbox GitHub (real git history), sandbox Slack."""

from __future__ import annotations

REPO = "maintainer-bot/maintainer-bot"
MODELS = "model_lib/models"


def model_files(name: str) -> dict[str, str]:
    return {
        f"{MODELS}/{name}/__init__.py": "",
        f"{MODELS}/{name}/configuration_{name}.py": f"# {name} config\n",
        f"{MODELS}/{name}/modeling_{name}.py": f"# {name} model\n",
    }


def make_repo(harness) -> None:
    harness.github.create_repo(
        REPO,
        files={**model_files("gpt2"), "README.md": "models\n"},
        collaborators={"maintainer": "admin"},
    )


async def merge(harness, branch: str, changes, *, title: str = "Add a model", renames=None):
    harness.github.commit(REPO, branch, changes, author="contributor", renames=renames)
    number = harness.github.open_pull(REPO, branch, title=title, author="contributor")
    before, after = harness.github.merge_pull(REPO, number)
    return number, harness.github.push_payload(REPO, "refs/heads/main", before, after)


async def push(harness, payload, **kwargs) -> None:
    sent = await harness.deliver("push", payload, **kwargs)
    assert sent.status in (200, 202)
    await harness.settle()


async def test_a_merge_adding_one_model_sends_one_alert(harness):
    make_repo(harness)
    number, payload = await merge(harness, "add-mamba", model_files("mamba"), title="Add Mamba")
    await push(harness, payload)
    (message,) = harness.slack.messages
    assert message["channel"] == "new-model-notification"
    header, section = message["blocks"]
    assert header["type"] == "header"
    assert header["text"]["text"] == "New model!"
    text = section["text"]["text"]
    added_by = payload["commits"][0]["id"]  # the PR's commit that added the file
    assert f"<https://github.com/{REPO}/commit/{added_by}|New model: mamba>" in text
    assert f"<https://github.com/{REPO}/pull/{number}|#{number} Add Mamba> by contributor" in text
    assert f"commit SHA: `{added_by}`" in text
    assert message["text"] == f"New model: mamba (#{number} Add Mamba by contributor)"


async def test_two_models_in_one_merge_send_two(harness):
    make_repo(harness)
    _, payload = await merge(harness, "two", {**model_files("mamba"), **model_files("rwkv")})
    await push(harness, payload)
    names = sorted(m["text"].split()[2] for m in harness.slack.messages)
    assert names == ["mamba", "rwkv"]


async def test_pushes_that_add_no_model_send_nothing(harness):
    make_repo(harness)
    # A push to another branch.
    sha = harness.github.commit(REPO, "feature", model_files("mamba"))
    other = harness.github.push_payload(REPO, "refs/heads/feature", "0" * 40, sha)
    await push(harness, other)
    # A change to an existing model.
    _, changed = await merge(harness, "tweak", {f"{MODELS}/gpt2/modeling_gpt2.py": "# faster\n"})
    await push(harness, changed)
    # A rename.
    renames = {f"{MODELS}/gpt2/modeling_gpt2.py": f"{MODELS}/gpt3/modeling_gpt3.py"}
    _, renamed = await merge(harness, "rename", {}, renames=renames)
    await push(harness, renamed)
    # A tag.
    tag = {**changed, "ref": "refs/tags/v1.0"}
    await push(harness, tag)
    assert harness.slack.messages == []
    assert all(d.status == "done" for d in await harness.deliveries())


async def test_deleted_and_re_added_in_one_push_is_not_new(harness):
    make_repo(harness)
    before = harness.github.git(REPO).rev("main")
    gpt2 = f"{MODELS}/gpt2/modeling_gpt2.py"
    harness.github.commit(REPO, "main", {gpt2: None})
    after = harness.github.commit(REPO, "main", {gpt2: "# back\n"})
    await push(harness, harness.github.push_payload(REPO, "refs/heads/main", before, after))
    assert harness.slack.messages == []


async def test_redelivery_and_restart_send_one(harness):
    make_repo(harness)
    _, payload = await merge(harness, "add-mamba", model_files("mamba"))
    await push(harness, payload, delivery_id="push-1")
    await push(harness, payload, delivery_id="push-1")  # GitHub redelivers the same id
    await harness.stop_bot()
    await harness.start_bot()
    await push(harness, payload, delivery_id="push-1")
    await push(harness, payload, delivery_id="push-2")  # a manual redelivery gets a new id
    assert len(harness.slack.messages) == 1


async def test_slack_failing_then_rate_limiting_then_ok_delivers_one(harness):
    make_repo(harness)
    harness.slack.fail_next(500)
    harness.slack.fail_next(429, headers={"Retry-After": "1"})
    _, payload = await merge(harness, "add-mamba", model_files("mamba"))
    await push(harness, payload)
    assert len(harness.slack.messages) == 1
    assert harness.slack.attempts == 3
    (item,) = await harness.outbox()
    assert (item.status, item.attempts) == ("delivered", 3)


async def test_user_text_is_escaped(harness):
    make_repo(harness)
    title = "Add <script>alert(1)</script> & <https://evil.example|click>"
    _, payload = await merge(harness, "add-mamba", model_files("mamba"), title=title)
    await push(harness, payload)
    (message,) = harness.slack.messages
    text = message["blocks"][1]["text"]["text"]
    assert "<script>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;https://evil.example|click&gt;" in text
    assert "<https://evil.example|click>" not in text


async def test_configured_channel_and_mentions(harness):
    make_repo(harness)
    config = '[new_model]\nchannel = "models"\nmention = ["U024BE7LH", "U0G9QF9C6"]\n'
    harness.github.commit(REPO, "main", {".github/bot.toml": config})
    _, payload = await merge(harness, "add-mamba", model_files("mamba"))
    await push(harness, payload)
    (message,) = harness.slack.messages
    assert message["channel"] == "models"
    assert "<@U024BE7LH> <@U0G9QF9C6>" in message["blocks"][1]["text"]["text"]


async def test_a_push_past_the_compare_file_limit_is_folded_per_commit(harness):
    make_repo(harness)
    many = {f"data/shard_{i:03d}.txt": f"{i}\n" for i in range(320)}
    harness.github.commit(REPO, "bulk", many, author="contributor", message="data")
    _, payload = await merge(harness, "bulk", model_files("mamba"))
    await push(harness, payload)
    assert [m["text"].split()[2] for m in harness.slack.messages] == ["mamba"]
    commit_reads = [
        r for r in harness.github.requests if r.method == "GET" and "/commits/" in r.path
    ]
    assert commit_reads  # the compare answer was capped, so each commit's files were listed


async def test_a_forced_push_compares_from_the_merge_base_and_says_so(harness, caplog):
    make_repo(harness)
    base = harness.github.git(REPO).rev("main")
    old = harness.github.commit(REPO, "main", {"notes.txt": "old line\n"})
    rewritten = harness.github.commit(REPO, "rewrite", model_files("mamba"), base=base)
    before, after = harness.github.force_push(REPO, "main", rewritten)
    assert before == old
    payload = harness.github.push_payload(REPO, "refs/heads/main", base, after, forced=True)
    payload["before"] = before
    with caplog.at_level("INFO"):
        await push(harness, payload)
    assert f"forced push: compared against the merge base {base}" in caplog.text
    assert [m["text"].split()[2] for m in harness.slack.messages] == ["mamba"]
