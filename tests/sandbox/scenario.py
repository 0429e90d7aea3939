"""`make run` without credentials: the bot against the sandbox, serving this very repository.

A newcomer sees the bot work with nothing to configure: an outside contributor opens a pull
request (reviewers are requested from `.github/review-owners`, and a reminder names the
`run-slow` line), someone asks `@bot /help`, a maintainer comments `run-slow: gpt2` (the model
library's slow tests run on the approved commit, with a commit status and a run page), a
merge adds a model (a Slack alert goes out), and an admin's `@bot /style` pushes ruff's fixes
to a hurried pull request. Then the bot keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import tempfile
from pathlib import Path

from bot.config import Settings
from bot.store import deliveries as deliveries_db
from tests.sandbox.harness import Harness
from tests.support.scheduled import fire, posted, until_phase

ROOT = Path(__file__).resolve().parents[2]
REPO = "maintainer-bot/maintainer-bot"
#: The repository whose slow tests run on GitHub Actions in the demo's sixth step.
ACTIONS_REPO = "maintainer-bot/actions-demo"
#: The repository whose nightly schedule finds the merge that broke a test, in the last step.
NIGHTLY_REPO = "maintainer-bot/nightly-demo"
NIGHTLY_TOML = """[slow_ci]
reminder = false

[[scheduled_ci]]
name = "nightly"
cron = "17 2 * * *"
machine_types = ["single-gpu"]
channel = "ci-daily"
reruns = 2
"""
#: The repository a maintainer's `run-benchmark` label measures, in the last step.
BENCH_REPO = "maintainer-bot/bench-demo"
BENCH_TOML = """[slow_ci]
reminder = false

[benchmarks]
command = ["python", "bench.py", "--json", "{output}"]
machine_types = ["single-gpu"]
repeats = 3
"""
#: A benchmark in github-action-benchmark's custom format: the time of a loop whose length the
#: pull request changes.
BENCH_PY = """import json, sys, time

out = sys.argv[sys.argv.index("--json") + 1]
n = int(open("work.txt").read())
start = time.perf_counter()
total = sum(i * i for i in range(n))
elapsed = (time.perf_counter() - start) * 1000
with open(out, "w") as f:
    json.dump([{"name": "sum of squares", "unit": "ms", "value": elapsed}], f)
"""
MODELS = "model_lib/models"


#: What `/style` tidies in step 5: unsorted imports, an unused one, no formatting.
SLOPPY = (
    "import sys\nimport os\n\ndef tip(name,times=1):\n  return os.path.join('tips',name)*times\n"
)


def _say(text: str = "") -> None:
    print(text, flush=True)


def _owners(root: Path) -> list[str]:
    owners_file = root / ".github" / "review-owners"
    if not owners_file.exists():
        return []
    found: list[str] = []
    for line in owners_file.read_text().splitlines():
        for word in line.split("#", 1)[0].split()[1:]:
            if word.startswith("@") and "/" not in word and word[1:] not in found:
                found.append(word[1:])
    return found


def without_section(toml: str, name: str) -> str:
    """`toml` without its `[name]` table: from that header to the next one."""
    kept, skipping = [], False
    for line in toml.splitlines(keepends=True):
        header = line.strip()
        if header.startswith("["):
            skipping = header == f"[{name}]"
        if not skipping:
            kept.append(line)
    return "".join(kept)


def operator(root: Path) -> str:
    """The maintainer who asks for the slow run, and may see the operator's pages."""
    owners = _owners(root)
    return owners[0] if owners else "maintainer"


def _new_model_files(root: Path, like: str, name: str) -> dict[str, str]:
    """A renamed copy of a model's files: all the alert looks at is where the files land."""
    files: dict[str, str] = {}
    for source in sorted((root / MODELS / like).glob("*.py")):
        target = source.name.replace(like, name)
        text = source.read_text().replace(like, name).replace(like.upper(), name.upper())
        files[f"{MODELS}/{name}/{target}"] = text
    return files


