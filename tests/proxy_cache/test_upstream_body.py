"""The upstream's answer body as the fetch receives it: each chunk as aiohttp buffered it, never joined
into a copy with the others waiting; an empty body ends, however many have ended in the process before."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import cast

import aiohttp
from aiohttp import web
from aiohttp.base_protocol import BaseProtocol
from aiohttp.streams import EMPTY_PAYLOAD, StreamReader

from dockyard.proxy.upstream import UpstreamClient

# A body that never ends fails the test after this long instead of hanging it.
HANG_GUARD_SECONDS = 10


def _response(content: StreamReader) -> aiohttp.ClientResponse:
    return cast(aiohttp.ClientResponse, SimpleNamespace(content=content, method="GET", url=None))


async def _received(client: UpstreamClient, content: StreamReader) -> list[bytes]:
    async with asyncio.timeout(HANG_GUARD_SECONDS):
        return [chunk async for chunk in client.body(_response(content))]


async def test_chunks_waiting_in_the_buffer_come_one_by_one_uncopied() -> None:
    loop = asyncio.get_running_loop()
    content = StreamReader(BaseProtocol(loop), 1 << 20, loop=loop)
    arrived = [bytes([number]) * 70_000 for number in range(3)]
    for chunk in arrived:
        content.feed_data(chunk)
    content.feed_eof()
    received = await _received(UpstreamClient("http://127.0.0.1:1"), content)
    # The very objects aiohttp's parser made (before, the three came joined into one new bytes).
    assert len(received) == len(arrived)
    assert all(got is sent for got, sent in zip(received, arrived, strict=True))


async def test_an_empty_body_ends_every_time() -> None:
    client = UpstreamClient("http://127.0.0.1:1")
    for _ in range(3):  # aiohttp shares one reader of empty bodies, whose chunk iterator ends only once
        assert await _received(client, EMPTY_PAYLOAD) == []


async def test_a_large_body_is_not_stopped_and_started_every_few_chunks() -> None:
    """aiohttp stops reading a socket whose buffered body passed twice its read buffer; with its 64 KiB
    default a blob's reading stopped and started about 11 times per 8 MiB (4 with 1 MiB). A slow reader still stops it."""
    body = bytes(8 << 20)

    async def blob(_: web.Request) -> web.Response:
        return web.Response(body=body)

    app = web.Application()
    app.router.add_get("/v2/a/blobs/b", blob)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    client = UpstreamClient(f"http://127.0.0.1:{port}")
    pauses = 0
    try:
        async with asyncio.timeout(HANG_GUARD_SECONDS), client.request("GET", "/v2/a/blobs/b", "") as response:
            protocol = response.connection.protocol if response.connection else None
            assert protocol is not None
            pause = protocol.pause_reading

            def counted_pause() -> None:
                nonlocal pauses
                pauses += 1
                pause()

            protocol.pause_reading = counted_pause  # type: ignore[method-assign]
            received = 0
            async for chunk in client.body(response):
                received += len(chunk)
                await asyncio.sleep(0.001)  # slower than loopback: the buffer fills up
    finally:
        await client.close()
        await runner.cleanup()
    assert received == len(body)
    assert 0 < pauses <= 6  # 4 here with a 1 MiB buffer; 10 or 11 with the default
