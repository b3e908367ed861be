"""The collector against exchanges that differ from our simulator's default only in ways the field
notes record or allow: the live-2019 profile, a page cap below the seed's maximum, no used-weight
headers, -7013 for expired options, no API key, a malformed optionInfo entry.

Each test runs the real backfill or the real daemon (in-process, or the command in a subprocess
where exit codes, signals and log lines are the point) against the real simulator over loopback,
on real PostgreSQL, and compares what was stored with the simulator's truth.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import aiohttp
import pytest
from sqlalchemy import text

from collector.backfill.plan import BackfillPlan
from collector.backfill.run import run_backfill
from collector.config import load_settings
from collector.exchange.session import connect_exchange
from collector.simulator import FaultConfig, SimConfig, Simulator
from tests.helpers.daemons import running_daemon
from tests.helpers.polling import count, until
from tests.helpers.truth import (
    API_KEY,
    INTERVALS,
    assert_equals_truth,
    backfill_cmd,
    cli_env,
    ms,
    stored_klines,
    stored_trades,
    tail,
    truth_klines,
    truth_trades,
    window,
)

OUR_IP = "127.0.0.1"
SHUTDOWN_LIMIT = 5.0  # seconds from SIGTERM to exit, whatever the daemon was doing
LIVE = FaultConfig.profile("live-2019", scalars_as_strings_rate=0.3)  # and some integers as strings


def in_process_settings(sim: Simulator, db_url: str | None = None, **extra):
    # REST alone: these tests are about its cadence, budget and refusals (push: test_push.py)
    overrides = {"exchange_url": sim.base_url, "api_key": API_KEY, "push": [], **extra}
    if db_url is not None:
        overrides["database_url"] = db_url
    return load_settings(None, overrides, defaults_file=None)


class Command:
    """A `python -m collector ...` child writing to a log file, for tests about signals and exits."""

    def __init__(self, args: list[str], env: dict[str, str], log_path) -> None:
        self.args, self.env, self.log_path = args, env, log_path
        self.proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> Command:
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in __aexit__
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "collector", *self.args, env=self.env, stdout=self._log, stderr=self._log
        )
        return self

    async def __aexit__(self, *exc) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        self._log.close()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def line(self, pattern: str, timeout: float = 90) -> re.Match:
        """The first log line matching ``pattern`` (waits for it; fails if the child ends first)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = re.search(pattern, self.output(), re.MULTILINE)
            if found:
                return found
            assert self.proc.returncode is None, f"exited {self.proc.returncode}:\n{tail(self.log_path)}"
            assert loop.time() < deadline, f"no line {pattern!r} in {timeout:g}s:\n{tail(self.log_path)}"
            await asyncio.sleep(0.2)

    async def sigterm(self) -> tuple[int, float]:
        """Send SIGTERM; returns (exit code, seconds until it exited)."""
        self.proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        code = await asyncio.wait_for(self.proc.wait(), 60)
        return code, time.monotonic() - sent


def trading(sim: Simulator) -> list[str]:
    return sorted(o["symbol"] for o in sim.market.option_info(sim.now_ms()) if o["status"] == "TRADING")


def daemon_env(db_url: str, sim: Simulator, *, key: bool = True, **extra: str) -> dict[str, str]:
    env = cli_env(
        db_url,
        sim,
        COLLECTOR_METRICS_PORT="0",
        COLLECTOR_KLINE_INTERVALS="1m",
        COLLECTOR_LOOKBACK_HOURS="0.05",
        COLLECTOR_HTTP_READ_TIMEOUT="3",
        **extra,
    )
    if not key:
        del env["COLLECTOR_API_KEY"]
    return env


async def metrics_port(cmd: Command) -> int:
    return int((await cmd.line(r"metrics on http://127\.0\.0\.1:(\d+)/metrics")).group(1))


