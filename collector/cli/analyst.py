"""The analyst's commands: verify, status, export and plot klines (registered by collector.cli.commands).

Tables and JSON go to stdout; progress and notes to stderr. Bad input is a ConfigError: one line,
exit code 2. `verify` exits 1 when it finds anything wrong.
"""

from __future__ import annotations

import enum
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from collector.cli.options import Output, OutputOpt, console, open_db, parse_window, settings, write_csv
from collector.errors import ConfigError


class _Stdout:
    """The data console on stdout; piped output gets a wide page rather than truncated cells."""

    def print(self, *objects, **kwargs) -> None:
        wide = None if sys.stdout.isatty() else 220
        Console(soft_wrap=True, width=wide).print(*objects, **kwargs)


out = _Stdout()
plot_app = typer.Typer(help="Draw stored data.", no_args_is_help=True)


class ExportTable(enum.StrEnum):
    """What `export` takes (collector.analyst.export.TABLES, kept here so that --help loads no pyarrow)."""

    klines = "klines"
    trades = "trades"
    tickers_24hr = "tickers_24hr"
    depth = "depth"
    avg_prices = "avg_prices"
    book_tickers = "book_tickers"
    option_symbols = "option_symbols"
    option_chain = "option_chain"
    top_of_book = "top_of_book"
    trades_enriched = "trades_enriched"
    account_orders = "account_orders"
    account_option_records = "account_option_records"
    account_positions = "account_positions"
    account_balances = "account_balances"
    account_short_call = "account_short_call"
    account_open_orders = "account_open_orders"
    position_marks = "position_marks"
    account_balance_daily = "account_balance_daily"


class ExportFormat(enum.StrEnum):
    parquet = "parquet"
    csv = "csv"
    csv_gz = "csv.gz"
    jsonl = "jsonl"
    json = "json"


REPAIR_ROUNDS = 3
SymbolOpt = Annotated[
    list[str] | None, typer.Option("--symbol", help="Option symbol; repeat for several. Default: all.")
]
StartOpt = Annotated[str | None, typer.Option(help="From this time (ISO 8601, UTC unless an offset is given).")]
EndOpt = Annotated[str | None, typer.Option(help="Until this time, exclusive (ISO 8601).")]


# --- verify -------------------------------------------------------------------------------------


def verify_command(
    ctx: typer.Context,
    symbol: SymbolOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    repair: Annotated[bool, typer.Option("--repair", help="Re-fetch the missing ranges, then verify again.")] = False,
    exchange_url: Annotated[str | None, typer.Option(help="Exchange REST base URL (for --repair).")] = None,
) -> None:
    """Find kline gaps, trade holes, klines disagreeing with trades and crossed books; exit 1 if any."""
    from collector.analyst.verify import verify

    window = parse_window(start, end)
    cfg = settings(ctx, exchange_url=exchange_url)
    db = open_db(ctx, reads=True, pool_size=8)
    try:
        report = verify(db.engine, symbol, *window)
        _print_report(report)
        # A repaired range can reveal more (klines restored over claimed trades show their holes):
        # repair again while that finds something new, a few rounds at most.
        rounds = 0
        while repair and rounds < REPAIR_ROUNDS and any(p.repairable for p in report.problems):
            import asyncio

            rounds += 1
            todo = [p for p in report.problems if p.repairable]
            console.print(f"repair round {rounds}: {len(todo)} range(s) from {cfg.exchange_url} ...")
            summaries = asyncio.run(_repair(cfg, db.engine, todo))
            for t in (t for s in summaries for t in s.failed):
                console.print(f"[red]repair of {t.name} failed: {t.error}[/red]")
            previous, report = set(report.problems), verify(db.engine, symbol, *window)
            console.print(f"after repair round {rounds}:")
            _print_report(report)
            if set(report.problems) == previous:
                break
    finally:
        db.close()
    if not report.ok:
        raise typer.Exit(1)


async def _repair(cfg, engine, problems):
    from collector.analyst.repair import repair
    from collector.exchange.session import connect_exchange

    async with connect_exchange(cfg) as client:
        return await repair(client, engine, problems)


def _print_report(report) -> None:
    from rich.table import Table

    checked = ", ".join(f"{v:,} {k.replace('_', ' ')}" for k, v in report.checked.items())
    if report.ok:
        out.print(f"[green]verify: clean[/green] ({checked})")
        return
    table = Table(title=f"verify: {len(report.problems)} problem(s)")
    for col in ("kind", "symbol", "interval", "from", "until", "detail"):
        table.add_column(col)
    for p in report.problems:
        table.add_row(p.kind, p.symbol, p.interval, _iso(p.start), _iso(p.end), p.detail)
    out.print(table)
    out.print(f"checked: {checked}")


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --- status -------------------------------------------------------------------------------------


