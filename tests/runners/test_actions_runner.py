"""The Actions runner on its own, against the sandbox GitHub: the ends a job can come to that
the end-to-end tests do not reach (a run that outlives its time, one no runner takes, an
artifact gone), each with its reason and the workflow run cancelled where it was still going;
and the artifact read as the untrusted input it is (a pull request's code wrote it): bombs,
foreign compression, too many files and huge logs cost bounded memory and end in a reason."""

from __future__ import annotations

import asyncio
import bz2
import hashlib
import io
import struct
import tracemalloc
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest

from bot.jobs.runners.actions import ActionsConfig, ActionsRunner, ArtifactLimits, correlation_id
from bot.jobs.runners.base import RunRequest
from tests.sandbox import SandboxGitHub
from tests.support.slow_ci import REPO, head, open_slow_pull

ROOT = Path(__file__).resolve().parents[2]
FILES = {
    ".github/workflows/slow-tests.yml": (ROOT / ".github/workflows/slow-tests.yml").read_text(),
    "tests/models/toy/test_toy.py": "def test_one():\n    pass\n",
    "tests/models/sleepy/test_sleep.py": "import time\n\n\ndef test_x():\n    time.sleep(60)\n",
}


def _request(hub: SandboxGitHub, folder: str, **fields) -> RunRequest:
    number = open_slow_pull(SimpleNamespace(github=hub), FILES)
    return RunRequest(
        job_id="7",
        run_id="3",
        repo=REPO,
        head_clone_url=f"{hub.url}/{REPO}.git",
        head_sha=head(SimpleNamespace(github=hub), number),
        folder=folder,
        pull_number=number,
        token=lambda: hub.token,
        options={"workflow": "slow-tests.yml", "ref": "main", "run_key": "k"},
        **fields,
    )


async def _run(runner: ActionsRunner, request: RunRequest):
    try:
        async with asyncio.timeout(60):
            return await runner.run(request)
    finally:
        await runner.close()


async def test_a_run_past_its_time_is_cancelled_on_github_and_ends_timed_out(hub):
    request = _request(hub, "models/sleepy", timeout_s=1.0)
    runner = ActionsRunner(ActionsConfig(api_url=hub.url, poll_s=0.2))
    outcome = await _run(runner, request)
    assert outcome.state == "timed_out"
    assert "the workflow run was cancelled" in outcome.reason
    await hub.actions_idle()
    (run,) = hub.workflow_runs(REPO)
    assert run["conclusion"] == "cancelled"


async def test_a_run_no_runner_takes_ends_in_error_naming_its_labels(hub):
    request = _request(hub, "models/toy")
    hold = hub.hold_next_run()  # no runner ever picks it up
    runner = ActionsRunner(ActionsConfig(api_url=hub.url, poll_s=0.2, queue_timeout_s=0.5))
    outcome = await _run(runner, request)
    assert outcome.state == "error"
    assert "no runner took the job" in outcome.reason and "single-gpu" in outcome.reason
    hold.release()
    await hub.actions_idle()
    (run,) = hub.workflow_runs(REPO)
    assert run["conclusion"] == "cancelled"


async def test_an_expired_artifact_ends_the_job_in_error_with_the_reason(hub):
    request = _request(hub, "models/toy")
    runner = ActionsRunner(ActionsConfig(api_url=hub.url, poll_s=0.2))
    original = runner._artifact

    async def expire_first(gh, watch, correlation):
        for artifact in hub.artifacts(REPO, watch.run_id):
            hub.expire_artifact(REPO, artifact["id"])
        return await original(gh, watch, correlation)

    runner._artifact = expire_first  # type: ignore[method-assign]
    outcome = await _run(runner, request)
    assert outcome.state == "error"
    assert f"the artifact slow-tests-{correlation_id(request)} has expired" in outcome.reason


async def test_the_token_is_masked_in_the_log_and_never_sent_to_the_download_host(hub):
    request = _request(hub, "models/toy")
    runner = ActionsRunner(ActionsConfig(api_url=hub.url, poll_s=0.2))
    outcome = await _run(runner, request)
    # The sandbox's download host refuses any request that carries an Authorization header.
    assert outcome.state == "passed", outcome.reason
    assert hub.token not in outcome.log


# ---------------------------------------------------------------- hostile artifacts

MiB = 1024 * 1024
#: Far above what reading an honest artifact costs, far below what any of the bombs holds.
MEMORY_BOUND = 64 * MiB


