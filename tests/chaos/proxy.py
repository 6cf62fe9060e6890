"""A TCP proxy on 127.0.0.1 that can turn slow or drop connections: the slow-upstream fault.

Run as a process: `python -m tests.chaos.proxy --listen PORT --target PORT --control PORT`.
`POST /mode` on the control port with `{"mode": "pass" | "slow" | "drop", "delay": seconds}`
changes what it does to new and open connections; `GET /stats` returns how many connections it
accepted, so a test can see how often clients come back to a failing upstream.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from aiohttp import web


class Proxy:
    def __init__(self, target: int) -> None:
        self.target = target
        self.mode = "pass"
        self.delay = 0.0
        self.connections = 0

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, slowed: bool
    ) -> None:
        try:
            while data := await reader.read(65536):
                if self.mode == "drop":
                    break
                if slowed and self.mode == "slow":
                    await asyncio.sleep(self.delay)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.transport.abort()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self.mode == "drop":
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.transport.abort()
            return
        await asyncio.gather(
            self._pipe(reader, up_writer, slowed=False),
            self._pipe(up_reader, writer, slowed=True),
        )


async def main(listen: int, target: int, control: int) -> None:
    proxy = Proxy(target)
    server = await asyncio.start_server(proxy.handle, "127.0.0.1", listen)

    async def set_mode(request: web.Request) -> web.Response:
        body = await request.json()
        proxy.mode = body["mode"]
        proxy.delay = float(body.get("delay", 0.0))
        return web.json_response({"mode": proxy.mode})

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({"connections": proxy.connections, "mode": proxy.mode})

    app = web.Application()
    app.router.add_post("/mode", set_mode)
    app.router.add_get("/stats", stats)
    app.router.add_get("/xrpc/_health", stats)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", control).start()
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listen", type=int, required=True)
    parser.add_argument("--target", type=int, required=True)
    parser.add_argument("--control", type=int, required=True)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(args.listen, args.target, args.control))
