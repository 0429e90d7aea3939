"""The scheduler against the sandbox GitHub and a real store: schedules learnt from each
repository's `bot.toml` (at start, for every installation, and when a push changes it), fires
handed to their feature once, a previous run still going, failing and hanging features, a fire
interrupted by a restart, and a fire by hand.

The features here are small ones made for the test (`Ticker`): a `bot.toml` section
`[<name>.every]` of `schedule = ["<cron>"]`, and an `on_fire` that answers what the test says.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import pytest
from gidgethub.routing import Router

import handlers
from bot.config import RepoConfig, Settings
from bot.kit.context import Services
from bot.kit.feature import Feature, Fire, FireResult, ScheduleSpec
from bot.server.app import create_app
from bot.server.runtime import Runtime
from bot.server.scheduler import STILL_GOING, next_fire_after, pushes_config
from bot.store import runs as runs_db
from bot.store import schedules as schedules_db
from bot.store.schedules import Schedule
from tests.sandbox import SandboxGitHub
from tests.support.seed_runs import write_run
from tests.support.webhooks import SECRET, webhook_headers

REPO = "acme/models"
CONFIG = ".github/bot.toml"


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@dataclass(frozen=True)
class TickerConfig:
    #: schedule name -> [cron]
    every: dict[str, tuple[str, ...]] = field(default_factory=dict)


Answer = Callable[[Services, Fire], Awaitable[FireResult]]


async def _nothing(services: Services, fire: Fire) -> FireResult:
    return FireResult(None, "nothing to do")


class Ticker:
    """A feature with schedules and nothing else; remembers the fires it was handed."""

    def __init__(self, name: str = "ticker") -> None:
        self.name = name
        self.fires: list[Fire] = []
        self.answer: Answer = _nothing
        self.feature = Feature(
            name=name,
            title=name,
            router=Router(),
            config=TickerConfig,
            schedules=self._schedules,
            on_fire=self._on_fire,
        )

    def _schedules(self, config: RepoConfig) -> list[ScheduleSpec]:
        section: TickerConfig = getattr(config, self.name)
        return [ScheduleSpec(name, crons[0]) for name, crons in section.every.items()]

    async def _on_fire(self, services: Services, fire: Fire) -> FireResult:
        self.fires.append(fire)
        return await self.answer(services, fire)


def toml(**sections: dict[str, str]) -> str:
    lines = []
    for name, every in sections.items():
        lines.append(f"[{name}.every]")
        lines += [f"{schedule} = [{json.dumps(cron)}]" for schedule, cron in every.items()]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------- the world


@pytest.fixture
async def hub(tmp_path):
    github = SandboxGitHub(tmp_path / "github")
    await github.start()
    yield github
    await github.close()


@pytest.fixture
def tickers(monkeypatch) -> dict[str, Ticker]:
    made = {name: Ticker(name) for name in ("ticker", "sleepy", "steady")}
    # The bot reads `bot.toml` against its own features; these join them for the test.
    monkeypatch.setattr(
        handlers, "FEATURES", (*handlers.FEATURES, *(t.feature for t in made.values()))
    )
    return made


@pytest.fixture
def settings(tmp_path, hub) -> Settings:
    return Settings(
        webhook_secret=SECRET,
        github_token=hub.token,
        github_api_url=hub.url,
        database=str(tmp_path / "bot.sqlite3"),
        job_work_dir=str(tmp_path / "jobs"),
        env_cache_dir=str(tmp_path / "envs"),
        retry_base_seconds=0.01,
    )


@pytest.fixture
async def runtime(settings, tickers):
    """The bot's runtime without its loops: the test drives the scheduler itself."""
    opened = Runtime(settings, features=tuple(t.feature for t in tickers.values()))
    await opened.start(background=False)
    yield opened
    await opened.stop()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def read(runtime: Runtime, fn):
    return await runtime.store.call(fn)


async def schedule_of(runtime: Runtime, name: str, feature: str = "ticker") -> Schedule | None:
    return await read(runtime, lambda c: schedules_db.get_schedule(c, REPO, feature, name))