def status_command(
    ctx: typer.Context,
    output: OutputOpt = Output.table,
    as_json: Annotated[bool, typer.Option("--json", help="The same as --output json.")] = False,
    symbol: SymbolOpt = None,
    stream: Annotated[
        list[str] | None,
        typer.Option("--stream", help="Only this stream ('trades', 'klines' or 'klines 1m'); repeat for several."),
    ] = None,
    details: Annotated[
        bool, typer.Option("--details", help="A line per symbol and stream (the default with --symbol or --stream).")
    ] = False,
    summary: Annotated[
        bool, typer.Option("--summary", help="A line per stream (the table's default; JSON and CSV give details).")
    ] = False,
    plot: Annotated[
        Path | None,
        typer.Option("--plot", help="Also draw coverage over time to this PNG (pages NAME-1ofN.png when long)."),
    ] = None,
) -> None:
    """Where the data stands: by default a line per stream (symbols, rows, newest, worst lag, open
    gaps, errors); per symbol and stream with --symbol, --stream or --details."""
    from collector.analyst import status

    if details and summary:
        raise ConfigError("--details and --summary: choose one")
    db = open_db(ctx, reads=True)
    try:
        rows = status.collect(db.engine, symbols=symbol, streams=stream)
        cov = status.coverage(db.engine) if plot is not None else None
        push = status.push_state(db.engine)
    finally:
        db.close()
    if (symbol or stream) and not rows:
        raise ConfigError("nothing stored for " + " and ".join(f"{', '.join(v)}" for v in (symbol, stream) if v))
    machine = as_json or output is not Output.table
    by_stream = summary or (not machine and not details and not symbol and not stream)
    records = [r.as_json() for r in (status.summarize(rows) if by_stream else rows)]
    if as_json or output is Output.json:
        sys.stdout.write(json.dumps(records, indent=2) + "\n")
    elif output is Output.csv:
        write_csv(records)
    elif rows:
        out.print(status.render_summary(status.summarize(rows)) if by_stream else status.render(rows))
    else:
        out.print("nothing stored yet")
    if push is not None and not machine:
        out.print(status.render_push(push))
    if plot is not None:
        from collector.analyst import plots

        if cov is None:
            raise ConfigError("nothing stored yet: no coverage to draw")
        drawn = plots.coverage(cov, plot)
        console.print(f"coverage drawn to {', '.join(str(p) for p in drawn)}")


# --- export -------------------------------------------------------------------------------------


def export_command(
    ctx: typer.Context,
    table: Annotated[ExportTable, typer.Option(help="The table or view to export.")],
    output: Annotated[
        Path,
        typer.Option("-o", "--output", help="File to write (replaced at the end); a directory with --partition-by."),
    ],
    fmt: Annotated[
        ExportFormat | None,
        typer.Option(
            "--format",
            help="The file's format. Default: from the extension (.parquet/.pq, .csv, .csv.gz, .jsonl, .json).",
        ),
    ] = None,
    symbol: SymbolOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    interval: Annotated[str | None, typer.Option(help="Kline interval (klines only; default: all).")] = None,
    partition_by: Annotated[
        str | None,
        typer.Option(
            "--partition-by",
            help="Write a Hive-partitioned Parquet directory by these keys, in this order: symbol, day or month "
            "(e.g. symbol,day).",
        ),
    ] = None,
    since_last: Annotated[
        bool,
        typer.Option("--since-last", help="Only rows stored or changed since the last export under the same cursor."),
    ] = False,
    cursor: Annotated[
        str | None,
        typer.Option(help="The --since-last cursor's name. Default: the table and the output's absolute path."),
    ] = None,
) -> None:
    """Write a table or view to Parquet, CSV or JSON, streamed, with exact decimals."""
    from collector.analyst.export import export, format_for

    window = parse_window(start, end)
    chosen = fmt.value if fmt is not None else None
    # Bad input is refused before the database is opened: nothing is read or written.
    written = format_for(output, chosen, partitioned=bool(partition_by))
    if chosen is not None and not partition_by:
        implied = format_for(output, None) if _has_known_extension(output) else None
        if implied not in (None, chosen):
            console.print(f"note: writing {chosen} to {output.name}, as --format says")
    db = open_db(ctx, reads=True)
    try:
        res = export(
            db.engine,
            table.value,
            output,
            written,
            symbols=symbol,
            start=window[0],
            end=window[1],
            interval=interval,
            partition_by=partition_by,
            since_last=since_last,
            cursor=cursor,
        )
    finally:
        db.close()
    files = f"{res.files:,} files, " if partition_by else ""
    console.print(f"{res.rows:,} rows -> {res.path} ({files}{res.bytes:,} bytes, {res.format})")
    if res.cursor is not None and res.until is not None:
        since = _iso(res.since) if res.since else "the start"
        console.print(f"cursor {res.cursor!r}: rows ingested from {since} until {_iso(res.until)}")
        if res.held_by:
            console.print(f"note: {res.held_by} held the export back; what it writes comes with the next export")


def _has_known_extension(path: Path) -> bool:
    from collector.analyst.export import EXTENSIONS

    return path.name.lower().endswith(tuple(EXTENSIONS))


# --- plot ---------------------------------------------------------------------------------------


@plot_app.command("klines")
def plot_klines(
    ctx: typer.Context,
    symbol: Annotated[str, typer.Option(help="Option symbol.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="PNG file to write.")],
    interval: Annotated[str, typer.Option(help="Kline interval.")] = "1m",
    start: StartOpt = None,
    end: EndOpt = None,
) -> None:
    """Candlesticks with volume of a symbol's klines."""
    from collector.analyst import frames as analysis
    from collector.analyst import plots
    from collector.domain import INTERVALS

    if interval not in INTERVALS:
        raise ConfigError(f"unknown interval {interval!r}; choose from {', '.join(INTERVALS)}")
    window = parse_window(start, end)
    db = open_db(ctx, reads=True)
    try:
        df = analysis.klines(symbol, interval, *window, engine=db.engine)
    finally:
        db.close()
    if df.empty:
        raise ConfigError(f"no {interval} klines stored for {symbol!r} in that range")
    path = plots.candles(df, output, title=f"{symbol} {interval}")
    console.print(f"{len(df):,} klines drawn to {path}")
