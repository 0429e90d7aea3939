"""Serving the app on a socket with limits on what a client may hold open.

aiohttp waits as long as a client likes for a request's head and keeps every connection it is
offered, so a few hundred clients trickling header bytes hold as many file descriptors for ever.
Every connection here goes through a `ConnectionGuard`: past `max_connections` a new one is
answered `503` and closed; one that has not sent a complete request head within
`header_timeout` seconds of opening (or of its previous response) is closed. The body's own
deadline is the webhook handler's (it reads the body itself, see `bot.server.app`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from typing import Any

from aiohttp import web

log = logging.getLogger("bot.server.serving")

_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Retry-After: 1\r\nConnection: close\r\nContent-Length: 38\r\n\r\n"
    b'{"error": "too many open connections"}'
)


class _Connection:
    __slots__ = ("idle_since", "in_request", "transport")

    def __init__(self, transport: asyncio.Transport, now: float) -> None:
        self.transport = transport
        self.idle_since = now
        self.in_request = 0


class ConnectionGuard:
    """Counts open connections and closes the ones that hold a socket without a request."""

    def __init__(self, *, max_connections: int, header_timeout: float) -> None:
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self._open: dict[asyncio.BaseTransport, _Connection] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self.refused = 0
        self.timed_out = 0

    @property
    def open_connections(self) -> int:
        return len(self._open)

    def protocol_factory(self, inner: Callable[[], asyncio.Protocol]) -> Callable[[], Any]:
        return lambda: _GuardedProtocol(self, inner())

    def opened(self, transport: asyncio.Transport) -> bool:
        if len(self._open) >= self.max_connections:
            self.refused += 1
            return False
        self._open[transport] = _Connection(transport, asyncio.get_running_loop().time())
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.create_task(self._sweep(), name="connection-sweeper")
        return True

    def closed(self, transport: asyncio.BaseTransport) -> None:
        self._open.pop(transport, None)

    def request_started(self, transport: asyncio.BaseTransport | None) -> None:
        if (conn := self._open.get(transport)) is not None:  # type: ignore[arg-type]
            conn.in_request += 1

    def request_finished(self, transport: asyncio.BaseTransport | None) -> None:
        if (conn := self._open.get(transport)) is not None:  # type: ignore[arg-type]
            conn.in_request -= 1
            conn.idle_since = asyncio.get_running_loop().time()

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        while self._open:
            await asyncio.sleep(min(1.0, self.header_timeout / 4))
            deadline = loop.time() - self.header_timeout
            for conn in list(self._open.values()):
                if not conn.in_request and conn.idle_since < deadline:
                    self.timed_out += 1
                    self._open.pop(conn.transport, None)
                    conn.transport.close()

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper


class _GuardedProtocol(asyncio.Protocol):
    """aiohttp's protocol for one connection, with the guard told when it opens and closes."""

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self.guard, self.inner = guard, inner
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        if not self.guard.opened(transport):
            transport.write(_BUSY)
            transport.close()
            return
        self.transport = transport
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self.transport is not None:
            self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.transport is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.guard.closed(self.transport)
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


GUARD = web.AppKey("connection_guard", ConnectionGuard)


@web.middleware
async def _track_requests(request: web.Request, handler: Any) -> web.StreamResponse:
    guard = request.app[GUARD]
    guard.request_started(request.transport)
    try:
        return await handler(request)
    finally:
        guard.request_finished(request.transport)


class _GuardedSite(web.BaseSite):
    __slots__ = ("_guard", "_host", "_port")

    def __init__(self, runner: web.BaseRunner, host: str, port: int, guard: ConnectionGuard):
        super().__init__(runner)
        self._host, self._port, self._guard = host, port, guard

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            self._guard.protocol_factory(server), self._host, self._port, reuse_address=True
        )


def guard_app(app: web.Application, *, max_connections: int, header_timeout: float) -> None:
    """Attaches a guard to an app (before it starts); `start` serves through it."""
    guard = ConnectionGuard(max_connections=max_connections, header_timeout=header_timeout)
    app[GUARD] = guard
    app.middlewares.append(_track_requests)

    async def close(_: web.Application) -> None:
        await guard.close()

    app.on_cleanup.append(close)


async def start(
    app: web.Application, host: str, port: int, *, shutdown_timeout: float = 30.0
) -> tuple[web.AppRunner, str]:
    """Serves `app` (already given a guard) and returns its runner and URL."""
    guard = app[GUARD]
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    try:
        site = _GuardedSite(runner, host, port, guard)
        await site.start()
    except BaseException:
        await runner.cleanup()  # the app's start-up ran: let its clean-up run too
        raise
    bound = runner.addresses[0]
    return runner, f"http://{bound[0]}:{bound[1]}"


def run(app: web.Application, host: str, port: int, *, shutdown_timeout: float = 30.0) -> None:
    """Serves until SIGINT or SIGTERM, then shuts down gracefully (what `bot serve` does)."""

    async def main() -> None:
        runner, url = await start(app, host, port, shutdown_timeout=shutdown_timeout)
        log.info("listening", extra={"url": url})
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()

    asyncio.run(main())
