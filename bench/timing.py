"""What the page benchmarks share: the bot's application served on loopback over a seeded
store, and timing GETs of a page the same way."""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

from bot.config import Settings
from bot.server import serving
from bot.server.app import create_app
from bot.server.runtime import Runtime


@contextlib.asynccontextmanager
async def served(database: str, work: Path) -> AsyncIterator[tuple[str, Runtime]]:
    """`bot serve`'s application on the store at `database`, on a free loopback port: its
    base URL and its runtime (for reads and writes beside the requests)."""
    settings = Settings(
        webhook_secret="bench-secret-" + "x" * 20,
        database=database,
        job_work_dir=str(work / "jobs"),
    )
    runtime = Runtime(settings)
    runner, base = await serving.start(create_app(settings, runtime=runtime), "127.0.0.1", 0)
    try:
        yield base, runtime
    finally:
        await runner.cleanup()
        runtime.store.close()


async def time_get(url: str, repeats: int) -> tuple[float, float, int]:
    """The first GET (what a cold read costs) and the median of `repeats` more, in ms, and the
    answer's size in bytes; a first answer that is not 200 stops the benchmark."""
    async with aiohttp.ClientSession() as session:
        start = time.perf_counter()
        async with session.get(url) as first:
            body = await first.read()
            assert first.status == 200, (first.status, body[:500])
        cold = (time.perf_counter() - start) * 1000
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            async with session.get(url) as response:
                await response.read()
            times.append((time.perf_counter() - start) * 1000)
    return cold, statistics.median(times), len(body)
