"""Waiting for a condition on real state (never a fixed sleep) and counting rows."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import text


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


async def until(predicate, timeout: float, what: str) -> None:
    await asyncio.to_thread(wait_until, predicate, timeout, what)


def count(engine, sql: str) -> int:
    with engine.connect() as conn:
        return conn.execute(text(sql)).scalar()