async def fires_of(runtime: Runtime, name: str, feature: str = "ticker"):
    return await read(runtime, lambda c: schedules_db.fires_of(c, REPO, feature, name))


async def sync(runtime: Runtime, repo: str = REPO):
    gh = await runtime.services.github.for_installation(None)
    runtime.services.configs.invalidate(repo)
    return await runtime.scheduler.sync_repo(gh, repo, None, "main")


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    async with asyncio.timeout(within):
        while not await check():
            await asyncio.sleep(0.02)


# ---------------------------------------------------------------------- learning schedules


async def test_a_repositorys_schedules_are_read_from_its_config_and_a_bad_cron_is_skipped_alone(
    hub, runtime, caplog
):
    config = toml(ticker={"nightly": "17 2 * * *", "broken": "61 * * * *"}, steady={"x": "@daily"})
    hub.create_repo(REPO, files={CONFIG: config})
    runtime.scheduler.clock = Clock(at("2024-05-01 12:00"))
    with caplog.at_level(logging.WARNING, logger="bot.server.scheduler"):
        result = await sync(runtime)
    assert result is not None and result.added == (("ticker", "nightly"),)
    nightly = await schedule_of(runtime, "nightly")
    assert nightly is not None and nightly.next_fire_at == at("2024-05-02 02:17")
    assert await schedule_of(runtime, "broken") is None
    assert await schedule_of(runtime, "x", "steady") is None
    assert "'broken' of ticker skipped: cron '61 * * * *'" in caplog.text
    assert "'x' of steady skipped" in caplog.text


async def test_a_config_that_does_not_parse_leaves_the_schedules_as_they_were(hub, runtime):
    hub.create_repo(REPO, files={CONFIG: toml(ticker={"nightly": "17 2 * * *"})})
    await sync(runtime)
    before = await schedule_of(runtime, "nightly")
    hub.commit(REPO, "main", {CONFIG: "[ticker.every\nnightly = "})
    assert await sync(runtime) is None
    assert await schedule_of(runtime, "nightly") == before
    # A config that parses and asks for nothing is another matter: the schedule goes.
    hub.commit(REPO, "main", {CONFIG: toml(steady={"x": "0 * * * *"})})
    result = await sync(runtime)
    assert result is not None and result.disabled == (("ticker", "nightly"),)
    gone = await schedule_of(runtime, "nightly")
    assert gone is not None and not gone.enabled


@pytest.mark.parametrize(
    ("push", "changed"),
    [
        ({"commits": [{"added": [], "modified": [CONFIG], "removed": []}]}, True),
        ({"commits": [{"added": [CONFIG], "modified": [], "removed": []}]}, True),
        ({"commits": [{"added": [], "modified": [], "removed": [CONFIG]}]}, True),
        ({"commits": [{"added": ["README.md"], "modified": [], "removed": []}]}, False),
        # What the commits cannot tell: a forced push, a new branch, no commits listed.
        ({"forced": True, "commits": [{"added": [], "modified": [], "removed": []}]}, True),
        ({"created": True, "commits": [{"added": [], "modified": [], "removed": []}]}, True),
        ({"commits": []}, True),
        ({"commits": [{"modified": ["x"]}] * 2048}, True),
    ],
)
def test_which_pushes_may_change_the_config(push, changed):
    assert pushes_config(push) is changed


