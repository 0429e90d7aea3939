"""The GPU pool: exclusive leases, arrival order, the CPU fallback and discovery."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import pytest

from bot.jobs.runners.gpus import GpuPool, MachineUnavailable, discover_gpus


async def test_without_gpu_one_job_at_a_time_on_the_cpu() -> None:
    pool = GpuPool(devices=[])
    assert not pool.has_gpu and pool.unavailable_reason("single-gpu") is None
    order: list[str] = []

    async def job(name: str) -> None:
        async with pool.lease("single-gpu") as lease:
            assert lease.cuda_visible_devices == "" and lease.on_cpu
            order.append(f"{name}+")
            await asyncio.sleep(0.05)
            order.append(f"{name}-")

    await asyncio.gather(job("a"), job("b"), job("c"))
    assert order == ["a+", "a-", "b+", "b-", "c+", "c-"]

    reason = pool.unavailable_reason("multi-gpu")
    assert reason is not None and reason.startswith("no multi-GPU machine: ")
    with pytest.raises(MachineUnavailable, match="no multi-GPU machine"):
        async with pool.lease("multi-gpu"):
            pass


async def test_leases_are_exclusive_and_served_in_arrival_order() -> None:
    pool = GpuPool(devices=["0", "1", "2"])
    got: list[tuple[str, str]] = []
    waits: list[int] = []
    release = asyncio.Event()

    async def job(name: str, machine: str) -> None:
        async with pool.lease(machine, on_wait=waits.append) as lease:
            got.append((name, lease.cuda_visible_devices))
            await release.wait()

    first = asyncio.create_task(job("s1", "single-gpu"))
    second = asyncio.create_task(job("m1", "multi-gpu"))
    await asyncio.sleep(0.01)
    assert got == [("s1", "0"), ("m1", "1,2")] and pool.free == 0
    third = asyncio.create_task(job("m2", "multi-gpu"))
    fourth = asyncio.create_task(job("s2", "single-gpu"))  # behind m2, though one GPU frees first
    await asyncio.sleep(0.01)
    assert pool.waiting == 2 and waits == [0, 1]
    release.set()
    await asyncio.gather(first, second, third, fourth)
    assert [name for name, _ in got] == ["s1", "m1", "m2", "s2"]
    assert all(len(d.split(",")) == (2 if n[0] == "m" else 1) for n, d in got)
    assert pool.free == 3


async def test_a_cancelled_waiter_gives_its_place_up() -> None:
    pool = GpuPool(devices=["0", "1"])
    async with pool.lease("single-gpu"):
        big = asyncio.create_task(_hold(pool, "multi-gpu"))  # needs both: waits
        await asyncio.sleep(0.01)
        small = asyncio.create_task(_hold(pool, "single-gpu"))  # queued behind it
        await asyncio.sleep(0.01)
        assert not small.done()
        big.cancel()
        assert await small == "1"  # the head left, so the free GPU goes to the next in line
    assert pool.free == 2 and pool.waiting == 0


async def _hold(pool: GpuPool, machine: str) -> str:
    async with pool.lease(machine) as lease:
        return lease.cuda_visible_devices


def test_one_gpu_is_not_a_multi_gpu_machine() -> None:
    reason = GpuPool(devices=["0"]).unavailable_reason("multi-gpu")
    assert reason is not None and "has 1 GPU" in reason
    assert GpuPool(devices=["0", "1"]).unavailable_reason("multi-gpu") is None
    with pytest.raises(ValueError):
        GpuPool(devices=["0", "0"])


def test_discovery_reads_nvidia_smi(tmp_path: Path) -> None:
    fake = tmp_path / "nvidia-smi"
    fake.write_text(
        "#!/bin/sh\n"
        'echo "GPU 0: NVIDIA H200 (UUID: GPU-aaaa)"\n'
        'echo "GPU 1: NVIDIA H200 (UUID: GPU-bbbb)"\n'
    )
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    assert discover_gpus(str(fake)) == ["0", "1"]
    assert discover_gpus(str(tmp_path / "absent")) == []
    broken = tmp_path / "broken"
    broken.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2\nexit 9\n")
    broken.chmod(broken.stat().st_mode | stat.S_IXUSR)
    assert discover_gpus(str(broken)) == []
