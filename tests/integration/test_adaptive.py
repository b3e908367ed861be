"""The adaptive schedule against the realistic (chain) market: every trade stored once and closed
klines equal the truth, with the weight spent where the trades are; and a symbol the price signal
cannot see trade (its last price never moves) is still caught by the guaranteed sweep."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from collector.config import load_settings
from collector.simulator import FaultConfig, SimConfig, Simulator
from tests.helpers.daemon_truth import POLL, caught_up, check_up_to
from tests.helpers.daemons import running_daemon

# Chains of 6 (calls and puts at 3 strikes) listed every minute, each living four: symbols are
# listed and expire during the run, and trade unevenly (near the money, in bursts).
CHAIN = dict(
    market="chain",
    strikes=3,
    seed=15,
    history_days=0.05,
    symbols=24,
    listing_interval_s=10,
    trades_per_minute=40,
    silent_share=0.0,
    grace_s=600,
)
RUN = timedelta(seconds=45)
SWEEP = 60.0


def adaptive_settings(sim: Simulator, db_url: str, **extra):
    return load_settings(
        None,
        {
            "exchange_url": sim.base_url,
            "api_key": "adaptive1",
            "database_url": db_url,
            **POLL,
            "schedule": "adaptive",
            "trades_signal_seconds": 1.0,
            **extra,
        },
        defaults_file=None,
    )


def trade_polls(sim: Simulator) -> dict[str, int]:
    return {s: n for (e, s), n in sim.stats.by_endpoint_symbol.items() if e == "/api/v1/option/historicalTrades"}


async def test_adaptive_polling_on_the_chain_market_stores_every_trade_once_and_follows_activity(engine, db_url):
    async with Simulator(SimConfig(**CHAIN), port=0) as sim:
        started = datetime.now(UTC)
        # the guarantee is the sweep (a trade at an unchanged price moves no price signal): the
        # test's sweep bounds how long catching up may take
        async with running_daemon(adaptive_settings(sim, db_url, trades_sweep_seconds=SWEEP)) as daemon:
            await caught_up(
                engine,
                sim,
                started,
                started + RUN,
                RUN.total_seconds() + SWEEP + 30,
                alive=lambda: not daemon.task.done(),
            )
            ctx = daemon.running.ctx
            rates = dict(ctx.trade_rates)
        result = check_up_to(engine, sim, started, started + RUN)
        assert result["trades"] > 500
        assert sim.stats.status_429 == 0 and sim.stats.status_418 == 0
        # the weight follows the trades: the busiest quarter of the symbols was asked clearly more often
        # (a fixed schedule: as often; unloaded runs here: 3-5 times as often; CPU-starved: 2) than
        # the quietest quarter, beyond the first poll (the catch-up every symbol gets, whatever it trades)
        polls = trade_polls(sim)
        known = sorted((s for s in rates if s in polls), key=lambda s: rates[s])
        quarter = len(known) // 4
        quiet, busy = known[:quarter], known[-quarter:]
        beyond_first = [sum(polls[s] - 1 for s in group) for group in (busy, quiet)]
        assert beyond_first[0] > 1.5 * beyond_first[1], (beyond_first, {s: (polls[s], rates[s]) for s in known})


async def test_a_symbol_the_price_signal_misses_is_caught_by_the_sweep(engine, db_url):
    """Every symbol but one trades where the price signal sees it; that one's last price never
    moves. The sweep (or the tickers' 24h volume) still finds its trades, and the daemon, measuring
    trades the price signal did not show, polls it at its interval from then on."""
    from collector.simulator import Market

    now = int(datetime.now(UTC).timestamp() * 1000)
    m = Market(SimConfig(**CHAIN))
    trading = [o for o in m.listed(now) if o.expiry > now + 100_000]
    # the market is a function of time: pick the symbol that will trade most in the run's window
    # (the busiest of the last minute may fall quiet, as one did: 3 trades in the 45 s)
    ahead = (now + 2_000, now + int(RUN.total_seconds() * 1000))
    hidden = max(trading, key=lambda o: len(m._trades_range(o, *ahead))).name
    cfg = SimConfig(**CHAIN, faults=FaultConfig(frozen_prices=(hidden,)))
    async with Simulator(cfg, port=0) as sim:
        started = datetime.now(UTC)
        settings = adaptive_settings(sim, db_url, trades_sweep_seconds=6.0)
        async with running_daemon(settings) as daemon:
            await caught_up(
                engine, sim, started, started + RUN, RUN.total_seconds() + 60, alive=lambda: not daemon.task.done()
            )
            ctx = daemon.running.ctx
            unseen, on_signals = dict(ctx.unseen_rates), set(ctx.on_signals)
        check_up_to(engine, sim, started, started + RUN)  # its trades too, exactly once
        window = (int(started.timestamp() * 1000), int((started + RUN).timestamp() * 1000))
        assert len(sim.market.trades(hidden, *window)) > 10  # it did trade, unseen by the signal
        assert unseen[hidden] > 0  # and the daemon noticed: polled at its interval from then on
        assert hidden not in on_signals
