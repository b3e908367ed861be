"""Killing a real `collector` subprocess at seeded random points: the helpers the crash tests share.

A kill point is either a delay counted from the moment the process has begun its run (its
``collector_runs`` row exists, so a slow interpreter start does not eat the delay) or a number of
trades stored (so that however fast the machine, the kill lands inside the run). ``on_commit``
moves the kill to the moment a checkpoint row next changes, i.e. while the following commit is
being prepared or is in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import time

from sqlalchemy import text

from tests.helpers.truth import tail


def trade_count(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM trades")).scalar_one()


def runs_begun(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM collector_runs")).scalar_one()


def checkpoint_state(engine) -> tuple:
    with engine.connect() as conn:
        return tuple(conn.execute(text("SELECT coalesce(sum(rows), 0), max(updated_at) FROM checkpoints")).one())


def checkpoints_never_ahead(engine) -> None:
    """Every trades checkpoint's last_trade_id is a stored row: never ahead of committed data."""
    with engine.connect() as conn:
        ahead = conn.execute(
            text(
                "SELECT c.scope, c.symbol, c.last_trade_id FROM checkpoints c WHERE c.stream = 'trades' "
                "AND c.last_trade_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM trades t WHERE t.symbol = c.symbol "
                "AND t.trade_id = c.last_trade_id)"
            )
        ).all()
    assert not ahead, ahead


async def _ended(proc, within: float) -> bool:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(proc.wait(), within)
    return proc.returncode is not None


async def kill_at_random(
    proc,
    engine,
    rng: random.Random,
    delay: tuple[float, float] | None,
    on_commit: bool,
    runs_before: int,
    at_trades: int | None = None,
) -> str:
    """SIGKILL a random delay after the process began its run (or once ``at_trades`` trades are
    stored), or (on_commit) the moment a checkpoint row changes after that. Returns how it ended:
    "finished" (it exited first), "after-commit" (a checkpoint change was seen just before) or
    "random"."""
    deadline = time.monotonic() + 120
    while await asyncio.to_thread(runs_begun, engine) <= runs_before:
        if await _ended(proc, 0.05):
            return "finished"
        assert time.monotonic() < deadline, "the process did not begin its run in 120 s"
    if at_trades is not None:
        while await asyncio.to_thread(trade_count, engine) < at_trades:
            if await _ended(proc, 0.05):
                return "finished"
    elif await _ended(proc, rng.uniform(*delay)):
        return "finished"
    committed = False
    if on_commit:
        before = await asyncio.to_thread(checkpoint_state, engine)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.returncode is None:
            if await asyncio.to_thread(checkpoint_state, engine) != before:
                committed = True
                break
    if proc.returncode is not None:
        return "finished"
    proc.send_signal(signal.SIGKILL)
    await proc.wait()
    return "after-commit" if committed else "random"  # no commit seen in 30 s: it was a random kill


async def run_and_kill(
    cmd: list[str],
    env: dict,
    log_path,
    engine,
    rng: random.Random,
    delay: tuple[float, float] | None,
    on_commit: bool = False,
    at_trades: int | None = None,
):
    """One run of ``cmd`` logging to ``log_path``, killed as ``kill_at_random`` says: (process, how it ended)."""
    runs_before = await asyncio.to_thread(runs_begun, engine)
    with open(log_path, "wb") as log:
        proc = await asyncio.create_subprocess_exec(*cmd, env=env, stdout=log, stderr=log)
        return proc, await kill_at_random(proc, engine, rng, delay, on_commit, runs_before, at_trades)


async def kill_backfill_in_progress(
    cmd: list[str],
    env: dict,
    log_dir,
    engine,
    rng: random.Random,
    kills: int,
    expected: int,
    step: tuple[float, float],
    *,
    on_commit=lambda run: False,
    after_kill=lambda engine: None,
) -> list[tuple[str, int]]:
    """Run the backfill ``cmd`` again and again, killing each run once another ``step`` share of the
    ``expected`` trades is stored (in progress, not time: a quiet machine finishes the window in
    fewer seconds than a loaded one), until ``kills`` kills or a run finishes; then run it to the
    end. Returns (how, trades stored) for each kill; ``after_kill(engine)`` checks after each."""
    done: list[tuple[str, int]] = []
    run = 0
    while len(done) < kills:
        target = await asyncio.to_thread(trade_count, engine) + int(rng.uniform(*step) * expected)
        proc, how = await run_and_kill(
            cmd, env, log_dir / f"bf{run}.log", engine, rng, None, on_commit=on_commit(run), at_trades=target
        )
        if how == "finished":  # it outran the kill: the resumes are done
            assert proc.returncode == 0, tail(log_dir / f"bf{run}.log")
            break
        run += 1
        done.append((how, await asyncio.to_thread(trade_count, engine)))
        await asyncio.to_thread(after_kill, engine)
    with open(log_dir / "final.log", "wb") as log:
        proc = await asyncio.create_subprocess_exec(*cmd, env=env, stdout=log, stderr=log)
        assert await asyncio.wait_for(proc.wait(), 150) == 0, tail(log_dir / "final.log")
    return done
