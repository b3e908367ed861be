"""Hostile exchange answers: huge bodies, deeply nested JSON, wrong types in every field, negative
and absurd numbers, duplicate keys. Each is refused with a clear error and nothing from it is
stored; the daemon records the job error, keeps running, and collects again once the exchange
behaves.

A small aiohttp server in the test sits in front of the real simulator: it forwards every request,
and while ``hostile`` is set it answers the data endpoints with the hostile body instead.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from decimal import Decimal

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import text

from collector.errors import CollectorError, ExchangeUnavailable, ParseError
from collector.exchange import JexClient
from collector.exchange.endpoints import HISTORICAL_TRADES
from tests.helpers.loopback import serve
from tests.helpers.polling import count, until

TRADE = {"id": "7", "price": "12.5", "qty": "0.3", "quoteQty": "3.75", "time": 1_700_000_000_000, "isBuyerMaker": True}
KLINE = [1_700_000_000_000, "1", "2", "0.5", "1.5", "10", 1_700_000_059_999, "15", 3, "5", "7.5", "0"]


def _with(obj: dict, key: str, value) -> list[dict]:
    return [{**obj, key: value}]


def _kline_with(idx: int, value) -> list[list]:
    row = list(KLINE)
    row[idx] = value
    return [row]


WRONG_TYPES = [[], {}, True, None, "", "abc", 1.5e308]
# (name, endpoint path, body bytes)
CASES: list[tuple[str, str, bytes]] = []
for field in ("id", "price", "qty", "time"):
    for i, bad in enumerate(WRONG_TYPES):
        if field == "qty" and bad is None:
            continue  # a missing/None qty is still refused below via "abc" etc.; keep the table honest
        CASES.append(
            (f"trade-{field}-{i}", "/api/v1/option/historicalTrades", json.dumps(_with(TRADE, field, bad)).encode())
        )
CASES.append(
    (
        "trade-isBuyerMaker-str",
        "/api/v1/option/historicalTrades",
        json.dumps(_with(TRADE, "isBuyerMaker", "yes")).encode(),
    )
)
for idx in (0, 1, 2, 3, 4, 5, 6, 8):
    for i, bad in enumerate(([], {}, True, "abc")):
        CASES.append((f"kline-{idx}-{i}", "/api/v1/option/klines", json.dumps(_kline_with(idx, bad)).encode()))
ABSURD = [
    ("trade-negative-price", _with(TRADE, "price", "-1")),
    ("trade-negative-id", _with(TRADE, "id", -5)),
    ("trade-negative-time", _with(TRADE, "time", -1)),
    ("trade-time-year-3-million", _with(TRADE, "time", 10**20)),
    ("trade-price-1e999999", _with(TRADE, "price", "1e999999")),
    ("trade-price-nan", _with(TRADE, "price", "NaN")),
    ("trade-price-inf", _with(TRADE, "price", "Infinity")),
    ("trade-id-huge", _with(TRADE, "id", 10**30)),
    ("kline-negative-count", [[*KLINE[:8], -3, *KLINE[9:]]]),
    ("kline-negative-volume", _kline_with(5, "-10")),
    ("kline-open-time-absurd", _kline_with(0, 10**22)),
]
for name, payload in ABSURD:
    path = "/api/v1/option/klines" if name.startswith("kline") else "/api/v1/option/historicalTrades"
    CASES.append((name, path, json.dumps(payload).encode()))
CASES += [
    (
        "trade-duplicate-price",
        "/api/v1/option/historicalTrades",
        b'[{"id": "7", "price": "12.5", "price": "99", "qty": "0.3", "time": 1700000000000}]',
    ),
    (
        "trade-duplicate-id",
        "/api/v1/option/historicalTrades",
        b'[{"id": "7", "id": "8", "price": "12.5", "qty": "0.3", "time": 1700000000000}]',
    ),
    ("kline-body-object-dup", "/api/v1/option/klines", b'{"code": 0, "code": 1}'),
    ("nested-list", "/api/v1/option/historicalTrades", b"[" * 200_000 + b"]" * 200_000),
    ("nested-object", "/api/v1/option/klines", b'{"a":' * 100_000 + b"1" + b"}" * 100_000),
    ("not-a-list", "/api/v1/option/historicalTrades", b'"trades"'),
    ("truncated", "/api/v1/option/historicalTrades", json.dumps([TRADE] * 50).encode()[:-7]),
    ("binary", "/api/v1/option/klines", bytes(range(256)) * 10),
]


def fixed(body: bytes) -> Callable[[web.Request], web.Response]:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    return handler


async def call(client: JexClient, path: str):
    if path.endswith("klines"):
        return await client.klines("BTC-1-C", "1m")
    return await client.historical_trades("BTC-1-C", from_id=1)


@pytest.mark.parametrize(("name", "path", "body"), CASES, ids=[c[0] for c in CASES])
async def test_client_refuses_hostile_body_with_a_clear_error(name, path, body):
    async with serve(fixed(body)) as url, aiohttp.ClientSession() as session:
        client = JexClient(session, url, api_key="hostile1", max_retries=0)
        with pytest.raises(CollectorError) as info:
            await call(client, path)
    assert isinstance(info.value, ParseError | ExchangeUnavailable), info.value
    message = str(info.value)
    assert message.startswith(("historicalTrades", "klines")), message  # names the endpoint
    assert "\n" not in message and len(message) < 600, message  # one clear line, not a dump
    if "duplicate" in name:
        assert isinstance(info.value, ParseError) and "duplicate" in message


async def test_huge_body_is_refused_without_reading_it_all():
    """A body above the cap is refused as it streams in (never buffered whole), also without a
    Content-Length; a body under the cap is fine."""
    chunk = (json.dumps(TRADE) + ",").encode() * 1000  # ~100 kB

    async def streamed(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        try:
            await resp.write(b"[")
            for _ in range(int(request.query.get("chunks", "1000"))):  # up to ~100 MB
                await resp.write(chunk)
            await resp.write(json.dumps(TRADE).encode() + b"]")
        except (ConnectionResetError, aiohttp.ClientConnectionResetError):
            pass  # the client hung up, as it should
        return resp

    async with serve(streamed) as url, aiohttp.ClientSession() as session:
        client = JexClient(session, url, api_key="hostile1", max_retries=0, max_body_bytes=1_000_000)
        with pytest.raises(ParseError, match=r"historicalTrades: .*larger than 1000000 bytes"):
            await client.historical_trades("BTC-1-C", from_id=1)
        # 5 chunks (~0.5 MB) is under the cap: decoded normally.
        payload = await client.request(HISTORICAL_TRADES, {"symbol": "X", "chunks": 5})
        assert len(payload) == 5001

    async def with_length(request: web.Request) -> web.Response:
        return web.Response(body=b"[" + b"0," * 600_000 + b"0]", content_type="application/json")

    async with serve(with_length) as url, aiohttp.ClientSession() as session:
        client = JexClient(session, url, api_key="hostile1", max_retries=0, max_body_bytes=1_000_000)
        with pytest.raises(ParseError, match="larger than 1000000 bytes"):
            await client.klines("BTC-1-C", "1m")


def test_default_body_cap_is_configured_and_generous():
    from collector.config import load_settings
    from collector.exchange.session import make_client

    settings = load_settings(None, {})
    assert settings.http_max_body_bytes >= 16 * 1024 * 1024  # a full exchangeInfo is far below this
    client = make_client(None, load_settings(None, {"http_max_body_bytes": 12345}))  # type: ignore[arg-type]
    assert client.max_body_bytes == 12345


# --- the daemon ------------------------------------------------------------------------------------

HOSTILE_DAEMON = [
    ("huge", None),
    ("nested", b"[" * 200_000 + b"]" * 200_000),
    ("wrong-types", None),
    ("negative", None),
    ("duplicate-keys", None),
]
DATA_PATHS = (
    "/api/v1/option/historicalTrades",
    "/api/v1/option/klines",
    "/api/v1/option/depth",
    "/api/v1/option/ticker/24hr",
    "/api/v1/option/trades",
)


def hostile_body(kind: str, path: str) -> bytes:
    if kind == "huge":
        return b"[" + b"0," * 1_500_000 + b"0]"  # 3 MB against a 1 MB cap
    if kind == "nested":
        return b"[" * 200_000 + b"]" * 200_000
    if path.endswith("klines"):
        row = {
            "wrong-types": [{}, [], True, "x", None, "1", 2, "3", "4", "5", "6", "7"],
            "negative": _kline_with(5, "-10")[0],
            "duplicate-keys": None,
        }[kind]
        if row is None:
            return b'[{"0": 1, "0": 2}]'
        return json.dumps([row]).encode()
    if path.endswith("depth"):
        return {
            "wrong-types": b'{"lastUpdateId": "x", "bids": {}, "asks": 3}',
            "negative": b'{"lastUpdateId": 5, "bids": [["-1", "2"]], "asks": [["1", "-2"]]}',
            "duplicate-keys": b'{"lastUpdateId": 5, "bids": [], "bids": [["1", "1"]], "asks": []}',
        }[kind]
    if path.endswith("24hr"):
        return {
            "wrong-types": b'[{"symbol": 5, "lastPrice": [], "openTime": "x", "closeTime": {}}]',
            "negative": b'[{"symbol": "S", "lastPrice": "-1", "volume": "-3", "openTime": -1, "closeTime": -2}]',
            "duplicate-keys": b'[{"symbol": "S", "symbol": "T", "lastPrice": "1"}]',
        }[kind]
    return {
        "wrong-types": json.dumps([{k: [] for k in TRADE}]).encode(),
        "negative": json.dumps(_with(TRADE, "price", "-4")).encode(),
        "duplicate-keys": b'[{"id": "1", "id": "2", "price": "1", "qty": "1", "time": 1700000000000}]',
    }[kind]


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_daemon_refuses_hostile_answers_keeps_running_and_recovers(db_url, engine, caplog):
    from collector.config import load_settings
    from collector.simulator import SimConfig, Simulator
    from tests.helpers.daemons import running_daemon

    caplog.set_level(logging.WARNING)
    state = {"kind": None, "served": 0}
    async with (
        Simulator(
            SimConfig(
                seed=9,
                history_days=0.05,
                symbols=3,
                trades_per_minute=60,
                silent_share=0.0,
                listing_interval_s=3600,
                weight_limit=0,  # polls every second fit: no stretched plan between the phases
            ),
            port=0,
        ) as sim,
        aiohttp.ClientSession() as upstream,
    ):

        async def proxy(request: web.Request) -> web.Response:
            kind = state["kind"]
            if kind is not None and request.path in DATA_PATHS:
                state["served"] += 1
                return web.Response(body=hostile_body(kind, request.path), content_type="application/json")
            async with upstream.request(
                request.method,
                sim.base_url + request.path_qs,
                headers={k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")},
            ) as r:
                body = await r.read()
                headers = {
                    k: v
                    for k, v in r.headers.items()
                    if k.lower().startswith("x-") or k.lower() in ("retry-after", "content-type")
                }
                return web.Response(body=body, status=r.status, headers=headers)

        async with serve(proxy) as url:
            settings = load_settings(
                None,
                {
                    "exchange_url": url,
                    "api_key": "hostile1",
                    "database_url": db_url,
                    "metrics_port": 0,
                    "trades_poll_seconds": 1.0,
                    "klines_poll_seconds": 1.0,
                    "depth_poll_seconds": 1.0,
                    "tickers_poll_seconds": 1.0,
                    "symbols_refresh_seconds": 30.0,
                    "lookback_hours": 0.02,
                    "kline_intervals": ["1m"],
                    "max_retries": 1,
                    "http_max_body_bytes": 1_000_000,
                },
                defaults_file=None,
            )
            async with running_daemon(settings, stop_timeout=30) as daemon:  # stopped on leaving, even on a failure
                await until(lambda: count(engine, "SELECT count(*) FROM trades") > 0, 60, "first trades")
                for kind, _ in HOSTILE_DAEMON:
                    before = await asyncio.to_thread(data_counts, engine)
                    errors_before = await asyncio.to_thread(count, engine, "SELECT count(*) FROM job_errors")
                    state["kind"], state["served"] = kind, 0
                    # Every stream fails at least once, recorded in the database with its class.
                    await until(
                        lambda since=int(errors_before): (
                            count(engine, f"SELECT count(DISTINCT job) FROM job_errors WHERE id > {since}") >= 4
                        ),
                        60,
                        f"job errors for {kind}",
                    )
                    state["kind"] = None
                    assert not daemon.task.done(), daemon.task
                    # Nothing from a hostile answer was stored. Counts cannot show it: an honest answer
                    # served just before the switch may still be committed during the hostile phase.
                    # Every stored row is checked against the simulator's truth instead.
                    assert_only_truth(engine, sim)  # on the loop's thread, like the simulator
                    # And the next polls work again.
                    await until(
                        lambda b=before["depth_snapshots"]: count(engine, "SELECT count(*) FROM depth_snapshots") > b,
                        60,
                        f"depth again after {kind}",
                    )
                    with engine.connect() as conn:
                        classes = {
                            r[0]
                            for r in conn.execute(
                                text("SELECT DISTINCT error_class FROM job_errors WHERE id > :i"), {"i": errors_before}
                            )
                        }
                    assert classes <= {"ParseError", "ExchangeUnavailable"}, (kind, classes)
    text_log = caplog.text
    assert "larger than 1000000 bytes" in text_log
    assert "duplicate key" in text_log
    assert "body is not JSON" in text_log  # the nested one
    assert "Traceback" not in text_log
    with engine.connect() as conn:  # nothing absurd made it in
        assert conn.execute(text("SELECT count(*) FROM trades WHERE price < 0 OR qty < 0")).scalar() == 0
        assert conn.execute(text("SELECT count(*) FROM klines WHERE volume < 0")).scalar() == 0


def data_counts(engine) -> dict[str, int]:
    return {
        t: count(engine, f"SELECT count(*) FROM {t}")  # noqa: S608 - fixed table names
        for t in ("trades", "klines", "depth_snapshots", "tickers_24hr")
    }


def assert_only_truth(engine, sim) -> None:
    """Every stored row is the exchange's: hostile answers all differ from the simulator's truth.

    The daemon keeps writing meanwhile: the rows are read in one snapshot, and the truth is taken at
    the exchange's time after that snapshot, so it holds every trade and closed kline the rows can.
    """
    market = sim.market
    with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn, conn.begin():
        symbols = set(conn.execute(text("SELECT symbol FROM option_symbols")).scalars())
        trades = conn.execute(text("SELECT symbol, trade_id, price, qty, time FROM trades")).all()
        klines = conn.execute(
            text("SELECT symbol, open_time, open, high, low, close, volume, trade_count FROM klines WHERE is_closed")
        ).all()
        tickers = conn.execute(text("SELECT symbol, last_price FROM tickers_24hr")).all()
        hostile_depth = conn.execute(
            text(
                "SELECT (SELECT count(*) FROM depth_snapshots WHERE last_update_id = 5)"
                " + (SELECT count(*) FROM depth_levels WHERE price <= 0 OR qty <= 0)"
            )
        ).scalar()
    now = sim.now_ms() + 1
    assert {r.symbol for r in trades} | {r.symbol for r in klines} | {r.symbol for r in tickers} <= symbols
    for sym in symbols:
        truth = {x["id"]: (Decimal(x["price"]), Decimal(x["qty"]), x["time"]) for x in market.trades(sym, 0, now)}
        stored = {r.trade_id: (r.price, r.qty, int(r.time.timestamp() * 1000)) for r in trades if r.symbol == sym}
        assert stored.items() <= truth.items(), (sym, set(stored.items()) - set(truth.items()))
    for r in klines:
        open_ms = int(r.open_time.timestamp() * 1000)
        [k] = market.klines(r.symbol, "1m", open_ms, open_ms + 1, now)
        assert tuple(r[2:]) == (Decimal(k[1]), Decimal(k[2]), Decimal(k[3]), Decimal(k[4]), Decimal(k[5]), int(k[8])), (
            r.symbol,
            open_ms,
        )
    assert all(r.last_price is None or r.last_price >= 0 for r in tickers)
    assert hostile_depth == 0
