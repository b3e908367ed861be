"""The account's truth (the simulator's own account) against the account tables, and a trader that
gives an account a history worth collecting: orders filled, partly filled and cancelled, a short and
a call.

The comparison is on full value tuples (exact decimals, times in ms), so "equal" means row for row.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from decimal import Decimal

import aiohttp
from sqlalchemy import text

from collector.exchange import JexClient, WeightGovernor
from collector.simulator import Simulator
from collector.simulator.accounts import OPEN
from collector.simulator.wire import TICKS
from tests.helpers.truth import ms

KEY, SECRET = "accounttest1", "accounttestsecret1"


def _d(ticks: int) -> Decimal:
    return Decimal(ticks) / TICKS


def account_truth(sim: Simulator, key: str = KEY) -> dict[str, dict]:
    """What the exchange holds for the account now: orders, records, balances, positions."""
    now = sim.now_ms()
    account = sim.accounts.get(key, now)
    return {
        "orders": {
            (o.symbol, o.order_id): (
                _d(o.price),
                Decimal(o.qty),
                Decimal(o.executed),
                _d(o.quote),
                o.status,
                o.side,
                o.time,
                o.update_time,
            )
            for o in account.orders.values()
        },
        "records": {
            r.record_id: (r.symbol, str(r.status), Decimal(r.amount), r.created, r.asset_margin)
            for r in account.records
        },
        "balances": {(section, asset): (free, locked) for (section, asset), (free, locked) in account.balances.items()},
        "positions": {
            p["name"]: (Decimal(p["amount"]), Decimal(p["availAmount"]), Decimal(p["cost"]))
            for p in sim.accounts.positions(account, now)
        },
    }


def stored_account(engine) -> dict[str, dict]:
    """The same, from the account tables (snapshots: the latest row of each key, a closed one left out)."""
    with engine.connect() as conn:
        orders = conn.execute(
            text(
                "SELECT symbol, order_id, price, orig_qty, executed_qty, cummulative_quote_qty, status, side, time, "
                "update_time FROM account_orders"
            )
        ).all()
        records = conn.execute(
            text("SELECT record_id, symbol, status, amount, created_at, asset_margin FROM account_option_records")
        ).all()
        balances = conn.execute(
            text(
                "SELECT DISTINCT ON (section, asset) section, asset, free, locked FROM account_balances "
                "ORDER BY section, asset, captured_at DESC"
            )
        ).all()
        positions = conn.execute(
            text(
                "SELECT DISTINCT ON (symbol) symbol, amount, avail_amount, cost FROM account_positions "
                "ORDER BY symbol, captured_at DESC"
            )
        ).all()
    return {
        "orders": {
            (r.symbol, r.order_id): (
                r.price,
                r.orig_qty,
                r.executed_qty,
                r.cummulative_quote_qty,
                r.status,
                r.side,
                ms(r.time) if r.time else None,  # unknown until REST says (an order first seen on the stream)
                ms(r.update_time) if r.update_time else None,
            )
            for r in orders
        },
        "records": {r.record_id: (r.symbol, r.status, r.amount, ms(r.created_at), r.asset_margin) for r in records},
        "balances": {(r.section, r.asset): (r.free, r.locked) for r in balances},
        "positions": {r.symbol: (r.amount, r.avail_amount, r.cost) for r in positions if r.amount != 0},
    }


def differences(truth: dict[str, dict], stored: dict[str, dict]) -> dict[str, dict]:
    """Per table: keys missing, extra, or with other values (empty when equal row for row)."""
    out = {}
    for table, want in truth.items():
        got = stored[table]
        diff = {
            "missing": sorted(set(want) - set(got), key=str)[:5],
            "extra": sorted(set(got) - set(want), key=str)[:5],
            "differ": [(k, want[k], got[k]) for k in sorted(set(want) & set(got), key=str) if want[k] != got[k]][:5],
        }
        if any(diff.values()):
            out[table] = diff
    return out


@dataclass
class Trader:
    """The account holder's own tool: places, cancels, shorts and calls through our client."""

    sim: Simulator
    client: JexClient
    placed: list[int] = field(default_factory=list)

    def trading(self) -> str:
        """The newest symbol trading (the one furthest from its expiry)."""
        now = self.sim.now_ms()
        return [o["symbol"] for o in self.sim.market.option_info(now) if o["status"] == "TRADING"][-1]

    def shortable(self) -> str:
        now = self.sim.now_ms()
        return next(
            o["symbol"] for o in self.sim.market.option_info(now) if o["status"] == "TRADING" and o["canRelease"]
        )

    def last(self, symbol: str) -> Decimal:
        opt = self.sim.market.option(symbol)
        return _d(self.sim.market.last_price_ticks(opt, self.sim.now_ms()))

    def coming_qty(self, symbol: str, n: int) -> Decimal:
        """The quantity of the symbol's next ``n`` trades (an order of it fills in ``n`` parts)."""
        now = self.sim.now_ms()
        coming = self.sim.market.trades(symbol, now + 1, now + 3_600_000)[:n]
        return sum((Decimal(t["qty"]) for t in coming), Decimal(0))

    async def until_status(self, symbol: str, order_id: int, done, timeout: float = 60.0) -> None:
        """Until the order's status satisfies ``done`` (asking the exchange, as the holder would)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            order = await self.client.get_order(symbol, order_id)
            if done(order):
                return
            assert loop.time() < deadline, f"order {order_id} still {order.status} after {timeout:g}s"
            await asyncio.sleep(0.2)

    async def history(self) -> None:
        """A fully filled order (in parts), one partly filled then cancelled, one cancelled untouched,
        a sell of part of what was bought; a short and a call."""
        sym = self.trading()
        last = self.last(sym)
        high = (last * 3).quantize(Decimal("0.0001"))  # every trade of the next minutes is below it
        filled = await self.client.place_order(sym, "BUY", self.coming_qty(sym, 3), high)
        untouched = await self.client.place_order(sym, "BUY", Decimal(1), Decimal("0.0001"))
        # at the last price, about half the trades fill it: far more than the next minutes' worth
        partly = await self.client.place_order(sym, "BUY", Decimal(60_000) // last, last)
        self.placed += [filled.order_id, untouched.order_id, partly.order_id]
        await self.until_status(sym, filled.order_id, lambda o: o.status == "FILLED")
        await self.until_status(sym, partly.order_id, lambda o: o.executed_qty > 0)
        await self.client.cancel_order(sym, partly.order_id)
        await self.client.cancel_order(sym, untouched.order_id)
        sell = await self.client.place_order(sym, "SELL", Decimal(2), Decimal("0.0001"))
        self.placed.append(sell.order_id)
        await self.until_status(sym, sell.order_id, lambda o: o.status == "FILLED")
        short = self.shortable()
        await self.client.release(short, 30)
        await self.client.back(short, 12)

    async def all_final(self) -> None:
        """Cancel whatever is still open: from here on the account does not change by itself."""
        account = self.sim.accounts.get(self.client.api_key, self.sim.now_ms())
        for order in list(account.orders.values()):
            if order.status in OPEN:
                await self.client.cancel_order(order.symbol, order.order_id)


def trader_client(session: aiohttp.ClientSession, sim: Simulator) -> JexClient:
    return JexClient(session, sim.base_url, api_key=KEY, api_secret=SECRET, governor=WeightGovernor())
