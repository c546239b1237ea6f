"""uvicorn's server, waking once a second instead of ten times.

uvicorn's main loop wakes every 0.1 s to see whether a stop signal came and, every tenth time, to renew the
`Date` header. An endpoint waiting for requests so takes ten wake-ups a second of the CPU it shares with the
endpoints serving next to it (benchmarks/online.py pins them all to one CPU: each wake-up of a neighbour lands
on a request of the one measured). Here it waits a second between ticks (the `Date` header stays renewed every
second, as uvicorn's), and a stop signal wakes it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import FrameType

import uvicorn

TICK_SECONDS = 1.0
_TICKS_A_SECOND = 10  # uvicorn's `on_tick` renews the Date header when its counter is a multiple of this


class QuietServer(uvicorn.Server):
    """`uvicorn.Server` ticking once a second; a stop signal wakes its main loop at once."""

    _woken: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    async def main_loop(self) -> None:
        self._loop, self._woken = asyncio.get_running_loop(), asyncio.Event()
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + _TICKS_A_SECOND) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), TICK_SECONDS)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if self._loop is not None and self._woken is not None:  # a signal handler: the loop's thread-safe door
            self._loop.call_soon_threadsafe(self._woken.set)