async def test_a_push_to_the_default_branch_that_changes_bot_toml_reads_the_schedules_again(
    aiohttp_client, hub, settings, tickers
):
    hub.create_repo(REPO, files={CONFIG: toml(ticker={"nightly": "17 2 * * *"}), "a.py": ""})
    runtime = Runtime(settings, features=(tickers["ticker"].feature,))
    client = await aiohttp_client(create_app(settings, runtime=runtime))
    reads: list[str] = []
    real = runtime.scheduler.sync_repo

    async def counted(gh, repo, installation_id, branch):
        reads.append(repo)
        return await real(gh, repo, installation_id, branch)

    runtime.scheduler.sync_repo = counted  # type: ignore[method-assign]

    async def push(changes: dict[str, str], branch: str = "main") -> None:
        before = hub.repos[REPO].git.branch_sha(branch) or "0" * 40
        after = hub.commit(REPO, branch, changes)
        data = hub.push_payload(REPO, f"refs/heads/{branch}", before, after)
        body = json.dumps(data).encode()
        response = await client.post("/webhook", data=body, headers=webhook_headers("push", body))
        assert response.status == 202

    async def hourly_known() -> bool:
        found = await schedule_of(runtime, "hourly")
        return found is not None and found.enabled

    # The first push this process sees of a repository reads it, config changed or not.
    await push({"a.py": "1"})
    await eventually(lambda: asyncio.sleep(0, result=bool(reads)))
    await runtime.scheduler.settle()
    assert reads == [REPO] and await schedule_of(runtime, "nightly") is not None
    # Pushes that leave the config alone, or go to another branch, read nothing.
    await push({"a.py": "2"})
    await push({CONFIG: toml(ticker={"elsewhere": "0 * * * *"})}, branch="feature")
    await asyncio.sleep(0.3)
    await runtime.scheduler.settle()
    assert reads == [REPO]
    # A push that changes it does.
    await push({CONFIG: toml(ticker={"nightly": "17 2 * * *", "hourly": "0 * * * *"})})
    await eventually(hourly_known)
    assert reads == [REPO, REPO]


async def test_at_start_every_installations_repositories_are_read(hub, settings, tickers, tmp_path):
    # App mode: the installation lists its repositories; one has schedules, one has no config,
    # one a config that does not parse, and a repository it no longer lists had schedules.
    hub.create_repo(REPO, files={CONFIG: toml(ticker={"nightly": "17 2 * * *"})})
    hub.create_repo("acme/plain", files={"README.md": "x\n"})
    hub.create_repo("acme/broken", files={CONFIG: "[ticker.every\n"})
    app_settings = replace(
        settings,
        github_token=None,
        github_app_id=str(hub.app_id),
        github_private_key=hub.private_key_pem,
    )
    runtime = Runtime(app_settings, features=(tickers["ticker"].feature,))
    for repo in ("acme/broken", "acme/gone"):
        runtime.store.call_sync(
            lambda c, r=repo: schedules_db.sync_schedules(
                c,
                r,
                hub.installation_id,
                {("ticker", "old"): "0 * * * *"},
                0.0,
                next_after=lambda cron, t: t + 3600,
            )
        )
    await runtime.start()
    try:
        await eventually(lambda: schedule_of(runtime, "nightly"))
        nightly = await schedule_of(runtime, "nightly")
        assert nightly is not None and nightly.installation_id == hub.installation_id

        async def gone_disabled() -> bool:
            found = await read(
                runtime, lambda c: schedules_db.get_schedule(c, "acme/gone", "ticker", "old")
            )
            return found is not None and not found.enabled

        await eventually(gone_disabled)
        broken = await read(
            runtime, lambda c: schedules_db.get_schedule(c, "acme/broken", "ticker", "old")
        )
        assert broken is not None and broken.enabled  # kept as it was
        repos = await read(runtime, schedules_db.scheduled_repos)
        assert sorted(r for r, _ in repos) == ["acme/broken", REPO]
    finally:
        await runtime.stop()


# ---------------------------------------------------------------------- firing


async def test_a_due_fire_is_handed_to_its_feature_once_and_its_run_recorded(hub, runtime, tickers):
    hub.create_repo(REPO, files={CONFIG: toml(ticker={"nightly": "17 2 * * *"})})
    clock = runtime.scheduler.clock = Clock(at("2024-05-01 12:00"))
    await sync(runtime)
    run_id = await read(runtime, lambda c: write_run(c, repo=REPO, state="finished"))

    async def started(services: Services, fire: Fire) -> FireResult:
        return FireResult(run_id)

    tickers["ticker"].answer = started
    assert await runtime.scheduler.tick() == []
    clock.now = at("2024-05-02 02:17:30")
    (claimed,) = await runtime.scheduler.tick()
    assert await runtime.scheduler.tick() == []
    await runtime.scheduler.settle()
    (fire,) = tickers["ticker"].fires
    assert (fire.id, fire.repo, fire.name, fire.manual) == (claimed.id, REPO, "nightly", False)
    assert fire.due_at == at("2024-05-02 02:17") and fire.installation_id is None
    (stored,) = await fires_of(runtime, "nightly")
    assert stored.finished and stored.run_id == run_id
    nightly = await schedule_of(runtime, "nightly")
    assert nightly is not None and nightly.last_run_id == run_id
    assert nightly.next_fire_at == at("2024-05-03 02:17")


