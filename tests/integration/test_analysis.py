"""collector.analyst.frames: typed, UTC-indexed frames equal to what is stored."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pandas as pd
import pytest

from collector.analyst import frames as analysis
from tests.helpers.analyst_data import T0, T1, market, ms, populate

M = timedelta(minutes=1)
SYM = "EOS0106CALLW"


@pytest.fixture
def data(engine):
    return populate(engine)


def test_klines_float_and_decimal(engine, data):
    df = analysis.klines(SYM, "1m", T0 + 10 * M, T0 + 70 * M, engine=engine)
    assert len(df) == 60
    assert isinstance(df.index, pd.DatetimeIndex) and str(df.index.tz) == "UTC"
    assert df.index[0] == pd.Timestamp(T0 + 10 * M) and df.index.is_monotonic_increasing
    assert df["close"].dtype == "float64" and df["trade_count"].dtype == "int64"
    assert df["is_closed"].dtype == "bool" and df["close_time"].dtype == "datetime64[us, UTC]"
    exact = analysis.klines(SYM, "1m", T0 + 10 * M, T0 + 70 * M, engine=engine, decimals=True)
    assert exact["close"].dtype == object and isinstance(exact["close"].iloc[0], Decimal)
    truth = market().klines(SYM, "1m", ms(T0 + 10 * M), ms(T0 + 70 * M), ms(T1))
    assert [str(v) for v in exact["close"]] == [row[4] for row in truth]
    assert list(exact["trade_count"]) == [row[8] for row in truth]
    assert df["close"].tolist() == [float(v) for v in exact["close"]]


def test_trades_chunked_read_is_the_same(engine, data):
    whole = analysis.trades(SYM, T0, T1, engine=engine, decimals=True)
    chunked = analysis.trades(
        SYM, "2026-01-05T11:00:00Z", "2026-01-05T13:00:00", engine=engine, decimals=True, chunk_rows=37
    )
    assert len(whole) > 200
    pd.testing.assert_frame_equal(whole, chunked)
    truth = market().trades(SYM, ms(T0), ms(T1))
    assert whole["trade_id"].tolist() == [t["id"] for t in truth]
    assert [str(q) for q in whole["qty"]] == [t["qty"] for t in truth]
    assert whole["buyer_maker"].dtype == "boolean"
    assert whole.index[0] == pd.Timestamp(truth[0]["time"], unit="ms", tz="UTC")


def test_several_symbols_and_open_windows(engine, data):
    both = analysis.trades(data[:2], engine=engine)
    assert set(both["symbol"]) == set(data[:2]) and both.index.is_monotonic_increasing
    assert analysis.trades("NOPE", engine=engine).empty
    empty = analysis.klines("NOPE", "1m", engine=engine)
    assert empty.empty and str(empty.index.dtype) == "datetime64[us, UTC]"


def test_option_chain_at_a_time(engine, data):
    at = T0 + 45 * M + timedelta(seconds=5)
    chain = analysis.option_chain(at, engine=engine)
    live = {o.name for o in market().listed(ms(at)) if ms(at) < o.expiry}
    assert set(chain["symbol"]) == live and len(chain) == len(live)
    assert str(chain.index.tz) == "UTC" and (chain.index > pd.Timestamp(at)).all()
    assert chain["ticker_at"].max() == pd.Timestamp(T0 + 40 * M)  # latest ticker as of then
    assert (chain["best_bid"] < chain["best_ask"]).all()
    assert set(chain["option_type"]) <= {"CALL", "PUT"} and chain["strike_price"].notna().all()
    later = analysis.option_chain(T0 + 90 * M, engine=engine)  # BTC0105CALLW expired at 12:00
    assert "BTC0105CALLW" not in set(later["symbol"]) and "BNB0106CALLW" in set(later["symbol"])


def test_depth_snapshot_at(engine, data):
    book = analysis.depth(SYM, T0 + 25 * M, engine=engine, decimals=True)
    assert (book.index == pd.Timestamp(T0 + 20 * M)).all()
    bids, asks = book[book["side"] == "bid"], book[book["side"] == "ask"]
    assert bids["level"].tolist() == list(range(len(bids))) and len(asks) > 0
    assert bids["price"].iloc[0] < asks["price"].iloc[0]
    assert bids["price"].is_monotonic_decreasing and asks["price"].is_monotonic_increasing
    assert analysis.depth(SYM, T0 - M, engine=engine).empty
    assert analysis.depth(SYM, engine=engine).index[0] == pd.Timestamp(T1 - 10 * M)


def test_tickers_and_top_of_book(engine, data):
    tk = analysis.tickers(SYM, T0, T1, engine=engine)
    assert len(tk) == 12 and tk["underlying_price"].dtype == "float64"
    top = analysis.top_of_book(SYM, T0, T1, engine=engine, decimals=True)
    assert len(top) == 12 and (top["spread"] == top["ask_price"] - top["bid_price"]).all()


def test_engine_by_url(db_url, data):
    df = analysis.klines(SYM, "1m", T0, T0 + 5 * M, engine=db_url.replace("+psycopg", ""))
    assert len(df) == 5


def test_default_engine_comes_from_settings(clean_env, db_url, data):
    clean_env.setenv("COLLECTOR_DATABASE_URL", db_url)
    analysis._engines.pop(None, None)
    try:
        assert len(analysis.klines(SYM, "1m", T0, T0 + 3 * M)) == 3
    finally:
        held = analysis._engines.pop(None, None)
        if held is not None:
            held.close()


def test_to_utc():
    assert analysis.to_utc("2026-01-05T13:00:00+02:00") == T0
    assert analysis.to_utc(pd.Timestamp("2026-01-05 11:00")) == T0
    assert analysis.to_utc(None) is None


def test_the_account_frames_equal_the_account(engine, data):
    from collector.simulator.accounts import DEMO_KEY, Accounts
    from tests.helpers.analyst_data import populate_account

    m = market()
    written = populate_account(engine, m, T1)
    account = Accounts(m, None, m.cfg.seed).get(DEMO_KEY, ms(T1))
    o = analysis.orders(engine=engine, decimals=True)
    assert len(o) == written["orders"] and o.index.name == "time" and str(o.index.tz) == "UTC"
    assert o.index.is_monotonic_increasing and o["order_id"].dtype == "int64"
    truth = {x.order_id: (x.status, Decimal(x.executed)) for x in account.orders.values()}
    stored = {r.order_id: (r.status, r.executed_qty) for r in o.itertuples()}
    (resting,) = set(stored) - set(truth)  # the order populate_account left open at T1
    assert stored.pop(resting) == ("NEW", 0) and stored == truth
    opened = analysis.orders(open_only=True, engine=engine)
    assert len(opened) >= 1 and set(opened["status"]) <= {"NEW", "PARTIALLY_FILLED"}
    one = o["symbol"].iloc[0]
    window = analysis.orders(one, o.index[0], o.index[0] + timedelta(seconds=1), engine=engine)
    assert set(window["symbol"]) == {one} and window.index.min() == o.index[0]
    r = analysis.option_records(engine=engine)
    assert len(r) == written["records"] == len(account.records) and set(r["status"]) == {"1", "2"}
    p = analysis.positions(T1, engine=engine, decimals=True)
    assert len(p) == written["positions"] and (p["amount"] != 0).all()
    assert analysis.positions(T1 - timedelta(seconds=1), engine=engine).empty  # the snapshot was taken at T1
    marks = analysis.position_marks(engine=engine)
    assert set(marks.index) <= set(p["symbol"]) and marks["unrealised_pnl"].dtype == "float64"
    b = analysis.balances(engine=engine, decimals=True)
    usdt = b[(b["section"] == "option") & (b["asset"] == "USDT")]
    assert usdt["free"].iloc[-1] + usdt["locked"].iloc[-1] == sum(account.balance("option", "USDT"))
    daily = analysis.balances(daily=True, engine=engine)
    assert daily.index.name == "day" and str(daily.index.tz) == "UTC"
    assert (daily.index == daily.index.normalize()).all() and {"total", "as_of"} <= set(daily.columns)