def forge_zip(members: list[tuple[str, int, bytes, int, int]]) -> bytes:
    """A zip written by hand: (name, method, stored bytes, claimed size, CRC) each, so that a
    header can claim whatever a hostile uploader likes."""
    out = io.BytesIO()
    directory = io.BytesIO()
    for name, method, data, claimed, crc in members:
        offset, encoded = out.tell(), name.encode()
        sizes = (crc, len(data), claimed, len(encoded), 0)
        out.write(struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, method, 0, 33, *sizes))
        out.write(encoded + data)
        entry = (b"PK\x01\x02", 20, 20, 0, method, 0, 33, *sizes, 0, 0, 0, 0, offset)
        directory.write(struct.pack("<4s6H3L5H2L", *entry) + encoded)
    start, central = out.tell(), directory.getvalue()
    out.write(central)
    count = len(members)
    out.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, count, count, len(central), start, 0))
    return out.getvalue()


def stored(name: str, data: bytes) -> tuple[str, int, bytes, int, int]:
    return name, zipfile.ZIP_STORED, data, len(data), zlib.crc32(data)


def deflate_bomb(mib: int) -> bytes:
    """Raw deflate of `mib` MiB of zeros, about a kilobyte per MiB: independent blocks repeated."""
    squeeze = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = squeeze.compress(bytes(MiB)) + squeeze.flush(zlib.Z_FULL_FLUSH)
    return block * mib + squeeze.flush(zlib.Z_FINISH)


def bzip2_bomb(mib: int) -> bytes:
    squeeze = bz2.BZ2Compressor(9)
    chunks = [squeeze.compress(bytes(MiB)) for _ in range(mib)]
    return b"".join(chunks) + squeeze.flush()


