"""Run a release of the API for the local deploy target: health-gated, then switched in.

    python -m textbook_api.serve --shared-fd N --state-file PATH

The process first serves on a private loopback port only, so the deploy engine can gate on
`/ready` without any user traffic reaching it. SIGUSR1 makes it also accept on the shared
listening socket (inherited as fd N; every release accepts from that one socket's queue, so
no connection is lost while releases change). SIGTERM drains it: it stops accepting, finishes
the requests in flight and exits. The state file tells the engine the private port and
whether the shared socket is being served.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import uvicorn


ACCEPT_SETTLE_SECONDS = 0.5


class _Server(uvicorn.Server):
    """A uvicorn server whose signals this module handles (two servers share one process)."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _write_state(path: Path, **state: object) -> None:
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps({"pid": os.getpid(), **state}), encoding="utf-8")
    partial.replace(path)


async def _serve(shared_fd: int, state_file: Path, drain_seconds: int) -> None:
    private = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    private.bind(("127.0.0.1", 0))
    private.listen(128)
    shared = socket.socket(fileno=shared_fd)

    def config(lifespan: Literal["on", "off"]) -> uvicorn.Config:
        return uvicorn.Config(
            "textbook_api.main:app", lifespan=lifespan, log_level="warning",
            timeout_graceful_shutdown=drain_seconds, access_log=False,
        )

    gate = _Server(config("on"))
    public = _Server(config("off"))
    loop = asyncio.get_running_loop()
    tasks = [asyncio.create_task(gate.serve(sockets=[private]))]
    switched = asyncio.Event()
    port = private.getsockname()[1]

    def switch() -> None:
        if not switched.is_set():
            switched.set()
            tasks.append(asyncio.create_task(public.serve(sockets=[shared])))

    def drain() -> None:
        # Stop accepting by no longer watching the listening sockets, then let the connections
        # already accepted finish on their own (uvicorn's shutdown would close those that have
        # not sent their request yet). Closing the asyncio servers here instead would reset
        # the connections accepted earlier in this loop turn: CPython's Server._attach refuses
        # a closed server and drops the accepted socket without a word.
        for server in (gate, public):
            for listener in getattr(server, "servers", []):
                for listening in listener.sockets:
                    loop.remove_reader(listening.fileno())
        asyncio.ensure_future(stop_when_idle(loop.time() + drain_seconds))

    async def stop_when_idle(deadline: float) -> None:
        # Connections accepted in the same loop turn as the close become protocols a little
        # later: give them that moment before counting.
        await asyncio.sleep(ACCEPT_SETTLE_SECONDS)
        while loop.time() < deadline and any(
            server.server_state.connections for server in (gate, public)
        ):
            await asyncio.sleep(0.05)
        gate.should_exit = public.should_exit = True

    loop.add_signal_handler(signal.SIGUSR1, switch)
    loop.add_signal_handler(signal.SIGTERM, drain)
    loop.add_signal_handler(signal.SIGINT, drain)
    while not gate.started and not tasks[0].done():
        await asyncio.sleep(0.02)
    _write_state(state_file, private_port=port, serving=False)
    while not switched.is_set() and not tasks[0].done():
        await asyncio.sleep(0.02)
    while switched.is_set() and not public.started and not tasks[-1].done():
        await asyncio.sleep(0.02)
    if public.started:
        _write_state(state_file, private_port=port, serving=True)
    await asyncio.gather(*tasks)


def main() -> None:
    parser = argparse.ArgumentParser(prog="textbook_api.serve", description=__doc__)
    parser.add_argument("--shared-fd", type=int, required=True)
    parser.add_argument("--state-file", type=Path, required=True)
    parser.add_argument("--drain-seconds", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(_serve(args.shared_fd, args.state_file, args.drain_seconds))


if __name__ == "__main__":
    main()
