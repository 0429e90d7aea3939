"""HTTP/1.1 by hand over a loopback socket, for requests no well-behaved client would send.

aiohttp's client refuses header bytes that are not Latin-1, cannot trickle a request head one
byte at a time and cannot stop half-way through a body: an attacker's client does all three.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass

from tests.support.webhooks import SECRET


@dataclass
class Answer:
    status: int
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


def request_bytes(
    headers: list[tuple[bytes, bytes]], body: bytes, *, path: bytes = b"/webhook"
) -> bytes:
    head = [b"POST " + path + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close"]
    head += [name + b": " + value for name, value in headers]
    head.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def signed_headers(
    body: bytes, event: bytes = b"issue_comment", *, delivery: bytes | None = None
) -> list[tuple[bytes, bytes]]:
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return [
        (b"X-GitHub-Event", event),
        (b"X-GitHub-Delivery", delivery or str(uuid.uuid4()).encode()),
        (b"X-Hub-Signature-256", signature.encode()),
        (b"Content-Type", b"application/json"),
    ]


async def read_answer(reader: asyncio.StreamReader) -> Answer:
    raw = await reader.read()  # the server closes: `Connection: close`
    if not raw:
        return Answer(0, b"")
    head, _, body = raw.partition(b"\r\n\r\n")
    return Answer(int(head.split(b" ", 2)[1]), body)


async def send(host: str, port: int, data: bytes, *, timeout: float = 10.0) -> Answer:
    """Sends raw request bytes and reads the whole answer."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(timeout):
            return await read_answer(reader)
    finally:
        writer.close()


async def post(
    host: str, port: int, headers: list[tuple[bytes, bytes]], body: bytes, **kwargs: float
) -> Answer:
    return await send(host, port, request_bytes(headers, body), **kwargs)
