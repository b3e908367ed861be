"""The `collector` command. It owns the lifetime of settings, HTTP session and database engine.

Every failure the operator can fix (bad flag, date, symbol, URL, config) is one line on stderr
and exit code 2; other collector failures exit 1; nothing prints a traceback.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from collector.cli.options import LogFormat, LogLevel, Output, OutputOpt, State, open_db, state
from collector.errors import (
    CollectorError,
    ConfigError,
    ExchangeRejected,
    TransientError,
)
from collector.store.db import reading

log = logging.getLogger("collector")

HELP = {"help_option_names": ["-h", "--help"]}
app = typer.Typer(
    name="collector",
    help="Collect JEX options market data (klines, trades, depth, 24hr tickers) into PostgreSQL.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings=HELP,
)
db_app = typer.Typer(
    help="The database: migrate and inspect it; connect psql, pandas, DBeaver or Grafana to it.",
    no_args_is_help=True,
    context_settings=HELP,
)
config_app = typer.Typer(help="Inspect the effective configuration.", no_args_is_help=True, context_settings=HELP)
app.add_typer(db_app, name="db")
app.add_typer(config_app, name="config")


def _version(value: bool) -> None:
    if value:
        from collector.metrics import collector_version

        typer.echo(f"collector {collector_version()}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    config: Annotated[
        Path | None, typer.Option("--config", help="TOML file overriding the defaults (collector.toml).")
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(help="PostgreSQL URL (default: the embedded server). [env: COLLECTOR_DATABASE_URL]"),
    ] = None,
    exchange_url: Annotated[
        str | None, typer.Option(help="Exchange REST base URL. [env: COLLECTOR_EXCHANGE_URL]")
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Data directory (the embedded database lives here). [env: COLLECTOR_DATA_DIR]"),
    ] = None,
    log_level: Annotated[
        LogLevel | None, typer.Option(case_sensitive=False, help="Log level. [env: COLLECTOR_LOG_LEVEL]")
    ] = None,
    log_format: Annotated[
        LogFormat | None, typer.Option(help="Log lines as text or JSON. [env: COLLECTOR_LOG_FORMAT]")
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", is_eager=True, callback=_version, help="Print the version and exit.")
    ] = False,
) -> None:
    """Options of the collector as a whole; they go before or after the command, and override the
    config files and the environment."""
    ctx.obj = State(
        config,
        {
            "database_url": database_url,
            "exchange_url": exchange_url,
            "data_dir": data_dir,
            "log_level": None if log_level is None else str(log_level.value),
            "log_format": None if log_format is None else str(log_format.value),
        },
    )


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context, revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Apply migrations up to REVISION (default: head). Safe to run again: it then does nothing."""
    from collector.store.migrate import upgrade

    db = open_db(ctx)
    try:
        before, after = upgrade(db.engine, revision)
    finally:
        db.close()
    if before == after:
        typer.echo(f"database {db.display_url} already at {after}; nothing to do")
    else:
        typer.echo(f"database {db.display_url} upgraded {before or '<empty>'} -> {after}")


@db_app.command("current")
def db_current(ctx: typer.Context) -> None:
    """Show the database's revision and the code's head revision."""
    from collector.store.migrate import current_revision, head_revision

    db = open_db(ctx)
    try:
        with reading(db.engine) as conn:
            current = current_revision(conn)
    finally:
        db.close()
    head = head_revision()
    note = "up to date" if current == head else "needs `collector db upgrade`"
    typer.echo(f"current: {current or '<empty>'}  head: {head}  ({note})")