async def fetch(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        return resp.status, await resp.text()


# --- the backfill against the live-2019 profile: the whole budget, exact ----------------------------------


LIVE_BACKFILL_SIM = dict(
    seed=43,
    history_days=0.25,
    symbols=6,
    weight_limit=300,
    raw_limit=5000,
    trades_per_minute=100,
    listing_interval_s=1800,
    silent_share=0.0,
    grace_s=6 * 3600,
)


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_backfill_against_live_2019_uses_the_announced_budget_and_is_exact(engine):
    """Over 3 minutes of budget: every full window uses >= 0.90 of the announced limit, no 429,
    and the data equals the exchange's row for row, although its -1M header always says 'full'."""
    async with Simulator(SimConfig(**LIVE_BACKFILL_SIM, faults=LIVE), port=0) as sim:
        now = sim.clock.now_ms()
        start, end = window(now)
        symbols = sim.market.listed_symbols(now)
        limit = LIVE_BACKFILL_SIM["weight_limit"]
        # The precondition, whatever the hour: at least 3.3 windows of trades pages in the window
        # (which symbols trade in it, and how much, follows the listing cycle of the clock).
        while pages_weight(sim, symbols, start, end) < 3.3 * limit:
            start -= timedelta(minutes=20)
        async with connect_exchange(in_process_settings(sim)) as client:
            plan = BackfillPlan(start, end, symbols, intervals=INTERVALS, batch_rows=2000)
            began = sim.clock.now_ms()
            summary = await run_backfill(client, engine, plan)
            ended = sim.clock.now_ms()
            source = client.governor.stats().weight_source
        assert not summary.failed and not summary.incomplete
        assert_equals_truth(engine, sim, symbols, start, end, sim.clock.now_ms())
        assert summary.weight >= 3 * limit  # at least three minutes of budget
        windows = sim.stats.weight[OUR_IP]
        full = [w for w in windows if w >= began and w + 60_000 <= ended]
        used = {w: windows[w] / limit for w in sorted(full)}
        print(f"utilisation per full window: {used}")
        assert len(full) >= 2 and all(u >= 0.90 for u in used.values()), used
        assert sim.stats.status_429 == 0 and sim.stats.status_418 == 0
        assert source == "X-MBX-USED-WEIGHT"  # the honest header proved itself; -1M never does


def pages_weight(sim, symbols, start, end) -> int:
    """The weight of the fewest historicalTrades pages that hold the window's trades."""
    return sum(-(-len(sim.market.trades(s, ms(start), ms(end))) // 500) * 5 for s in symbols)


# --- a page shorter than asked ---------------------------------------------------------------------------

CAPPED_SIM = dict(
    seed=47,
    history_days=0.25,
    symbols=6,
    weight_limit=0,
    raw_limit=0,
    trades_per_minute=12,
    listing_interval_s=1800,
    silent_share=0.25,
    grace_s=6 * 3600,
)


@pytest.mark.parametrize("cap, minutes", [(100, 120), (1, 25)])
async def test_backfill_with_a_page_cap_below_the_seed_is_exact(engine, cap, minutes):
    async with Simulator(SimConfig(**CAPPED_SIM, faults=FaultConfig(page_cap=cap)), port=0) as sim:
        sim.clock.freeze()
        now = sim.clock.now_ms()
        start, end = window(now)
        start = end - timedelta(minutes=minutes)
        async with connect_exchange(in_process_settings(sim)) as client:
            summary = await run_backfill(client, engine, BackfillPlan(start, end, intervals=INTERVALS))
        assert not summary.failed and not summary.incomplete
        symbols = sorted({t.symbol for t in summary.tasks})
        expected = truth_trades(sim.market, symbols, start, end)
        assert len(expected) > 20 * cap  # many pages per symbol: the cap really bites
        assert stored_trades(engine) == expected
        assert stored_klines(engine) == truth_klines(sim.market, symbols, INTERVALS, start, end, now)
        # Evidence costs at most one request beyond the data's pages, per (symbol, window).
        trade_tasks = [t for t in summary.tasks if t.stream == "trades"]
        paging = sum(t.cost.requests - t.cost.probes for t in trade_tasks)
        pages = sum(-(-t.rows // cap) for t in trade_tasks)
        assert paging <= pages + len(trade_tasks), (paging, pages)
        # Option terms: a symbol only backfilled has its strike, underlying and weekly flag.
        with engine.connect() as conn:
            terms = conn.execute(
                text(
                    "SELECT symbol, strike_price, underlying, underlying_source, weekly "
                    "FROM option_symbols ORDER BY symbol"
                )
            ).all()
        assert [t.symbol for t in terms] == symbols
        for t in terms:
            opt = sim.market.option(t.symbol)
            assert t.strike_price == Decimal(opt.strike) / 10_000, t
            # The simulator numbers names that would repeat (BTC0925CALL2): no pattern to read then.
            named = re.fullmatch(r"[A-Z]+[0-9]{4}(CALL|PUT)W?", t.symbol) is not None
            if opt.k % 3 == 0:  # it gives releaseOption.assetMarginName
                assert (t.underlying, t.underlying_source) == (opt.underlying, "optionInfo"), t
            else:
                assert (t.underlying, t.underlying_source) == ((opt.underlying, "name") if named else (None, None)), t
            assert t.weekly == (t.symbol.endswith("W") if named else None), t


# --- the daemon against the live-2019 profile -------------------------------------------------------------

LIVE_DAEMON_SIM = dict(
    seed=41,
    history_days=0.05,
    symbols=4,
    trades_per_minute=30,
    silent_share=0.0,
    listing_interval_s=7200,
    grace_s=600,
    weight_limit=1200,
)
DEPTH_EVERY = 3.0


@pytest.mark.timeout(300)
async def test_daemon_against_live_2019_keeps_cadence_stores_every_trade_once_and_stops_mid_wait(
    db_url, engine, tmp_path
):
    async with Simulator(SimConfig(**LIVE_DAEMON_SIM, faults=LIVE), port=0) as sim:
        begun = datetime.now(UTC)
        env = daemon_env(
            db_url,
            sim,
            COLLECTOR_TRADES_POLL_SECONDS="2",
            COLLECTOR_KLINES_POLL_SECONDS="4",
            COLLECTOR_DEPTH_POLL_SECONDS=str(DEPTH_EVERY),
            COLLECTOR_TICKERS_POLL_SECONDS="3",
        )
        async with Command(["run"], env, tmp_path / "run.log") as cmd:
            port = await metrics_port(cmd)
            symbols = sim.market.listed_symbols(sim.now_ms())
            # Every symbol's depth at its planned cadence: judged over a dozen snapshots each.
            await until(
                lambda: min(depth_counts(engine, symbols).values(), default=0) >= 12,
                120,
                "a dozen depth snapshots per symbol",
            )
            for symbol, (n, first, last) in depth_spans(engine, symbols).items():
                planned = (last - first).total_seconds() / DEPTH_EVERY + 1
                assert 0.7 * planned <= n <= planned + 1, (symbol, n, planned)
            # Every trade the exchange had by now, stored exactly once.
            target = datetime.now(UTC)
            await until(lambda: trades_up_to(engine, sim, symbols, begun, target), 60, "every trade stored")
            # The honest header wins back trust after a whole window of readings; -1M never does.
            legacy = 'jex_governor_weight_source{source="X-MBX-USED-WEIGHT"} 1.0'
            while legacy not in (body := (await fetch(f"http://127.0.0.1:{port}/metrics"))[1]):
                assert 'source="X-MBX-USED-WEIGHT-1M"} 1.0' not in body
                assert (datetime.now(UTC) - begun).total_seconds() < 180, "the legacy header was never believed"
                await asyncio.sleep(1)
            assert sim.stats.status_429 == 0

            # A ban of minutes (inside max_ban_wait): the daemon waits it out, sending nothing.
            sim.limiter.ban(OUR_IP, sim.now_ms() + 300_000)
            banned = sim.stats.status_418
            await until(lambda: sim.stats.status_418 > banned, 30, "a request of ours meeting the ban")
            code, took = await cmd.sigterm()
        assert code == 0, tail(cmd.log_path)
        assert took < SHUTDOWN_LIMIT, took
        # Only what was in flight when the ban began met it: at most one request per poll running
        # at once (trades, klines, depth and tickers of each symbol, and the symbol refresh).
        assert sim.stats.status_418 - banned <= 4 * len(symbols) + 1


async def test_daemon_stops_within_seconds_while_waiting_out_a_ban_at_start(db_url, tmp_path):
    async with Simulator(SimConfig(**LIVE_DAEMON_SIM, faults=LIVE), port=0) as sim:
        sim.limiter.ban(OUR_IP, sim.now_ms() + 300_000)
        async with Command(["run"], daemon_env(db_url, sim), tmp_path / "run.log") as cmd:
            await until(lambda: sim.stats.status_418 >= 1, 60, "the daemon meeting the ban")
            code, took = await cmd.sigterm()
        assert code == 0, tail(cmd.log_path)
        assert took < SHUTDOWN_LIMIT, took
        assert sim.stats.status_418 == 1  # it sent nothing more while banned


def depth_counts(engine, symbols) -> dict[str, int]:
    with engine.connect() as conn:
        return dict(
            conn.execute(
                text("SELECT symbol, count(*) FROM depth_snapshots WHERE symbol = ANY(:s) GROUP BY symbol"),
                {"s": list(symbols)},
            ).all()
        )


def depth_spans(engine, symbols) -> dict[str, tuple[int, datetime, datetime]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT symbol, count(*), min(captured_at), max(captured_at) FROM depth_snapshots "
                "WHERE symbol = ANY(:s) GROUP BY symbol"
            ),
            {"s": list(symbols)},
        ).all()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def trades_up_to(engine, sim: Simulator, symbols, begun: datetime, target: datetime) -> bool:
    """Every trade of ``symbols`` from the daemon's lookback until ``target`` is stored, once, and
    nothing is stored that the exchange does not hold."""
    lookback = timedelta(hours=0.05)
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT symbol, trade_id, price, qty, time FROM trades")).all()
        seen = dict(conn.execute(text("SELECT symbol, first_seen FROM option_symbols")).all())
    assert not [k for k, n in Counter((r.symbol, r.trade_id) for r in stored).items() if n > 1]
    by_symbol = {}
    for r in stored:
        by_symbol.setdefault(r.symbol, {})[r.trade_id] = (r.price, r.qty, ms(r.time))
    for s in symbols:
        since = seen[s] - lookback + timedelta(seconds=5)
        truth = {
            t["id"]: (Decimal(t["price"]), Decimal(t["qty"]), t["time"])
            for t in sim.market.trades(s, ms(since), ms(target))
        }
        mine = by_symbol.get(s, {})
        assert set(mine) <= {t["id"] for t in sim.market.trades(s, 0, sim.now_ms() + 1)}
        if any(mine.get(i) != v for i, v in truth.items()):
            return False
    return True


# --- -7013 for expired options ----------------------------------------------------------------------------

EXPIRING_SIM = dict(
    seed=53,
    history_days=0.05,
    symbols=4,
    trades_per_minute=20,
    silent_share=0.0,
    listing_interval_s=60,
    grace_s=900,
    weight_limit=0,
    raw_limit=0,
)


@pytest.mark.timeout(300)
async def test_daemon_asks_a_few_times_for_a_refused_expired_symbol_then_stops(db_url, engine):
    faults = FaultConfig(refuse_expired=True)
    async with Simulator(SimConfig(**EXPIRING_SIM, faults=faults), port=0) as sim:
        now = sim.now_ms()
        expired = [o["symbol"] for o in sim.market.option_info(now) if o["status"] == "EXPIRED"]
        assert len(expired) >= 5
        settings = in_process_settings(
            sim,
            db_url,
            trades_poll_seconds=1.0,
            klines_poll_seconds=1.0,
            depth_poll_seconds=2.0,
            tickers_poll_seconds=2.0,
            kline_intervals=["1m"],
            symbols_refresh_seconds=30.0,
            lookback_hours=0.05,
            metrics_port=0,
        )
        async with running_daemon(settings) as daemon:
            await until(
                lambda: (
                    count(
                        engine,
                        "SELECT count(*) FROM option_symbols WHERE refused_at IS NOT NULL "
                        f"AND symbol IN ({', '.join(repr(s) for s in expired)})",
                    )
                    == len(expired)
                ),
                60,
                "every expired symbol refused",
            )
            asked = {s: sim.stats.by_symbol[s] for s in expired}
            polls = sim.stats.by_endpoint["/api/v1/option/historicalTrades"]
            trading = daemon.running.ctx.with_history()
            # Five more trades polls of the rest: nothing more is asked of the refused ones.
            await until(
                lambda: sim.stats.by_endpoint["/api/v1/option/historicalTrades"] >= polls + 5 * len(trading),
                60,
                "five more trades polls",
            )
            target = datetime.now(UTC)
            live = [s for s in trading if sim.market.option(s).expiry > ms(target)]
            await until(
                lambda: trades_up_to(engine, sim, live, datetime.now(UTC), target),
                60,
                "every trade of the trading symbols",
            )
        assert {s: sim.stats.by_symbol[s] for s in expired} == asked
        assert max(asked.values()) <= 6, asked  # a few: one per stream polled before the refusal was known
        with engine.connect() as conn:
            reasons = set(
                conn.execute(text("SELECT refusal FROM option_symbols WHERE refused_at IS NOT NULL")).scalars()
            )
        assert reasons and all(r.startswith("-7013 option past its exercise time") for r in reasons), reasons


@pytest.mark.timeout(300)
async def test_backfill_reports_refused_symbols_and_fails_only_for_named_ones(db_url, engine, tmp_path):
    async with Simulator(SimConfig(**CAPPED_SIM, faults=FaultConfig(refuse_expired=True)), port=0) as sim:
        sim.clock.freeze()
        now = sim.clock.now_ms()
        start, end = window(now)
        start = end - timedelta(minutes=20)
        expired = [o["symbol"] for o in sim.market.option_info(now) if o["status"] == "EXPIRED"]
        trading = [o["symbol"] for o in sim.market.option_info(now) if o["status"] == "TRADING"]
        assert expired and trading
        env = cli_env(db_url, sim, COLUMNS="250")  # the summary table on one line per row
        named = backfill_cmd(start, end, [expired[0], trading[0]])[3:]  # without 'python -m collector'
        async with Command(named, env, tmp_path / "named.log") as cmd:
            code = await asyncio.wait_for(cmd.proc.wait(), 120)
        out = cmd.output()
        assert code == 1, out
        assert f"refused by the exchange: {expired[0]} (named with --symbol)" in out
        assert "-7013 option past its exercise time" in out and "Traceback" not in out

        listing = ["backfill", "--start", start.isoformat(), "--end", end.isoformat(), "--interval", "1m"]
        async with Command(listing, env, tmp_path / "listing.log") as cmd:
            code = await asyncio.wait_for(cmd.proc.wait(), 180)
        out = cmd.output()
        assert code == 0, out
        assert all(f"refused by the exchange: {s}" in out for s in expired), out
        assert stored_trades(engine) == truth_trades(sim.market, trading, start, end)
        with engine.connect() as conn:
            run = conn.execute(text("SELECT status, counts FROM collector_runs ORDER BY id DESC LIMIT 1")).one()
        assert run.status == "ok" and set(run.counts["refused"]) == set(expired)


# --- no API key -------------------------------------------------------------------------------------------


@pytest.mark.timeout(300)
async def test_run_without_an_api_key_says_so_once_and_collects_everything_else(db_url, engine, tmp_path):
    sim_cfg = SimConfig(
        seed=59,
        history_days=0.05,
        symbols=3,
        trades_per_minute=20,
        listing_interval_s=3600,
        weight_limit=0,
        raw_limit=0,
        api_keys=(API_KEY,),
    )
    async with Simulator(sim_cfg, port=0) as sim:
        env = daemon_env(
            db_url,
            sim,
            key=False,
            COLLECTOR_TRADES_POLL_SECONDS="1",
            COLLECTOR_DEPTH_POLL_SECONDS="1",
            COLLECTOR_TICKERS_POLL_SECONDS="1",
            COLLECTOR_KLINES_POLL_SECONDS="1",
        )
        async with Command(["run"], env, tmp_path / "run.log") as cmd:
            port = await metrics_port(cmd)
            symbols = trading(sim)
            await until(
                lambda: min(depth_counts(engine, symbols).values(), default=0) >= 5,
                60,
                "five depth polls of every symbol",
            )
            each = f"SELECT count(DISTINCT symbol) FROM %s WHERE symbol IN ({', '.join(map(repr, symbols))})"
            await until(
                lambda: count(engine, each % "klines") == count(engine, each % "tickers_24hr") == len(symbols),
                60,
                "klines and tickers of every symbol",
            )
            status, body = await fetch(f"http://127.0.0.1:{port}/healthz")
            health = json.loads(body)
            async with Command(["status", "--json"], env, tmp_path / "status.log") as st:
                assert await asyncio.wait_for(st.proc.wait(), 60) == 0
            code, _ = await cmd.sigterm()
        out = cmd.output()
        assert code == 0, out
        assert count(engine, "SELECT count(*) FROM trades") == 0
        assert sim.stats.by_endpoint["/api/v1/option/historicalTrades"] == 0  # never asked
        assert out.count("trades are not collected: needs COLLECTOR_API_KEY") == 1, out
        assert "ConfigError" not in out
        assert status == 200 and set(health["disabled"]) <= {"trades", "account"}
        assert "COLLECTOR_API_KEY" in health["disabled"]["trades"]
        rows = json.loads(re.search(r"^\[.*\]", st.output(), re.MULTILINE | re.DOTALL).group(0))
        [note] = [r for r in rows if r["stream"] == "trades"]
        assert note["symbol"] == "*" and note["note"].startswith("disabled: needs COLLECTOR_API_KEY")


# --- one malformed optionInfo entry -----------------------------------------------------------------------


async def test_one_malformed_option_info_entry_does_not_blind_the_daemon(db_url, engine, caplog):
    caplog.set_level("WARNING", "collector.exchange.client")
    cfg = SimConfig(
        seed=61,
        history_days=0.05,
        symbols=6,
        trades_per_minute=20,
        listing_interval_s=3600,
        weight_limit=0,
        raw_limit=0,
        faults=FaultConfig(scalars_as_strings_rate=0.5),
    )
    async with Simulator(cfg, port=0) as sim:
        honest = sim.market.option_info
        bad = trading(sim)[2]
        entry = next(i for i, o in enumerate(honest(sim.now_ms())) if o["symbol"] == bad)

        def one_bad(now_ms):
            entries = honest(now_ms)
            entries[entry] = {**entries[entry], "canRelease": "perhaps"}
            return entries

        sim.market.option_info = one_bad
        settings = in_process_settings(
            sim, db_url, depth_poll_seconds=1.0, metrics_port=0, lookback_hours=0.05, symbols_refresh_seconds=2.0
        )

        def terms() -> dict:
            with engine.connect() as conn:
                return {
                    r.symbol: r
                    for r in conn.execute(text("SELECT symbol, option_type, expiry_time FROM option_symbols"))
                }

        async with running_daemon(settings) as daemon:
            good = [s for s in trading(sim) if s != bad]
            # Every good symbol with its terms; the bad one is still known from exchangeInfo, without
            # anything from its malformed optionInfo entry.
            assert set(daemon.running.ctx.trading()) >= set(good)
            known = terms()
            assert all(known[s].option_type and known[s].expiry_time for s in good)
            assert (known[bad].option_type, known[bad].expiry_time) == (None, None)
            await until(lambda: set(depth_counts(engine, good)) == set(good), 60, "depth of every good symbol")
            refreshes = sim.stats.by_endpoint["/api/v1/optionInfo"]
            await until(lambda: sim.stats.by_endpoint["/api/v1/optionInfo"] >= refreshes + 2, 30, "two refreshes")
            sim.market.option_info = honest  # mended: the next refresh takes it in
            await until(lambda: terms()[bad].expiry_time is not None, 30, "the mended entry taken in")
    named = [r.getMessage() for r in caplog.records if "left out a malformed entry" in r.getMessage()]
    assert len(named) == 1, named  # once, however many refreshes saw it
    assert f"optionInfo entry [{entry}] {bad}: field 'canRelease'" in named[0]


# --- the backfill stopped in the middle of a wait, then resumed -------------------------------------------


@pytest.mark.timeout(300)
async def test_backfill_stops_within_seconds_while_waiting_out_a_ban_and_the_same_command_resumes(
    db_url, engine, tmp_path
):
    cfg = SimConfig(
        seed=67,
        history_days=0.25,
        symbols=6,
        weight_limit=6000,
        raw_limit=0,
        trades_per_minute=60,
        listing_interval_s=1800,
        silent_share=0.0,
        grace_s=6 * 3600,
        faults=LIVE,
    )
    async with Simulator(cfg, port=0) as sim:
        now = sim.clock.now_ms()
        start, end = window(now)
        symbols = sim.market.listed_symbols(now)
        cmd_args = backfill_cmd(start, end, symbols)[3:]
        env = cli_env(db_url, sim, COLLECTOR_BACKFILL_BATCH_ROWS="500")
        async with Command(cmd_args, env, tmp_path / "first.log") as cmd:
            await until(lambda: count(engine, "SELECT count(*) FROM trades") > 0, 60, "the first trades committed")
            sim.limiter.ban(OUR_IP, sim.now_ms() + 300_000)  # minutes: waited out, not given up on
            banned = sim.stats.status_418
            await until(lambda: sim.stats.status_418 > banned, 30, "a request of ours meeting the ban")
            code, took = await cmd.sigterm()
        out = cmd.output()
        assert code == 143, out
        assert took < SHUTDOWN_LIMIT, took
        assert re.search(r"interrupted after \d+ of \d+ tasks .*run the same command to resume", out), out
        with engine.connect() as conn:
            assert conn.execute(text("SELECT status FROM collector_runs")).scalar() == "interrupted"
        stored = count(engine, "SELECT count(*) FROM trades")
        assert stored > 0

        sim.limiter.ban(OUR_IP, 0)  # the ban is over
        async with Command(cmd_args, env, tmp_path / "second.log") as cmd:
            assert await asyncio.wait_for(cmd.proc.wait(), 180) == 0, cmd.output()
        assert_equals_truth(engine, sim, symbols, start, end, sim.clock.now_ms())
