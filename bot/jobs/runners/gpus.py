"""Which GPUs a job may use, handed out so that two jobs never share a device.

A slow test that allocates a whole GPU fails in confusing ways when another job holds part of it,
so devices are leased exclusively through `CUDA_VISIBLE_DEVICES`. Waiters are served strictly in
arrival order: a `multi-gpu` job waiting for two devices is not starved by a stream of
`single-gpu` jobs that each need only one. A machine without a GPU still runs `single-gpu` jobs,
one at a time on the CPU (their GPU tests skip themselves), and refuses `multi-gpu` jobs with a
reason instead of pretending they passed on hardware they never saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import re
import shutil
import subprocess
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

#: told how many jobs are ahead when a lease has to wait; may be a coroutine function
WaitFn = Callable[[int], Awaitable[None] | None]

_GPU_LINE = re.compile(r"^GPU (\d+):", re.MULTILINE)


class MachineUnavailable(Exception):
    """No machine of the asked type exists here; the job is `skipped` with this reason."""


def discover_gpus(nvidia_smi: str = "nvidia-smi", timeout_s: float = 10.0) -> list[str]:
    """Device indices `nvidia-smi -L` lists; none when the tool is missing or fails."""
    exe = shutil.which(nvidia_smi, path=os.environ.get("PATH", "/usr/bin:/bin"))
    if exe is None:
        return []
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C"}
    try:
        done = subprocess.run(
            [exe, "-L"], env=env, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    if done.returncode != 0:
        return []
    return _GPU_LINE.findall(done.stdout)


@dataclass(frozen=True)
class Lease:
    devices: tuple[str, ...]
    machine_type: str

    @property
    def cuda_visible_devices(self) -> str:
        return ",".join(self.devices)

    @property
    def on_cpu(self) -> bool:
        return not self.devices


class GpuPool:
    """Exclusive device leases; `devices=None` asks `nvidia-smi`, `[]` means a CPU-only machine."""

    def __init__(
        self,
        devices: Sequence[str] | None = None,
        *,
        multi_gpu_size: int = 2,
        cpu_slots: int = 1,
    ) -> None:
        found = discover_gpus() if devices is None else [str(d) for d in devices]
        if len(set(found)) != len(found):
            raise ValueError(f"duplicate GPU ids in {found}")
        if multi_gpu_size < 2:
            raise ValueError("a multi-gpu job needs at least 2 devices")
        self.devices: tuple[str, ...] = tuple(found)
        self.multi_gpu_size = multi_gpu_size
        # Without GPUs each "slot" is a turn on the CPU; its device string is empty.
        self._slots: list[str] = list(self.devices) or [""] * max(1, cpu_slots)
        self._order = {d: i for i, d in enumerate(self.devices)}
        self._free: list[str] = list(self._slots)
        self._waiters: deque[tuple[int, asyncio.Future[list[str]]]] = deque()

    @property
    def has_gpu(self) -> bool:
        return bool(self.devices)

    @property
    def free(self) -> int:
        return len(self._free)

    @property
    def waiting(self) -> int:
        return sum(not fut.done() for _, fut in self._waiters)

    def unavailable_reason(self, machine_type: str) -> str | None:
        """Why a job of this type can never run here, or None when it only has to wait."""
        if machine_type == "single-gpu":
            return None
        if machine_type != "multi-gpu":
            return f"unknown machine type {machine_type!r}"
        if not self.devices:
            return "no multi-GPU machine: this runner has no GPU (jobs run on the CPU)"
        if len(self.devices) < self.multi_gpu_size:
            return (
                f"no multi-GPU machine: this runner has {len(self.devices)} GPU, a multi-gpu job"
                f" needs {self.multi_gpu_size}"
            )
        return None

    def _needed(self, machine_type: str) -> int:
        return self.multi_gpu_size if machine_type == "multi-gpu" else 1

    @contextlib.asynccontextmanager
    async def lease(
        self, machine_type: str, *, on_wait: WaitFn | None = None
    ) -> AsyncIterator[Lease]:
        """Hold devices for the body; `on_wait(jobs_ahead)` is called once if the job must wait."""
        reason = self.unavailable_reason(machine_type)
        if reason is not None:
            raise MachineUnavailable(reason)
        taken = await self._acquire(self._needed(machine_type), on_wait)
        try:
            yield Lease(tuple(d for d in taken if d), machine_type)
        finally:
            self._release(taken)

    async def _acquire(self, n: int, on_wait: WaitFn | None) -> list[str]:
        if not self._waiters and len(self._free) >= n:
            return self._take(n)
        fut: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
        ahead = self.waiting
        self._waiters.append((n, fut))
        try:
            if on_wait is not None:
                said = on_wait(ahead)
                if inspect.isawaitable(said):
                    await said
            return await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self._release(fut.result())  # granted just as we were cancelled
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove((n, fut))
                self._grant()  # the head may have been us, blocking smaller requests
            raise

    def _take(self, n: int) -> list[str]:
        taken, self._free = self._free[:n], self._free[n:]
        return taken

    def _release(self, taken: list[str]) -> None:
        self._free.extend(taken)
        self._free.sort(key=lambda d: self._order.get(d, 0))
        self._grant()

    def _grant(self) -> None:
        while self._waiters:
            n, fut = self._waiters[0]
            if fut.done():
                self._waiters.popleft()
                continue
            if len(self._free) < n:
                return
            self._waiters.popleft()
            fut.set_result(self._take(n))
