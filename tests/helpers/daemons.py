"""The real daemon run in-process by a test: started, handed to the test, stopped cleanly.

    async with running_daemon(settings) as daemon:
        ...  # daemon.running.ctx, daemon.task, daemon.stop
    # here the daemon has exited 0

Leaving the block sets the daemon's stop event and asserts it exits 0 within ``stop_timeout``
seconds. A test may kill a daemon instead (cancel its task, no clean stop): that one is left as
the test left it. When the block fails, the daemons are stopped too, and the test's own error is
the one reported.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from collector.config import Settings
from collector.daemon.run import Running, run_daemon


@dataclass
class Daemon:
    running: Running  # what the started daemon exposes (its LiveContext, schedule, metrics port)
    task: asyncio.Task
    stop: asyncio.Event


@asynccontextmanager
async def running_daemon(
    settings: Settings, *, start_timeout: float = 60.0, stop_timeout: float = 30.0
) -> AsyncIterator[Daemon]:
    async with running_daemons([settings], start_timeout=start_timeout, stop_timeout=stop_timeout) as [daemon]:
        yield daemon


@asynccontextmanager
async def running_daemons(
    all_settings: Sequence[Settings], *, start_timeout: float = 60.0, stop_timeout: float = 30.0
) -> AsyncIterator[list[Daemon]]:
    """Several daemons, started all at once and stopped all at once."""
    loop = asyncio.get_running_loop()
    stops = [asyncio.Event() for _ in all_settings]
    starts: list[asyncio.Future] = [loop.create_future() for _ in all_settings]
    tasks = [
        asyncio.create_task(run_daemon(settings, stop=stop, started=started, announce=lambda m: None))
        for settings, stop, started in zip(all_settings, stops, starts, strict=True)
    ]
    try:
        daemons = [
            Daemon(await _started(task, started, start_timeout), task, stop)
            for task, started, stop in zip(tasks, starts, stops, strict=True)
        ]
        yield daemons
    except BaseException:
        await _wind_down(tasks, stops, stop_timeout)
        raise
    try:
        await _stop_cleanly(daemons, stop_timeout)
    finally:
        await _wind_down(tasks, stops, stop_timeout)  # after a clean stop: nothing left to do


async def _started(task: asyncio.Task, started: asyncio.Future, timeout: float) -> Running:
    """The daemon's Running once it collects; its own error if it ends first."""
    await asyncio.wait({task, started}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    if started.done() and not started.cancelled():
        return started.result()
    if started.cancelled() or task.done():  # it gave up starting (a cancelled ``started``) or ended
        code = await task  # raises what ended it
        raise AssertionError(f"the daemon exited with {code} before it started collecting")
    raise TimeoutError(f"the daemon did not start collecting within {timeout:g} s")


async def _stop_cleanly(daemons: list[Daemon], timeout: float) -> None:
    killed = [d.task for d in daemons if d.task.cancelled() or d.task.cancelling()]
    alive = [d for d in daemons if d.task not in killed]
    for d in alive:
        d.stop.set()
    codes = await asyncio.wait_for(asyncio.gather(*(d.task for d in alive)), timeout)
    assert codes == [0] * len(alive), f"exit codes {codes}"
    await asyncio.gather(*killed, return_exceptions=True)  # a killed one is gone before the test goes on


async def _wind_down(tasks: list[asyncio.Task], stops: list[asyncio.Event], timeout: float) -> None:
    """Stop what still runs, cancel what will not stop, and report nothing of it (the caller reports)."""
    for stop in stops:
        stop.set()
    _, pending = await asyncio.wait(tasks, timeout=timeout)
    for task in pending:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
