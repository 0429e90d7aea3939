"""The artifact reader's own bounds, below the runner: a zip directory that lies about its size,
ZIP64 records, a log line without end, and a download that sends more than it may."""

from __future__ import annotations

import io
import struct
import tempfile
import tracemalloc
import zipfile
import zlib

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.jobs.runners.actions import (
    ArtifactLimits,
    ArtifactRefused,
    LogExcerpt,
    _spool_capped,
    read_artifact,
)
from tests.runners.test_actions_runner import MiB, deflate_bomb, forge_zip, stored

JUNIT = (
    b'<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite>'
    b'<testcase classname="tests.test_a" name="test_ok"/></testsuite></testsuites>'
)


def refusal(data: bytes, limits: ArtifactLimits | None = None) -> str:
    try:
        read_artifact(io.BytesIO(data), limits or ArtifactLimits())
    except ArtifactRefused as exc:
        return str(exc)
    raise AssertionError("the artifact was read")


def test_an_honest_artifact_reads_whole() -> None:
    data = forge_zip([stored("junit.xml", JUNIT), stored("log.txt", b"one\r\ntwo\nthree")])
    contents = read_artifact(io.BytesIO(data), ArtifactLimits())
    assert contents.report is not None and contents.report.passed == 1
    assert contents.junit == JUNIT.decode()
    assert (contents.log.head, list(contents.log.tail)) == (["one", "two", "three"], [])
    assert contents.log.cut_lines == 0 and contents.log.truncated_at is None


def test_reports_in_a_folder_are_found() -> None:
    data = forge_zip([stored("reports/junit.xml", JUNIT), stored("reports/log.txt", b"x\n")])
    contents = read_artifact(io.BytesIO(data), ArtifactLimits())
    assert contents.report is not None and contents.report.passed == 1
    assert contents.log.head == ["x"]


def test_a_directory_larger_than_its_count_says_is_not_loaded() -> None:
    members = [stored("junit.xml", JUNIT)] + [stored(f"{i:05d}.txt", b"") for i in range(5000)]
    data = bytearray(forge_zip(members))
    # The end record claims two entries; zipfile would still load the whole directory.
    end = data.rfind(b"PK\x05\x06")
    data[end + 8 : end + 12] = struct.pack("<2H", 2, 2)
    assert "has a directory of" in refusal(bytes(data))


def test_zip64_end_records_are_refused() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", allowZip64=True) as archive:
        archive.writestr("junit.xml", JUNIT)
    plain = buffer.getvalue()
    end = plain.rfind(b"PK\x05\x06")
    locator = b"PK\x06\x07" + bytes(16)
    assert "ZIP64" in refusal(plain[:end] + locator + plain[end:])
    marked = bytearray(plain)
    marked[end + 8 : end + 12] = b"\xff\xff\xff\xff"
    assert "ZIP64" in refusal(bytes(marked))


def test_what_is_not_a_zip_says_so() -> None:
    for data in (b"", b"PK", b"hello" * 100):
        assert refusal(data) == "is not a zip file"
    misplaced = bytearray(forge_zip([stored("junit.xml", JUNIT)]))
    end = misplaced.rfind(b"PK\x05\x06")
    misplaced[end + 16 : end + 20] = struct.pack("<L", 3)  # the directory's offset
    assert refusal(bytes(misplaced)).startswith(("is not a zip file (", "is damaged: "))


def test_the_member_cap_counts_directories_too() -> None:
    members = [stored("junit.xml", JUNIT)] + [stored(f"d{i}/", b"") for i in range(10)]
    assert "holds 11 files, more than 5" in refusal(forge_zip(members), ArtifactLimits(members=5))


def test_a_log_line_without_end_is_kept_to_its_start() -> None:
    bomb, crc = deflate_bomb(32), zlib.crc32(bytes(32 * MiB))  # one line: 32 MiB of NULs
    data = forge_zip(
        [stored("junit.xml", JUNIT), ("log.txt", zipfile.ZIP_DEFLATED, bomb, 32 * MiB, crc)]
    )
    tracemalloc.start()
    try:
        contents = read_artifact(io.BytesIO(data), ArtifactLimits())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * MiB, f"peak {peak} bytes"
    (line,) = contents.log.head
    assert line.startswith("\0" * 8000) and line.endswith(f"[{32 * MiB - 8000} characters cut]")


def test_the_excerpt_keeps_head_and_tail_and_counts_the_cut() -> None:
    log = LogExcerpt(keep_bytes=20_000)
    log.feed("".join(f"line {i:04d}\n" for i in range(2000)))
    log.feed("no newline at the end " + "y" * 20_000)
    log.finish()
    assert log.head[0] == "line 0000" and log.head[-1] == f"line {len(log.head) - 1:04d}"
    assert sum(len(line) + 1 for line in log.head) <= 10_000
    kept = list(log.tail)
    assert kept[-1].startswith("no newline at the end yyy")
    assert kept[-1].endswith("characters cut]") and len(kept[-1]) < 8100
    assert kept[-2] == "line 1999"
    assert log.cut_lines == 2000 - len(log.head) - (len(kept) - 1)
    assert log.cut_bytes == log.cut_lines * len("line 0000\n")
    assert sum(len(line) + 1 for line in kept) <= 10_000


async def test_a_download_past_its_cap_stops_while_streaming() -> None:
    async def endless(request: web.Request) -> web.StreamResponse:
        answer = web.StreamResponse()  # chunked: no length to check first
        await answer.prepare(request)
        for _ in range(64):
            await answer.write(bytes(256 * 1024))
        return answer

    app = web.Application()
    app.router.add_get("/zip", endless)
    server = TestServer(app)
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session, session.get(server.make_url("/zip")) as got:
            with tempfile.TemporaryFile() as spool:
                try:
                    await _spool_capped(got, spool, 1 * MiB)
                except ValueError as exc:
                    assert "larger than 1048576 bytes" in str(exc)
                else:
                    raise AssertionError("the download was not stopped")
                assert spool.tell() <= 1 * MiB
    finally:
        await server.close()