async def scenario(harness: Harness, root: Path) -> None:
    github = harness.github
    owners = _owners(root)
    github.create_repo(REPO, source=root, collaborators=dict.fromkeys(owners, "write"))
    # This repository benchmarks GPT-2-sized models on every push to main, minutes of CPU the
    # demo's merge in step 4 should not spend: its copy leaves [benchmarks] out.
    stored = github.git(REPO).read("main", ".github/bot.toml")
    config = stored.decode() if stored is not None else ""
    if "[benchmarks]" in config:
        github.commit(
            REPO,
            "main",
            {".github/bot.toml": without_section(config, "benchmarks")},
            message="The demo measures no benchmarks",
        )
    _say(f"sandbox GitHub at {github.url}: {REPO}, a copy of this checkout")
    _say(f"the bot at {harness.url} (/healthz, /metrics, /help)")
    _say()

    _say("1. An outside contributor opens a pull request that touches gpt2 and the worker.")
    modeling = root / MODELS / "gpt2" / "modeling_gpt2.py"
    text = modeling.read_text() if modeling.exists() else ""
    github.commit(
        REPO,
        "faster-gpt2",
        {
            f"{MODELS}/gpt2/modeling_gpt2.py": text + "\n# A faster attention path.\n" * 40,
            "bot/server/worker.py": (root / "bot" / "server" / "worker.py").read_text()
            + "\n# Tidy.\n" * 5,
        },
        author="new-contributor",
        message="Speed up gpt2 attention",
    )
    number = github.open_pull(REPO, "faster-gpt2", title="Speed up gpt2", author="new-contributor")
    await harness.deliver("pull_request", github.pull_request_payload(REPO, number, "opened"))
    await harness.settle()
    users, teams = github.requested_reviewers(REPO, number)
    assert harness.runtime is not None
    why = await harness.runtime.store.call(
        lambda conn: conn.execute(
            "SELECT detail FROM effects WHERE key = ?", (f"reviewers:{REPO}#{number}",)
        ).fetchone()
    )
    _say(f"   -> reviewers requested on #{number}: {', '.join('@' + u for u in users + teams)}")
    if why:
        _say(f"      because {why[0]}")
    _say()

    _say("2. Someone asks the bot what it does.")
    comment = github.issue_comment_payload(REPO, number, "@bot /help", "new-contributor")
    await harness.deliver("issue_comment", comment)
    await harness.settle()
    reply = github.comments(REPO, number)[-1]["body"]
    for line in reply.splitlines()[:8]:
        if not line.startswith("<!--"):
            _say(f"   | {line}")
    _say()

    _say("3. A maintainer reviews it and asks for gpt2's slow tests on that commit.")
    # The comment must come after the bot saw the pull request open (GitHub: to the second).
    await asyncio.sleep(1.1)
    maintainer = operator(root)
    github.add_collaborator(REPO, maintainer, "write")
    ask = github.issue_comment_payload(REPO, number, "run-slow: gpt2", maintainer)
    await harness.deliver("issue_comment", ask)
    await harness.settle_runs(within=600)
    run = (await harness.runtime.jobs.runs_of(REPO, number))[0]
    for job in await harness.runtime.jobs.jobs_of(run.id):
        counts = f"{job.passed} passed, {job.failed + job.errors} failed, {job.skipped} skipped"
        why = f" - {job.reason}" if job.reason and job.state != "passed" else ""
        _say(f"   -> {job.name}: {job.state} ({counts}){why}")
    head = github.pull(REPO, number).head_sha
    status = github.statuses(REPO, head)[0]
    _say(f"   -> commit status {status['context']}: {status['state']}, {status['description']}")
    _say(f"   -> the run's page: {harness.url}/runs/{run.id}")
    _say()

    _say("4. A pull request adding a model is merged.")
    github.commit(
        REPO,
        "add-tinygpt",
        _new_model_files(root, "gpt2", "tinygpt"),
        author="new-contributor",
        message="Add TinyGPT",
    )
    merged = github.open_pull(REPO, "add-tinygpt", title="Add TinyGPT", author="new-contributor")
    before, after = github.merge_pull(REPO, merged)
    await harness.deliver("push", github.push_payload(REPO, "refs/heads/main", before, after))
    await harness.settle()
    for message in harness.slack.messages:
        _say(f"   -> Slack #{message['channel']}: {message['text']}")
    _say()

    _say("5. A hurried pull request; an admin asks `@bot /style` to tidy it.")
    github.commit(REPO, "quick-tip", {"handlers/help/tips.py": SLOPPY}, author="new-contributor")
    tidy = github.open_pull(REPO, "quick-tip", title="A tip", author="new-contributor")
    github.add_collaborator(REPO, "repo-admin", "admin")
    ask = github.issue_comment_payload(REPO, tidy, "@bot /style", "repo-admin")
    await harness.deliver("issue_comment", ask)
    await harness.settle_runs(within=120)
    reply = next(c["body"] for c in github.comments(REPO, tidy) if "style:run" in c["body"])
    _say(f"   -> {reply.splitlines()[0]}")
    tip = github.git(REPO).resolve("quick-tip")
    message = github.git(REPO).info(tip).message.strip()
    _say(f"   -> #{tidy}'s branch is now at {tip[:12]}: {message}")
    _say()

    await _on_actions(harness, root)
    _say()
    await _nightly(harness)
    _say()
    await _benchmark_label(harness)
    deliveries = await harness.runtime.store.call(lambda conn: deliveries_db.list_deliveries(conn))
    done = sum(d.status == "done" for d in deliveries)
    _say()
    _say(f"{done} of {len(deliveries)} deliveries handled; `bot deliveries` lists them.")
    _say()
    # The sandbox's GitHub signs a browser in as the maintainer, an operator of this bot.
    github.sign_in_as(operator(root))
    _say(f"Open {harness.url}/ in a browser: runs, the chart of slow jobs per folder, and")
    _say(f"after `sign in` (as {operator(root)}, through the sandbox's GitHub) the deliveries")
    _say("and the outbox, with their replay buttons.")


