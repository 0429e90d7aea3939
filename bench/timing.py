"""What the page benchmarks share: timing GETs of a served page the same way."""

from __future__ import annotations

import statistics
import time

import aiohttp


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