async def test_a_schedule_whose_previous_run_is_still_going_starts_nothing(hub, runtime, tickers):
    hub.create_repo(REPO, files={CONFIG: toml(ticker={"hourly": "0 * * * *"})})
    clock = runtime.scheduler.clock = Clock(at("2024-05-01 12:00"))
    await sync(runtime)
    run_id = await read(runtime, lambda c: write_run(c, repo=REPO, state="running"))

    async def long_run(services: Services, fire: Fire) -> FireResult:
        return FireResult(run_id)

    ticker = tickers["ticker"]
    ticker.answer = long_run
    for hour in (13, 14):
        clock.now = at(f"2024-05-01 {hour}:00:05")
        await runtime.scheduler.tick()
        await runtime.scheduler.settle()
    assert len(ticker.fires) == 1
    second, first = await fires_of(runtime, "hourly")
    assert first.run_id == run_id
    assert (second.run_id, second.note) == (None, STILL_GOING.format(run_id=run_id))
    # Once it has ended, the next fire starts again.
    await read(
        runtime,
        lambda c: runs_db.end_run(
            c, run_id, state="cancelled", reason="test", superseded_by=None, now=0.0
        ),
    )
    clock.now = at("2024-05-01 15:00:05")
    await runtime.scheduler.tick()
    await runtime.scheduler.settle()
    assert len(ticker.fires) == 2


async def test_a_feature_that_fails_or_hangs_is_noted_and_stops_no_other(
    hub, settings, tickers, caplog
):
    config = toml(
        ticker={"nightly": "0 2 * * *"},
        sleepy={"nightly": "0 2 * * *"},
        steady={"nightly": "0 2 * * *"},
    )
    hub.create_repo(REPO, files={CONFIG: config})
    runtime = Runtime(
        replace(settings, handler_timeout_seconds=0.3),
        features=tuple(t.feature for t in tickers.values()),
    )
    await runtime.start(background=False)
    try:
        clock = runtime.scheduler.clock = Clock(at("2024-05-01 12:00"))
        await sync(runtime)
        run_id = await read(runtime, lambda c: write_run(c, repo=REPO))

        async def fails(services: Services, fire: Fire) -> FireResult:
            raise RuntimeError("GitHub is down")

        async def hangs(services: Services, fire: Fire) -> FireResult:
            await asyncio.sleep(60)
            raise AssertionError("not reached")

        async def starts(services: Services, fire: Fire) -> FireResult:
            return FireResult(run_id)

        tickers["ticker"].answer, tickers["sleepy"].answer = fails, hangs
        tickers["steady"].answer = starts
        clock.now = at("2024-05-02 02:00:01")
        with caplog.at_level(logging.ERROR, logger="bot.server.scheduler"):
            assert len(await runtime.scheduler.tick()) == 3
            await runtime.scheduler.settle()
        (failed,) = await fires_of(runtime, "nightly", "ticker")
        (hung,) = await fires_of(runtime, "nightly", "sleepy")
        (steady,) = await fires_of(runtime, "nightly", "steady")
        assert failed.note == "ticker failed: RuntimeError: GitHub is down"
        assert hung.note == "sleepy did not finish starting within 0.3 s"
        assert steady.run_id == run_id and steady.finished
        assert "ticker's on_fire for fire" in caplog.text
        # The loop goes on: the next slot is claimed as usual.
        clock.now = at("2024-05-03 02:00:01")
        assert len(await runtime.scheduler.tick()) == 3
        await runtime.scheduler.settle()
    finally:
        await runtime.stop()


