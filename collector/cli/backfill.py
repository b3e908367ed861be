"""`collector backfill`: its window (absolute or relative to now), the dry run, progress and the
summary (registered by collector.cli.commands; imports collector.cli.options, not commands).

A window is ``--start``/``--end``; ``--since`` (to now); ``--days N`` (the last N days); or
``--until-now`` (from ``--start``, or from where each symbol's stored data ends, to now). "Now" is
a few seconds ago (``NOW_SETTLE``), so that the window can be proven complete at once; klines end
at the start of their interval's open kline. Only the holes of the coverage are fetched.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from collector.cli.options import console, open_db, parse_time, settings
from collector.errors import ConfigError

NOW_SETTLE = timedelta(seconds=10)  # "now" for a window: what the exchange has surely finished


def process_started() -> float:
    """When this process began, on the monotonic clock: the summary's wall time counts from there
    (the interpreter's start-up and every import included), as a user's stopwatch would."""
    import psutil

    return time.monotonic() - max(0.0, time.time() - psutil.Process().create_time())


@dataclass(frozen=True)
class Window:
    start: datetime | None  # None: from where each (symbol, stream, interval)'s stored data ends
    end: datetime
    to_now: bool


def resolve_window(
    start: str | None,
    end: str | None,
    since: str | None,
    days: float | None,
    until_now: bool,
    now: datetime,
) -> Window:
    """The window the flags describe; a ConfigError (one line) when they do not describe one."""
    given = [name for name, v in (("--start", start), ("--since", since), ("--days", days)) if v is not None]
    if len(given) > 1:
        raise ConfigError(f"{given[0]} and {given[1]} both say where the window starts: give one")
    relative = since is not None or days is not None or until_now
    if end is not None and relative:
        raise ConfigError("--end cannot be combined with --since, --days or --until-now (they end the window now)")
    if start is not None and end is None and not until_now:
        raise ConfigError("--start needs --end, or --until-now to backfill up to now")
    if not given and end is None and not until_now:
        raise ConfigError("no window: give --start and --end, --since ISO, --days N, or --until-now")
    if not given and end is not None:
        raise ConfigError("--end needs --start (or use --since, --days or --until-now)")
    if relative:
        stop = (now - NOW_SETTLE).replace(microsecond=0)
        if days is not None:
            if not days > 0:
                raise ConfigError(f"--days must be more than 0, not {days:g}")
            first: datetime | None = stop - timedelta(days=days)
        elif since is not None:
            first = parse_time(since, "--since")
        else:
            first = parse_time(start, "--start") if start is not None else None
        if first is not None and first >= stop:
            raise ConfigError(f"the window starts at {first.isoformat()}, which is not before now")
        return Window(first, stop, True)
    assert start is not None and end is not None
    s, e = parse_time(start, "--start"), parse_time(end, "--end")
    if s >= e:
        raise ConfigError(f"--start ({s.isoformat()}) must be before --end ({e.isoformat()})")
    return Window(s, e, False)


def backfill_command(
    ctx: typer.Context,
    start: Annotated[str | None, typer.Option(help="Window start, ISO 8601 (UTC unless an offset is given).")] = None,
    end: Annotated[str | None, typer.Option(help="Window end (exclusive), ISO 8601.")] = None,
    since: Annotated[str | None, typer.Option(help="Window from this ISO 8601 time to now.")] = None,
    days: Annotated[float | None, typer.Option(help="Window: the last N days, to now.")] = None,
    until_now: Annotated[
        bool,
        typer.Option(
            "--until-now", help="End the window now; without --start, begin where each symbol's stored data ends."
        ),
    ] = False,
    symbol: Annotated[
        list[str] | None,
        typer.Option("--symbol", help="Option symbol; repeat for several. Default: every symbol the exchange lists."),
    ] = None,
    streams: Annotated[
        str, typer.Option(help="Comma-separated: klines, trades; the account's own: orders, records.")
    ] = "klines,trades",
    interval: Annotated[
        list[str] | None,
        typer.Option("--interval", help="Kline interval; repeat for several. Default: kline_intervals from config."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the tasks, requests, weight and time it would take; store nothing.")
    ] = False,
    refetch: Annotated[
        bool, typer.Option("--refetch", help="Fetch the whole window again, even what is stored already.")
    ] = False,
    exchange_url: Annotated[str | None, typer.Option(help="Exchange REST base URL.")] = None,
) -> None:
    """Fetch the history of a window that is not stored yet: resumable, idempotent, as fast as the
    weight limit allows."""
    window = resolve_window(start, end, since, days, until_now, datetime.now(UTC))
    if refetch and window.start is None:
        raise ConfigError("--refetch needs the window's start: give --start, --since or --days")
    cfg = settings(ctx, exchange_url=exchange_url)
    stream_list = tuple(s.strip() for s in streams.split(",") if s.strip())
    from collector.backfill.plan import check_inputs

    intervals = tuple(interval or cfg.kline_intervals)
    check_inputs(stream_list, intervals, has_api_key=cfg.api_key is not None, has_api_secret=cfg.api_secret is not None)
    from collector.backfill.plan import BackfillPlan

    plan = BackfillPlan(
        window.start,
        window.end,
        symbol or [],
        stream_list,
        intervals,
        cfg.backfill_batch_rows,
        account_name=cfg.account_name,
        refetch=refetch,
        to_now=window.to_now,
    )
    from collector.cli.options import Interrupted, run_interruptible

    if dry_run:
        run_interruptible(_dry_run(ctx, cfg, plan))
        return
    from collector.cli.progress import LogReporter, RichReporter

    reporter = RichReporter(console) if sys.stderr.isatty() else LogReporter()
    reporter.preparing()
    try:
        run_interruptible(_backfill(ctx, cfg, plan, reporter))
    except Interrupted as exc:
        reporter.close()
        done = sum(1 for t in reporter.tasks if t.done or t.skipped)
        console.print(
            f"interrupted after {done} of {len(reporter.tasks)} tasks (what was fetched is stored); "
            "run the same command to resume"
        )
        raise typer.Exit(exc.exit_code) from None


async def _backfill(ctx, cfg, plan, reporter) -> None:
    import asyncio

    from collector.backfill.run import run_backfill
    from collector.cli.progress import summary_table
    from collector.exchange.session import STARTUP_RETRIES, connect_exchange
    from collector.store.migrate import upgrade

    async with connect_exchange(cfg, startup_retries=STARTUP_RETRIES) as client:
        db = open_db(ctx, pool_size=8)
        try:
            upgrade(db.engine)
            if cfg.shared_budget:  # spend the same weight budget as daemons behind this IP
                from collector.store.coordination import SharedAllowance

                client.allowance = SharedAllowance.for_governor(db.engine, cfg.egress, client.governor)
            summary = await run_backfill(client, db.engine, plan, reporter=reporter, started=process_started())
        finally:
            await asyncio.to_thread(db.close)  # waits for worker threads' connections: off the loop
    reporter.close()
    for line in summary.warnings:
        console.print(f"[yellow]warning:[/yellow] {line}", highlight=False)
    console.print(summary_table(summary))
    if summary.failed or summary.named_refused:  # a symbol found only in the listing may be refused
        raise typer.Exit(1)


async def _dry_run(ctx, cfg, plan) -> None:
    import asyncio

    from collector.backfill.estimate import dry_run
    from collector.backfill.plan import validate
    from collector.cli.progress import dry_run_table
    from collector.exchange.session import STARTUP_RETRIES, connect_exchange

    async with connect_exchange(cfg, startup_retries=STARTUP_RETRIES) as client:
        with client.retrying(max(client.max_retries, STARTUP_RETRIES)):
            plan, _, _ = await validate(client, plan)
        db = open_db(ctx, reads=True)
        try:
            result = await dry_run(client, db.engine, plan)
        finally:
            await asyncio.to_thread(db.close)
    for symbol, stream, interval in result.unstored:
        console.print(
            f"[yellow]warning:[/yellow] {symbol} {stream}{' ' + interval if interval else ''}: nothing stored yet "
            "to continue from; give --start, --since or --days to say where to begin",
            highlight=False,
        )
    from collector.cli.analyst import out

    out.print(dry_run_table(result))
