"""`make run` without credentials plays this scenario against the sandbox; it must hold."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp

from tests.sandbox.scenario import REPO, scenario

ROOT = Path(__file__).resolve().parents[2]


async def test_the_demo_scenario_on_this_checkout(harness, capsys):
    await scenario(harness, ROOT)
    out = capsys.readouterr().out
    assert harness.github.requested_reviewers(REPO, 1) == (["mb-gpt2", "mb-models"], [])
    assert "reviewers requested on #1: @mb-gpt2, @mb-models" in out
    bodies = [c["body"] for c in harness.github.comments(REPO, 1)]
    assert any("**What @bot does here**" in body for body in bodies)
    assert any("run-slow: gpt2" in body for body in bodies)  # the reminder
    # A real model_lib folder ran its slow tests on the approved commit and passed.
    head = harness.github.pull(REPO, 1).head_sha
    assert harness.github.statuses(REPO, head)[0]["state"] == "success"
    assert any("Finished, passed" in body for body in bodies)
    assert "single-gpu_run_models_gpu_models_gpt2: passed" in out
    assert "/runs/1" in out
    (message, *_) = [m for m in harness.slack.messages if m["channel"] != "ci-daily"]
    assert message["text"].startswith("New model: tinygpt (#2 Add TinyGPT")
    assert "Style fixes have been applied to 1 file" in out
    assert "Apply style fixes" in out
    # The repository on GitHub Actions: its workflow run passed, its status says so.
    assert "workflow run" in out and ": success" in out
    assert "commit status pytest/custom-tests: success" in out.split("6. Another")[1]
    # The nightly schedule: the second run names the merge that broke test_scale.
    nightly = out.split("7. A third")[1]
    assert "0 failures out of 2 tests" in nightly
    assert "1 failure out of 2 tests" in nightly
    assert "test_scale: new, first failing at" in nightly
    # The run-benchmark label: fifty times the work is slower, and the check run says so
    # without failing the pull request.
    bench = out.split("8. A maintainer")[1]
    assert re.search(r"\| sum of squares \| ms \| .* \| slower \|", bench), bench
    assert "check run benchmarks: neutral (1 metric slower)" in bench
    assert "/benchmarks/maintainer-bot/bench-demo.json" in bench
    handled = re.search(r"(\d+) of (\d+) deliveries handled", out)
    assert handled and handled.group(1) == handled.group(2), handled
    # The run page it printed answers, with the run's real counts.
    async with aiohttp.ClientSession() as session, session.get(f"{harness.url}/runs/1") as page:
        text = await page.text()
    assert page.status == 200 and '<span class="state passed">passed</span>' in text


def test_the_demo_copy_leaves_out_only_the_benchmarks_table():
    from tests.sandbox.scenario import without_section

    config = '[slow_ci]\nextras = ["models"]\n\n[benchmarks]\ncommand = ["x"]\n# note\n\n[style]\n'
    assert without_section(config, "benchmarks") == '[slow_ci]\nextras = ["models"]\n\n[style]\n'