def members_of(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def replace_artifact(
    runner: ActionsRunner, hub: SandboxGitHub, make: Callable[[dict[str, bytes]], bytes]
) -> None:
    """Before the runner fetches the run's artifact, swap it for `make(the real members)`."""
    original = runner._artifact

    async def swapped(gh, watch, correlation):
        for listed in hub.artifacts(REPO, watch.run_id):
            with hub.lock:
                artifact = hub.repo(REPO).artifacts[listed["id"]]
                artifact.data = make(members_of(artifact.data))
                artifact.digest = "sha256:" + hashlib.sha256(artifact.data).hexdigest()
        return await original(gh, watch, correlation)

    runner._artifact = swapped  # type: ignore[method-assign]


async def run_measured(runner: ActionsRunner, request: RunRequest, on_log=None):
    tracemalloc.start()
    try:
        async with asyncio.timeout(60):
            outcome = await runner.run(request, on_log)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        await runner.close()
    return outcome, peak


async def test_a_bzip2_member_lying_about_its_size_is_refused_unread(hub):
    bomb = bzip2_bomb(128)  # about 200 bytes that inflate to 128 MiB
    request = _request(hub, "models/toy")
    runner = ActionsRunner(ActionsConfig(api_url=hub.url, poll_s=0.2))
    replace_artifact(
        runner,
        hub,
        lambda real: forge_zip(
            [("junit.xml", zipfile.ZIP_BZIP2, bomb, 1000, 0), stored("log.txt", real["log.txt"])]
        ),
    )
    outcome, peak = await run_measured(runner, request)
    assert peak < MEMORY_BOUND, f"peak {peak} bytes"
    assert outcome.state == "error"
    assert "bzip2" in outcome.reason and "only stored or deflated" in outcome.reason


@pytest.mark.parametrize("member", ["junit.xml", "log.txt"])
async def test_a_deflate_bomb_whose_header_lies_costs_bounded_memory(hub, member):
    bomb = deflate_bomb(256)  # 260 KB that inflate to 256 MiB
    request = _request(hub, "models/toy")
    runner = ActionsRunner(ActionsConfig(api_url=hub.url, poll_s=0.2))

    def make(real: dict[str, bytes]) -> bytes:
        files = {name: stored(name, data) for name, data in real.items()}
        files[member] = (member, zipfile.ZIP_DEFLATED, bomb, 4096, 0)
        return forge_zip(list(files.values()))

    replace_artifact(runner, hub, make)
    outcome, peak = await run_measured(runner, request)
    assert peak < MEMORY_BOUND, f"peak {peak} bytes"
    assert outcome.state == "error"
    assert f"its {member} could not be read" in outcome.reason


async def test_a_deflate_bomb_that_admits_its_size_is_cut_at_the_cap(hub):
    bomb, crc = deflate_bomb(64), zlib.crc32(bytes(64 * MiB))
    request = _request(hub, "models/toy")
    runner = ActionsRunner(ActionsConfig(api_url=hub.url, poll_s=0.2))
    replace_artifact(
        runner,
        hub,
        lambda real: forge_zip(
            [
                ("junit.xml", zipfile.ZIP_DEFLATED, bomb, 64 * MiB, crc),
                stored("log.txt", real["log.txt"]),
            ]
        ),
    )
    outcome, peak = await run_measured(runner, request)
    assert peak < MEMORY_BOUND, f"peak {peak} bytes"
    assert outcome.state == "error"
    assert "its junit.xml is larger than" in outcome.reason


async def test_a_log_bomb_that_admits_its_size_is_read_up_to_the_cap_only(hub):
    bomb, crc = deflate_bomb(64), zlib.crc32(bytes(64 * MiB))
    request = _request(hub, "models/toy")
    limits = ArtifactLimits(log_bytes=8 * MiB)
    runner = ActionsRunner(ActionsConfig(api_url=hub.url, poll_s=0.2, artifact=limits))
    replace_artifact(
        runner,
        hub,
        lambda real: forge_zip(
            [
                stored("junit.xml", real["junit.xml"]),
                ("log.txt", zipfile.ZIP_DEFLATED, bomb, 64 * MiB, crc),
            ]
        ),
    )
    outcome, peak = await run_measured(runner, request)
    assert peak < MEMORY_BOUND, f"peak {peak} bytes"
    assert outcome.state == "passed", outcome.reason
    assert f"log.txt was read up to {8 * MiB} bytes only" in outcome.log
    assert len(outcome.log.encode()) < 64 * 1024


@pytest.mark.parametrize("method", [zipfile.ZIP_LZMA, zipfile.ZIP_BZIP2], ids=["lzma", "bzip2"])
async def test_members_compressed_otherwise_than_deflate_are_refused(hub, method):
    request = _request(hub, "models/toy")
    runner = ActionsRunner(ActionsConfig(api_url=hub.url, poll_s=0.2))

    def make(real: dict[str, bytes]) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("junit.xml", real["junit.xml"], compress_type=method)
            archive.writestr("log.txt", real["log.txt"], compress_type=zipfile.ZIP_DEFLATED)
        return buffer.getvalue()

    replace_artifact(runner, hub, make)
    outcome, _ = await run_measured(runner, request)
    assert outcome.state == "error"
    name = {zipfile.ZIP_LZMA: "lzma", zipfile.ZIP_BZIP2: "bzip2"}[method]
    assert f"holds 'junit.xml' compressed with {name}" in outcome.reason


async def test_an_artifact_with_too_many_files_is_refused(hub):
    request = _request(hub, "models/toy")
    runner = ActionsRunner(ActionsConfig(api_url=hub.url, poll_s=0.2))

    def make(real: dict[str, bytes]) -> bytes:
        files = [stored(name, data) for name, data in real.items()]
        files += [stored(f"junk/{i}.txt", b"") for i in range(5000)]
        return forge_zip(files)

    replace_artifact(runner, hub, make)
    outcome, peak = await run_measured(runner, request)
    assert peak < MEMORY_BOUND, f"peak {peak} bytes"
    assert outcome.state == "error"
    assert "5002 files" in outcome.reason and "more than 100" in outcome.reason


async def test_a_refused_junit_xml_ends_the_job_in_error_not_passed(hub):
    laughs = (
        '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">]>'
        '<testsuites><testsuite><testcase classname="t" name="&a;"/></testsuite></testsuites>'
    ).encode("utf-16")
    request = _request(hub, "models/toy")
    runner = ActionsRunner(ActionsConfig(api_url=hub.url, poll_s=0.2))
    replace_artifact(
        runner,
        hub,
        lambda real: forge_zip([stored("junit.xml", laughs), stored("log.txt", real["log.txt"])]),
    )
    outcome, _ = await run_measured(runner, request)
    assert outcome.state == "error"
    assert "junit.xml was refused" in outcome.reason and "UTF-8" in outcome.reason
    assert outcome.tests == () and outcome.junit_xml is None


async def test_a_16_mib_log_is_kept_as_head_and_tail_and_never_replayed_whole(hub):
    lines = [f"line {i:07d} " + "x" * 90 for i in range(16 * MiB // 100)]
    big_log = ("\n".join(lines) + "\n").encode()
    request = _request(hub, "models/toy")
    runner = ActionsRunner(ActionsConfig(api_url=hub.url, poll_s=0.2))

    def make(real: dict[str, bytes]) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("junit.xml", real["junit.xml"])
            archive.writestr("log.txt", big_log)
        return buffer.getvalue()

    replace_artifact(runner, hub, make)
    seen: list[str] = []
    outcome, peak = await run_measured(runner, request, seen.append)
    assert peak < MEMORY_BOUND, f"peak {peak} bytes"
    assert outcome.state == "passed", outcome.reason
    assert outcome.passed == 1
    assert lines[0] in outcome.log and lines[-1] in outcome.log
    assert "lines (" in outcome.log and "cut" in outcome.log
    assert len(outcome.log.encode()) < 2 * MiB + 4096
    # What the live log is sent is bounded too: the artifact's log is not replayed line by line.
    assert sum(len(line) + 1 for line in seen) < 2 * MiB
    assert lines[0] in seen and lines[-1] in seen
