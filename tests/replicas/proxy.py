"""A TCP proxy for the two-replica tier, run on asyncio in a thread of the test process.

Each connection it accepts goes to the next of its upstreams in turn (round robin, as the
compose stack's Caddy spreads requests over the replicas), and it counts how many went where.
With `hold_until=N` it forwards nothing until N connections have arrived (or HOLD_TIMEOUT_S has
passed), then lets them all through at once: two replicas starting up behind it then reach
PostgreSQL at the same moment, however their start-up times differ.
"""

import asyncio
import contextlib
import itertools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from tests.servers import free_port

HOLD_TIMEOUT_S = 30.0
CHUNK_BYTES = 64 * 1024


@dataclass
class TcpProxy:
    """Where the proxy listens, and how many connections each upstream got."""

    upstreams: list[tuple[str, int]]
    hold_until: int = 0
    port: int = 0
    counts: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy bytes until `reader` ends, then end the other side's writing half too."""
    with contextlib.suppress(ConnectionError, OSError):
        while chunk := await reader.read(CHUNK_BYTES):
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()


async def _serve(proxy: TcpProxy, ready: threading.Event, stop: asyncio.Event) -> None:
    turns = itertools.cycle(range(len(proxy.upstreams)))
    arrived = 0
    handlers: set[asyncio.Task[None]] = set()
    gate = asyncio.Event()
    if proxy.hold_until <= 0:
        gate.set()

    async def handle(client_reader: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        nonlocal arrived
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        task.add_done_callback(handlers.discard)
        index = next(turns)
        proxy.counts[index] += 1
        arrived += 1
        if arrived >= proxy.hold_until:
            gate.set()
        writers = [client]
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(gate.wait(), HOLD_TIMEOUT_S)
            upstream_reader, upstream = await asyncio.open_connection(*proxy.upstreams[index])
            writers.append(upstream)
            await asyncio.gather(_pipe(client_reader, upstream), _pipe(upstream_reader, client))
        except OSError:
            pass  # the upstream is down: the client sees its connection closed
        finally:
            for writer in writers:
                writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", proxy.port)
    ready.set()
    await stop.wait()
    server.close()  # no wait_closed(): it would wait for the connections still open
    for task in list(handlers):
        task.cancel()
    await asyncio.gather(*handlers, return_exceptions=True)


@contextmanager
def start_proxy(upstreams: list[tuple[str, int]], *, hold_until: int = 0) -> Iterator[TcpProxy]:
    """Run a TcpProxy to `upstreams` (host, port) for the duration of the block."""
    proxy = TcpProxy(upstreams, hold_until, free_port(), [0] * len(upstreams))
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    ready = threading.Event()
    thread = threading.Thread(
        target=loop.run_until_complete,
        args=(_serve(proxy, ready, stop),),
        name="replicas-proxy",
        daemon=True,
    )
    thread.start()
    if not ready.wait(timeout=10):
        raise RuntimeError(f"the test proxy did not listen on port {proxy.port} within 10 s")
    try:
        yield proxy
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=10)
        loop.close()
