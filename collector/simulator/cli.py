"""`collector simulate`: run the JEX simulator until SIGINT/SIGTERM (typer command function)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
from typing import Any

import typer

from collector.simulator.config import (
    FAULTS_HELP,
    PROFILES,
    WEIGHT_HEADER_MODES,
    FaultConfig,
    SimConfig,
)

log = logging.getLogger("collector.simulator")


def simulate_command(
    host: str = typer.Option("127.0.0.1", help="Address to bind (loopback by default)."),
    port: int = typer.Option(8080, help="TCP port (0: any free port)."),
    seed: int = typer.Option(1, help="Market seed: the same seed serves the same history."),
    history_days: float = typer.Option(7.0, help="Days of trade history before start."),
    symbols: int = typer.Option(28, help="Option symbols trading at once."),
    weight_limit: int = typer.Option(1200, help="requestsWeight per minute per IP; 0 lifts all limits."),
    raw_limit: int = typer.Option(5000, help="rawRequests per 5 minutes per IP; 0 lifts it."),
    faults: str = typer.Option("", help=FAULTS_HELP),
    profile: str = typer.Option(
        "default",
        help="Behave like a recorded exchange: "
        f"{', '.join(PROFILES)} (live-2019: every habit the field notes record "
        "of the live JEX: disagreeing used-weight headers, depth without "
        "lastUpdateId in two-element levels and fewer than asked, closeTime < "
        "openTime, ids and quantities as JSON numbers). --faults adds to it.",
    ),
    weight_headers: str | None = typer.Option(
        None, help=f"How used-weight headers are sent: {', '.join(WEIGHT_HEADER_MODES)} (default: the profile's)."
    ),
    page_cap: int | None = typer.Option(
        None, help="Serve at most this many trades / klines per page (below the seed's maximum of 500 / 1000)."
    ),
    refuse_expired: bool = typer.Option(
        False, "--refuse-expired", help="Refuse market data of expired options with -7013."
    ),
    market: str = typer.Option(
        "chain",
        help="The market model: chain (per underlying a moving price; per expiry calls and puts at "
        "--strikes strikes around the money, priced by Black-Scholes with a smile; trading "
        "concentrated near the money and near expiry, in bursts) or slots (one option per listing "
        "on a smooth price).",
    ),
    strikes: int = typer.Option(3, help="chain: strikes per expiry, each with a call and a put."),
    trades_per_minute: float = typer.Option(
        7.0, help="Activity: mean trades per minute of a trading symbol (chain: of one at the money)."
    ),
    listing_interval_s: float = typer.Option(21600.0, help="Seconds between listings; lifetime = symbols x this."),
    grace_s: float = typer.Option(86400.0, help="Seconds an expired symbol stays listed."),
    ban_base_s: float = typer.Option(120.0, help="First 418 ban in seconds (doubles per ban, max 3 days)."),
    push_s: float = typer.Option(1.0, help="Web sockets: seconds between kline, ticker and depth pushes."),
    ws_lifetime_s: float = typer.Option(86400.0, help="Web sockets: a connection is closed this long after it opened."),
    listen_key_ttl_s: float = typer.Option(3600.0, help="User data streams: a listenKey's validity (and each PUT's)."),
    account: list[str] = typer.Option(  # noqa: B008 - typer's way to declare a repeatable option
        [],
        metavar="KEY:SECRET",
        help="An account of the signed endpoints as KEY:SECRET (repeatable; letters and digits). "
        "None given: the demo account only (key jexdemokey0000000000000001, secret "
        "jexdemosecret00000000000000000000000000000001), with a history over the history span.",
    ),
) -> None:
    """Run a local JEX exchange serving the seed's public option endpoints, its signed account API, and
    the web-socket streams and user data streams (ws://HOST:PORT/ws/<name>, /stream?streams=...)."""
    try:
        fault_cfg = simulator_faults(profile, faults, weight_headers, page_cap, refuse_expired)
        accounts = parse_accounts(account)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    try:
        cfg = SimConfig(
            seed=seed,
            history_days=history_days,
            symbols=symbols,
            weight_limit=weight_limit,
            raw_limit=raw_limit,
            faults=fault_cfg,
            trades_per_minute=trades_per_minute,
            listing_interval_s=listing_interval_s,
            grace_s=grace_s,
            ban_base_s=ban_base_s,
            accounts=accounts,
            market=market,
            strikes=strikes,
            push_s=push_s,
            lifetime_s=ws_lifetime_s,
            listen_key_ttl_s=listen_key_ttl_s,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if port < 0 or port > 65535:
        raise typer.BadParameter(f"port must be within 0..65535, got {port}", param_hint="--port")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(_run(cfg, host, port))
    except OSError as exc:
        typer.echo(f"error: cannot serve on {host}:{port}: {exc.strerror or exc}", err=True)
        raise typer.Exit(2) from None


def parse_accounts(pairs: list[str]) -> dict[str, str] | None:
    """``KEY:SECRET`` pairs as the simulator's accounts (None when there are none: the demo's)."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, secret = pair.partition(":")
        if not (sep and key.isalnum() and key.isascii() and secret.isalnum() and secret.isascii()):
            raise ValueError("--account takes KEY:SECRET, both letters and digits only")
        out[key] = secret
    return out or None


def simulator_faults(
    profile: str = "default",
    faults: str = "",
    weight_headers: str | None = None,
    page_cap: int | None = None,
    refuse_expired: bool = False,
) -> FaultConfig:
    """The FaultConfig the flags describe: the profile, then --faults, then the switches."""
    cfg = FaultConfig.parse(faults, base=FaultConfig.profile(profile))
    switches: dict[str, Any] = {}
    if weight_headers is not None:
        switches["weight_headers"] = weight_headers
    if page_cap is not None:
        switches["page_cap"] = page_cap
    if refuse_expired:
        switches["refuse_expired"] = True
    return dataclasses.replace(cfg, **switches) if switches else cfg


async def _run(cfg: SimConfig, host: str, port: int) -> None:
    from collector.simulator.app import Simulator

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with Simulator(cfg, host=host, port=port) as sim:
        log.info(
            "JEX simulator on %s (streams on %s; seed %d, %d symbols, weight limit %s, faults %s)",
            sim.base_url,
            sim.stream_url,
            cfg.seed,
            cfg.symbols,
            cfg.weight_limit or "off",
            cfg.faults,
        )
        last = (sim.stats.requests, sim.stats.status_429, sim.stats.status_418, sim.stats.rows)
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=60)
            except TimeoutError:
                pass
            s = sim.stats
            now = sim.now_ms()
            weight = sum(w.get(now - now % 60_000 - 60_000, 0) for w in s.weight.values())
            cur = (s.requests, s.status_429, s.status_418, s.rows)
            log.info(
                "last minute: %d requests, weight %d (previous window), %d rows, %d x 429, %d x 418",
                cur[0] - last[0],
                weight,
                cur[3] - last[3],
                cur[1] - last[1],
                cur[2] - last[2],
            )
            last = cur
        log.info("stopping")


def main() -> None:
    typer.run(simulate_command)