async def _on_actions(harness: Harness, root: Path) -> None:
    """A second repository runs its slow tests on GitHub Actions runners (the sandbox's run the
    test step of the shipped workflow for real)."""
    github = harness.github
    _say("6. Another repository runs its slow tests on its GitHub Actions runners.")
    files = {
        ".github/workflows/slow-tests.yml": (root / ".github/workflows/slow-tests.yml").read_text(),
        ".github/bot.toml": (
            '[slow_ci]\nreminder = false\nrunner = "github-actions"\n'
            'machine_types = ["single-gpu"]\n'
        ),
        "tests/models/tiny/test_tiny.py": "def test_adds():\n    assert 1 + 1 == 2\n",
    }
    github.create_repo(ACTIONS_REPO, files=files, collaborators={"maintainer": "write"})
    github.commit(ACTIONS_REPO, "tune", {"src.py": "x = 1\n"}, author="contributor")
    number = github.open_pull(ACTIONS_REPO, "tune", title="Tune tiny", author="contributor")
    # No `opened` reached the bot: GitHub's test merge, dated at the push, must be older than
    # the comment (GitHub: to the second).
    await asyncio.sleep(1.1)
    ask = github.issue_comment_payload(ACTIONS_REPO, number, "run-slow: tiny", "maintainer")
    await harness.deliver("issue_comment", ask)
    await harness.settle_runs(within=120)
    await github.actions_idle()
    await harness.settle()
    for run in github.workflow_runs(ACTIONS_REPO):
        _say(f"   -> workflow run {run['id']} ({run['display_title']}): {run['conclusion']}")
    head = github.pull(ACTIONS_REPO, number).head_sha
    status = github.statuses(ACTIONS_REPO, head)[0]
    _say(f"   -> commit status {status['context']}: {status['state']}, {status['description']}")


async def _fire(harness: Harness, repo: str, name: str) -> int:
    """Fires a schedule as the operator's button does; the run's id once its analysis is done."""
    row = await fire(harness, repo, name)
    if row.run_id is None:
        raise RuntimeError(f"the schedule did not start: {row.note}")
    await until_phase(harness.runtime, row.run_id, "done")
    return row.run_id