@app.command("run")
def run_command(
    ctx: typer.Context,
    simulate: Annotated[
        bool, typer.Option("--simulate", help="Start the exchange simulator in-process and collect from it (the demo).")
    ] = False,
    sim_seed: Annotated[int, typer.Option(help="With --simulate: market seed.")] = 1,
    sim_symbols: Annotated[int, typer.Option(help="With --simulate: option symbols trading at once.")] = 28,
    sim_listing_interval: Annotated[
        float, typer.Option(help="With --simulate: seconds between listings (each symbol lives SYMBOLS listings).")
    ] = 21600.0,
    sim_profile: Annotated[
        str,
        typer.Option(
            help="With --simulate: behave like a recorded exchange (default, live-2019; see "
            "`collector simulate --help`)."
        ),
    ] = "default",
    sim_market: Annotated[
        str,
        typer.Option(
            help="With --simulate: the market model: chain (calls and puts at several strikes per "
            "expiry, moving underlyings, activity near the money) or slots (one option per listing)."
        ),
    ] = "chain",
    exchange_url: Annotated[str | None, typer.Option(help="Exchange REST base URL.")] = None,
    metrics_port: Annotated[int | None, typer.Option(help="Port of /metrics and /healthz (0: any free).")] = None,
) -> None:
    """Run the daemon: keep every option symbol's klines, trades, depth and tickers current."""
    import asyncio

    from collector.cli.options import console, settings
    from collector.daemon.run import run_daemon

    cfg = settings(ctx, exchange_url=exchange_url, metrics_port=metrics_port)

    def say(message: str) -> None:
        console.print(f"[dim]{message}[/dim]")

    if simulate:
        from collector.simulator import SimConfig
        from collector.simulator.cli import simulator_faults

        try:
            sim = SimConfig(
                seed=sim_seed,
                symbols=sim_symbols,
                history_days=0.25,
                listing_interval_s=sim_listing_interval,
                faults=simulator_faults(sim_profile),
                market=sim_market,
            )
        except ValueError as exc:
            raise ConfigError(f"simulator: {exc}") from None
        code = asyncio.run(_run_with_simulator(cfg, sim, announce=say))
    else:
        code = asyncio.run(run_daemon(cfg, announce=say))
    raise typer.Exit(code)


def simulator_settings(cfg, base_url: str):
    """Point the settings at an in-process simulator, with its demo account's key pair unless a key
    was configured (any well-formed key is accepted there for market data)."""
    from pydantic import SecretStr

    from collector.simulator.accounts import DEMO_KEY, DEMO_SECRET

    update: dict = {"exchange_url": base_url}
    if cfg.api_key is None:
        update["api_key"] = SecretStr(DEMO_KEY)
        if cfg.api_secret is None:
            update["api_secret"] = SecretStr(DEMO_SECRET)
    return cfg.model_copy(update=update)


async def _run_with_simulator(cfg, sim_config, *, announce) -> int:
    """`run --simulate`: the one place the collector starts the simulator, beside the daemon. It
    listens where the exchange URL points when that port is free (the default: 127.0.0.1:8080),
    else on any free port, and records where in the data directory for the other commands."""
    from yarl import URL

    from collector.cli import demo
    from collector.daemon.run import run_daemon
    from collector.simulator import Simulator

    wanted = URL(cfg.exchange_url)
    port = wanted.port if wanted.host in ("127.0.0.1", "localhost") and wanted.port else 0
    sim = Simulator(sim_config, host="127.0.0.1", port=port)
    try:
        await sim.start()
    except OSError:  # taken: any free port (the record says which)
        await sim.stop()
        sim = Simulator(sim_config, host="127.0.0.1", port=0)
        await sim.start()
    try:
        demo.record(cfg.data_dir, sim.base_url)
        announce(f"simulated JEX exchange at {sim.base_url} (seed {sim_config.seed})")
        return await run_daemon(simulator_settings(cfg, sim.base_url), announce=announce)
    finally:
        demo.forget(cfg.data_dir)
        await sim.stop()


@app.command("symbols")
def symbols_command(
    ctx: typer.Context,
    output: OutputOpt = Output.table,
    as_json: Annotated[bool, typer.Option("--json", help="The same as --output json.")] = False,
    exchange_url: Annotated[
        str | None, typer.Option(help="Exchange REST base URL. [env: COLLECTOR_EXCHANGE_URL]")
    ] = None,
) -> None:
    """List the exchange's option symbols: type, strike, expiry, status (weight 2, or 42 with strikes).
    JSON is one object per line."""
    import asyncio
    import json

    from collector.cli.options import settings, write_csv

    cfg = settings(ctx, exchange_url=exchange_url)
    rows = asyncio.run(_symbols(cfg))
    if as_json or output is Output.json:
        for row in rows:
            typer.echo(json.dumps(row))
        return
    if output is Output.csv:
        write_csv(rows)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(rows)} option symbols at {cfg.exchange_url}")
    for col in ("symbol", "type", "strike", "expiry (UTC)", "status"):
        table.add_column(col, justify="right" if col == "strike" else "left")
    for r in rows:
        table.add_row(r["symbol"], r["type"] or "", r["strike"] or "", r["expiry"] or "", r["status"])
    Console(soft_wrap=True).print(table)