async def test_a_fire_claimed_before_a_restart_is_handed_over_at_the_next_start(
    hub, settings, tickers
):
    hub.create_repo(REPO, files={CONFIG: toml(ticker={"hourly": "0 * * * *"})})
    first = Runtime(settings, features=(tickers["ticker"].feature,))
    await first.start(background=False)
    first.scheduler.clock = Clock(at("2024-05-01 12:00"))
    await sync(first)
    # The process claims the fire and stops before handing it over.
    (claimed,) = await first.store.call(
        lambda c: schedules_db.claim_due(c, at("2024-05-01 13:00:05"), next_after=next_fire_after)
    )
    await first.stop()
    assert tickers["ticker"].fires == []

    second = Runtime(settings, features=(tickers["ticker"].feature,))
    await second.start()  # the scheduler runs, on today's clock

    async def both_finished() -> bool:
        stored = await fires_of(second, "hourly")
        return len(stored) == 2 and all(f.finished for f in stored)

    try:
        await eventually(both_finished)
        await second.scheduler.settle()
        # The interrupted fire is handed over again, and the slots missed since, once.
        resumed, missed = tickers["ticker"].fires
        assert (resumed.id, resumed.due_at) == (claimed.id, at("2024-05-01 13:00"))
        assert missed.due_at == at("2024-05-01 14:00") and missed.id != claimed.id
        latest, first_fire = await fires_of(second, "hourly")
        assert (first_fire.id, first_fire.attempts, first_fire.note) == (
            claimed.id,
            2,
            "nothing to do",
        )
        assert latest.attempts == 1
    finally:
        await second.stop()


async def test_a_fire_by_hand_needs_a_running_scheduler_and_moves_no_time(hub, settings, tickers):
    hub.create_repo(REPO, files={CONFIG: toml(ticker={"nightly": "17 2 * * *"})})
    runtime = Runtime(settings, features=(tickers["ticker"].feature,))
    await runtime.start(background=False)
    await sync(runtime)
    with pytest.raises(RuntimeError, match="does not run"):
        await runtime.scheduler.fire_now(REPO, "ticker", "nightly")
    await runtime.stop()

    runtime = Runtime(settings, features=(tickers["ticker"].feature,))
    await runtime.start()
    try:
        before = await schedule_of(runtime, "nightly")
        fire = await runtime.scheduler.fire_now(REPO, "ticker", "nightly")
        assert fire is not None and fire.manual
        assert await runtime.scheduler.fire_now(REPO, "ticker", "weekly") is None
        await eventually(lambda: asyncio.sleep(0, result=bool(tickers["ticker"].fires)))
        (handed,) = tickers["ticker"].fires
        assert handed.manual and handed.id == fire.id
        after = await schedule_of(runtime, "nightly")
        assert before is not None and after is not None
        assert after.next_fire_at == before.next_fire_at
    finally:
        await runtime.stop()


async def test_schedules_fire_while_github_cannot_be_read_at_start_and_a_stop_is_prompt(
    hub, settings, tickers, caplog
):
    # App mode with GitHub unreachable: the start-up read fails and waits to try again, while
    # the schedules the store already holds fire as due.
    unreachable = replace(
        settings,
        github_token=None,
        github_app_id=str(hub.app_id),
        github_private_key=hub.private_key_pem,
        github_api_url="http://127.0.0.1:9",
    )
    runtime = Runtime(unreachable, features=(tickers["ticker"].feature,))
    runtime.store.call_sync(
        lambda c: schedules_db.sync_schedules(
            c, REPO, 1, {("ticker", "hourly"): "0 * * * *"}, 0.0, next_after=next_fire_after
        )
    )
    with caplog.at_level(logging.WARNING, logger="bot.server.scheduler"):
        await runtime.start()
        try:
            await eventually(lambda: asyncio.sleep(0, result=bool(tickers["ticker"].fires)))
            await eventually(lambda: asyncio.sleep(0, result="trying again in" in caplog.text))
            assert not runtime.scheduler.read_at_start.is_set()
        finally:
            async with asyncio.timeout(10):  # not the minutes the next try is due in
                await runtime.stop()
    (fire,) = tickers["ticker"].fires
    assert fire.installation_id == 1 and fire.due_at == 3600.0
