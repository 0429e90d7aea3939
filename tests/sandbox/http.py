"""Starting a stand-in's aiohttp app on loopback and learning its URL."""

from __future__ import annotations

from aiohttp import web


async def serve(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()  # the app's start-up ran: let its clean-up run too
        raise
    bound = runner.addresses[0]
    return runner, f"http://{bound[0]}:{bound[1]}"


class LoopbackServer:
    """A stand-in that serves its `make_app()` on loopback until closed."""

    url: str = ""
    _runner: web.AppRunner | None = None

    def make_app(self) -> web.Application:
        raise NotImplementedError

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._runner, self.url = await serve(self.make_app(), host, port)
        return self.url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