async def _symbols(cfg) -> list[dict]:
    from collector.exchange.session import STARTUP_RETRIES, connect_exchange

    async with connect_exchange(cfg, startup_retries=STARTUP_RETRIES) as client:
        infos = {o.symbol: o for o in await client.option_info()}
        listed = {s.symbol: s for s in (await client.exchange_info()).option_symbols}
        strikes = {t.symbol: t.strike_price for t in await client.ticker_24hr()}
    out = []
    for name in sorted(set(infos) | set(listed)):
        info, entry = infos.get(name), listed.get(name)
        out.append(
            {
                "symbol": name,
                "type": info.option_type if info else None,
                "strike": str(strikes[name]) if strikes.get(name) is not None else None,
                "expiry": info.expiry_time.isoformat() if info and info.expiry_time else None,
                "status": info.status if info else entry.status if entry else None,
            }
        )
    return out


@config_app.command("show")
def config_show(ctx: typer.Context) -> None:
    """Print the effective settings as JSON, secrets masked."""
    import json

    typer.echo(json.dumps(state(ctx).settings.public_dict(), indent=2))


def _register_commands() -> None:
    """Commands that live in their own modules. Each module imports collector.cli.options, not this."""
    from collector.cli.access import analyst_role_command, serve_command, shell_command, url_command

    db_app.command("url")(url_command)
    db_app.command("shell")(shell_command)
    db_app.command("serve")(serve_command)
    db_app.command("analyst-role")(analyst_role_command)

    from collector.simulator.cli import simulate_command

    app.command("simulate", help="Run the JEX-compatible exchange simulator.")(simulate_command)

    from collector.cli.backfill import backfill_command

    app.command("backfill")(backfill_command)

    from collector.cli.analyst import (
        export_command,
        plot_app,
        status_command,
        verify_command,
    )

    app.command("verify")(verify_command)
    app.command("status")(status_command)
    app.command("export")(export_command)
    app.add_typer(plot_app, name="plot")


_register_commands()


EXIT_BAD_INPUT = 2
# typer vendors click; reach its usage-error class through a public one rather than a private module.
_UsageError: type[Exception] = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")


EXIT_TEMPFAIL = 75  # sysexits.h EX_TEMPFAIL: the database or the exchange is down; try again later


def exit_code_for(exc: CollectorError) -> int:
    """By what the operator must do: 2 fix the input or config, 75 retry later, 1 anything else."""
    if isinstance(exc, (ConfigError, ExchangeRejected)):
        return EXIT_BAD_INPUT
    if isinstance(exc, TransientError):  # DatabaseUnavailable, ExchangeUnavailable, RateLimited, Banned
        return EXIT_TEMPFAIL
    return 1


def global_options_first(group, args: list[str]) -> list[str]:
    """``collector status --database-url X`` as ``collector --database-url X status``: the collector's
    own options (those of the top-level callback) may come after the command too, unless that
    command has an option of the same name (``run --exchange-url``: its own)."""
    takes_value = {}
    for param in group.params:
        for opt in getattr(param, "opts", []):
            takes_value[opt] = not getattr(param, "is_flag", False)
    ours = {
        o
        for o in takes_value
        if o.startswith("--") and o not in ("--help", "--install-completion", "--show-completion")
    }
    # Walk down to the command named (a group's subcommand, like `db upgrade`), then collect its options.
    node, i = group, 0
    while i < len(args) and hasattr(node, "commands"):
        if args[i].startswith("-"):
            i += 2 if args[i] in takes_value and takes_value[args[i]] and "=" not in args[i] else 1
            continue
        child = node.commands.get(args[i])
        if child is None:
            return args
        node, i = child, i + 1
    if node is group:
        return args
    own = {opt for param in node.params for opt in getattr(param, "opts", [])}
    moved, rest, j = [], args[:i], i
    while j < len(args):
        token = args[j]
        name = token.split("=", 1)[0]
        if token == "--":
            rest += args[j:]
            break
        if name in ours and name not in own:
            if "=" in token or not takes_value[name]:
                moved.append(token)
                j += 1
            else:
                moved += args[j : j + 2]
                j += 2
            continue
        rest.append(token)
        j += 1
    return moved + rest


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app and turn every expected failure into one line and an exit code."""
    command = typer.main.get_command(app)
    args = global_options_first(command, list(sys.argv[1:] if argv is None else argv))
    try:
        rv = command.main(args=args, prog_name="collector", standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except _UsageError as exc:
        print(f"collector: error: {exc.format_message()}", file=sys.stderr)  # type: ignore[attr-defined]
        sys.exit(EXIT_BAD_INPUT)
    except typer.Abort:
        print("collector: aborted", file=sys.stderr)
        sys.exit(130)
    except CollectorError as exc:
        from collector.logs import redact

        print(f"collector: error: {redact(str(exc))}", file=sys.stderr)
        sys.exit(exit_code_for(exc))
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(rv if isinstance(rv, int) else 0)