async def _nightly(harness: Harness) -> None:
    """A third repository's nightly schedule: a run, a merge that breaks a test, and the next
    run naming that merge's pull request and author in Slack."""
    github, runtime = harness.github, harness.runtime
    assert runtime is not None
    _say("7. A third repository runs its slow tests every night ([[scheduled_ci]] in bot.toml).")
    files = {
        ".github/bot.toml": NIGHTLY_TOML,
        "tests/models/tiny/test_tiny.py": (
            "SCALE = 2\n\n\ndef test_scale():\n    assert SCALE * 2 == 4\n\n\n"
            "def test_adds():\n    assert 1 + 1 == 2\n"
        ),
    }
    github.create_repo(NIGHTLY_REPO, files=files, collaborators={"maintainer": "write"})
    gh = await runtime.services.github.for_installation(None)
    await runtime.scheduler.sync_repo(gh, NIGHTLY_REPO, None, "main")
    first = await _fire(harness, NIGHTLY_REPO, "nightly")
    (summary,) = await posted(harness, "ci-daily", 1)
    _say(f"   -> run {first}: Slack #ci-daily: {summary['text']}")
    github.commit(
        NIGHTLY_REPO,
        "rescale",
        {
            "tests/models/tiny/test_tiny.py": files["tests/models/tiny/test_tiny.py"].replace(
                "SCALE = 2", "SCALE = 3"
            )
        },
        author="new-contributor",
        message="Rescale tiny",
    )
    number = github.open_pull(
        NIGHTLY_REPO, "rescale", title="Rescale tiny", author="new-contributor"
    )
    _, merged = github.merge_pull(NIGHTLY_REPO, number, merged_by="maintainer")
    _say(f"   .. #{number} by new-contributor is merged as {merged[:12]}; the next night:")
    second = await _fire(harness, NIGHTLY_REPO, "nightly")
    messages = await posted(
        harness,
        "ci-daily",
        3,
        until=lambda found: any(m["text"].startswith("New failures") for m in found),
    )
    _say(f"   -> run {second}: Slack #ci-daily: {messages[1]['text']}")
    news = next(m for m in messages[1:] if m["text"].startswith("New failures"))
    _say(f"   -> Slack #ci-daily: {news['text']}")
    for verdict in await runtime.services.records.verdicts_of(second):
        _say(
            f"   -> {verdict.test}: {verdict.verdict}, first failing at"
            f" {(verdict.first_bad or '?')[:12]}"
        )
    _say(f"   -> {harness.url}/runs/{second}, and the schedules at {harness.url}/schedules")


async def _benchmark_label(harness: Harness) -> None:
    """A fourth repository's benchmark: a pull request that does fifty times the work, measured
    at its head and base once a maintainer adds the `run-benchmark` label."""
    github = harness.github
    _say(
        "8. A maintainer adds the run-benchmark label to a pull request ([benchmarks] in bot.toml)."
    )
    files = {".github/bot.toml": BENCH_TOML, "bench.py": BENCH_PY, "work.txt": "100000\n"}
    github.create_repo(BENCH_REPO, files=files, collaborators={"maintainer": "write"})
    github.commit(BENCH_REPO, "more-work", {"work.txt": "5000000\n"}, author="contributor")
    number = github.open_pull(BENCH_REPO, "more-work", title="More work", author="contributor")
    await harness.deliver("pull_request", github.pull_request_payload(BENCH_REPO, number, "opened"))
    github.add_label(BENCH_REPO, number, "run-benchmark")
    labeled = github.pull_request_payload(
        BENCH_REPO, number, "labeled", sender="maintainer", label="run-benchmark"
    )
    await harness.deliver("pull_request", labeled)
    await harness.settle()
    await harness.settle_runs(within=300)
    (comment,) = [
        c["body"] for c in github.comments(BENCH_REPO, number) if "### Benchmarks" in c["body"]
    ]
    for line in comment.splitlines():
        if line.startswith(("Benchmarks of", "| sum of squares")):
            _say(f"   -> #{number}: {line}")
    head = github.pull(BENCH_REPO, number).head_sha
    (check,) = [c for c in github.check_runs(BENCH_REPO, head) if c["name"] == "benchmarks"]
    _say(f"   -> check run {check['name']}: {check['conclusion']} ({check['output']['title']})")
    _say(f"   -> every repeat, recorded: {harness.url}/benchmarks/{BENCH_REPO}.json")


async def _main(host: str, port: int) -> int:
    with tempfile.TemporaryDirectory(prefix="maintainer-bot-sandbox-") as tmp:
        settings = Settings(database=str(Path(tmp) / "bot.sqlite3"), operators=(operator(ROOT),))
        harness = Harness(Path(tmp), settings=settings)
        try:
            await harness.start(port=port, host=host)
        except BaseException:
            await harness.close()
            raise
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            _say("No GitHub credentials are set: running against the built-in sandbox.")
            await scenario(harness, ROOT)
            _say(f"Still serving at {harness.url}; press Ctrl-C to stop.")
            await stop.wait()
        finally:
            await harness.close()
    return 0


def run_demo(*, host: str = "127.0.0.1", port: int = 8080) -> int:
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(_main(host, port))
    return 130
