"""The worker handles deliveries concurrently, one at a time per pull request.

One PR's handler stuck on a slow GitHub answer must not delay another PR's delivery; two
deliveries of the same PR must run one after the other, in arrival order. Both are measured
with events (what happened before what), never with wall-clock assertions.
"""

from __future__ import annotations

import asyncio

from tests.e2e.test_reviewers_e2e import REPO, TEAM, make_repo


def _open(harness, branch: str, path: str) -> int:
    harness.github.commit(REPO, branch, {path: "x\n" * 20}, author="outsider", message=branch)
    return harness.github.open_pull(REPO, branch, author="outsider")


async def test_a_pull_request_stuck_on_a_slow_github_answer_delays_no_other(harness):
    make_repo(harness, TEAM)
    stuck = _open(harness, "stuck", "model_lib/models/gpt2/modeling_gpt2.py")
    free = _open(harness, "free", "bot/server/app.py")
    hold = harness.github.hold_next("GET", rf"/pulls/{stuck}/files")
    await harness.deliver(
        "pull_request", harness.github.pull_request_payload(REPO, stuck, "opened")
    )
    async with asyncio.timeout(10):
        await hold.reached.wait()  # the first PR's handler now waits on GitHub
    await harness.deliver("pull_request", harness.github.pull_request_payload(REPO, free, "opened"))
    async with asyncio.timeout(10):
        while harness.github.requested_reviewers(REPO, free) == ([], []):
            await asyncio.sleep(0.01)
    # The second PR got its reviewers while the first one's request was still unanswered.
    assert not hold.released.is_set()
    assert harness.github.requested_reviewers(REPO, stuck) == ([], [])
    hold.release()
    await harness.settle()
    assert harness.github.requested_reviewers(REPO, stuck)[0]
    assert {d.status for d in await harness.deliveries()} == {"done"}
