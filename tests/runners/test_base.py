"""The shared runner pieces: the bounded, redacting log and the process-group helper."""

from __future__ import annotations

import asyncio
import sys
import time

import pytest

from bot.jobs.runners.base import BoundedLog, JobOutcome, resolve_token, stream_process


async def test_log_keeps_head_and_tail_and_says_what_was_cut() -> None:
    seen: list[str] = []
    log = BoundedLog(limit_bytes=2000, sink=seen.append)
    for i in range(1000):
        await log.write(f"line {i:04d} " + "x" * 20)
    text = log.text()
    assert len(text.encode()) < 2200
    assert text.startswith("line 0000") and "line 0999" in text
    assert f"… {log.cut_lines} lines (" in text and log.cut_lines > 900
    assert len(seen) == 1000  # the sink saw everything
    assert log.tail(3).splitlines() == [f"line {i:04d} " + "x" * 20 for i in (997, 998, 999)]


async def test_log_masks_secrets_and_survives_a_broken_sink() -> None:
    def broken(_line: str) -> None:
        raise RuntimeError("viewer went away")

    log = BoundedLog(sink=broken, secrets=["ghs_secret_value_123"])
    await log.write("fatal: could not read from https://x:ghs_secret_value_123@github.com")
    await log.write("after")
    assert "ghs_secret_value_123" not in log.text() and "***" in log.text()
    assert log.text().endswith("after\n")
    await log.write("y" * 20000)
    assert "characters cut" in log.text()


async def test_stream_process_times_out_and_kills() -> None:
    lines: list[str] = []

    async def on_line(line: str) -> None:
        lines.append(line)

    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await stream_process(
            [sys.executable, "-c", "import time; print('started', flush=True); time.sleep(30)"],
            env={"PATH": "/usr/bin:/bin"}, cwd="/", on_line=on_line, timeout_s=0.5,
            kill_grace_s=0.5,
        )  # fmt: skip
    assert time.monotonic() - started < 5 and lines == ["started"]
    code = await stream_process(
        [sys.executable, "-c", "import sys; sys.stdout.write('a\\nb'); sys.exit(3)"],
        env={"PATH": "/usr/bin:/bin"}, cwd="/",
        on_line=on_line,
    )  # fmt: skip
    assert code == 3 and lines[-2:] == ["a", "b"]


async def test_token_providers_sync_and_async() -> None:
    async def later() -> str:
        await asyncio.sleep(0)
        return "t2"

    assert await resolve_token(None) is None
    assert await resolve_token(lambda: "t1") == "t1"
    assert await resolve_token(later) == "t2"
    assert await resolve_token(lambda: "") is None
    assert JobOutcome("skipped").ok and not JobOutcome("timed_out").ok
