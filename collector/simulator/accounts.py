"""The simulated exchange's accounts: balances, LIMIT orders, shorts and calls, positions, records.

One account per API key (keys and secrets in ``SimConfig.accounts``; the demo pair below when none
is configured). Everything is ground truth for tests: ``Accounts.get(key)`` is the account itself.

- **Orders** rest in the book and fill against the market's own trades after they were placed: a
  BUY at price P fills from every trade at or below P, a SELL from every trade at or above it, each
  trade filling at most its own quantity (at the order's price) of what is left. Status goes NEW ->
  PARTIALLY_FILLED -> FILLED, or CANCELED (by the account, or when the option expires). Fills are
  computed lazily, whenever the account is looked at, up to that moment: the same history whenever
  it is asked for. Several orders may fill from one trade (the market does not see our orders).
- **Balances**: a BUY locks price x qty of USDT (optionBalances' quote), a SELL locks the options;
  fills move them. ``release`` (a short) takes ``amount x convertRatio x rateMargin`` of the
  underlying and ``amount x rateBase`` of JEX from the spot balances and credits ``amount`` of the
  option; ``back`` (a call) returns them, as the seed's examples show.
- **Records**: every short (status 1) and call (status 2), ids growing across the exchange.
- **The demo account** gets a deterministic history over the market's history span: an order
  every 20 minutes or so on a trading symbol, of up to a few trades' quantity (so some fill in
  parts), near its price or (one in five) resting away from it; some cancelled within half an
  hour, the rest after two hours if still open (those of the last two hours are open at the
  start); now and then a short on a symbol that may be shorted, and a call of part of it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from decimal import Decimal

from collector.simulator.market import MINUTE, Market, Option
from collector.simulator.wire import TICKS, fmt_ticks

DEMO_KEY = "jexdemokey0000000000000001"
DEMO_SECRET = "jexdemosecret00000000000000000000000000000001"
QUOTE = "USDT"
BASE = "JEX"
CONVERT_RATIO = Decimal("0.1")
RATE_MARGIN = Decimal("0.1")
RATE_BASE = Decimal("1")
OPEN = ("NEW", "PARTIALLY_FILLED")
START_BALANCES = {
    ("spot", "USDT"): Decimal(500_000),
    ("spot", "BTC"): Decimal(100),
    ("spot", "ETH"): Decimal(2_000),
    ("spot", "EOS"): Decimal(50_000),
    ("spot", "LTC"): Decimal(5_000),
    ("spot", "BNB"): Decimal(10_000),
    ("spot", "JEX"): Decimal(5_000_000),
    ("contract", "usdt"): Decimal(10_000),
    ("option", QUOTE): Decimal(200_000),
}


class AccountError(Exception):
    """Refused: (HTTP status, code, message), answered as the exchange would."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg


def insufficient() -> AccountError:
    return AccountError(400, -2010, "Account has insufficient balance for requested action.")


@dataclass
class Order:
    order_id: int
    symbol: str
    side: str  # BUY | SELL
    price: int  # ticks
    qty: int
    time: int  # ms placed
    executed: int = 0
    quote: int = 0  # ticks x qty filled
    status: str = "NEW"
    update_time: int = 0
    scanned: int = 0  # ms: the market's trades before this have been matched

    def json(self, id_as_text: bool = True) -> dict:
        return {
            "symbol": self.symbol,
            "orderId": str(self.order_id) if id_as_text else self.order_id,
            "price": fmt_ticks(self.price),
            "origQty": str(self.qty),
            "executedQty": str(self.executed),
            "cummulativeQuoteQty": fmt_ticks(self.quote),
            "status": self.status,
            "timeInForce": "GTC",
            "type": "LIMIT",
            "side": self.side,
            "time": self.time,
            "updateTime": self.update_time,
            "working": self.status in OPEN,
        }


@dataclass
class Record:
    record_id: int
    symbol: str
    status: int  # 1: a short (release), 2: a call (back)
    amount: int
    created: int  # ms
    asset_margin: str

    def json(self) -> dict:
        return {
            "createdDate": self.created,
            "name": self.symbol,
            "status": self.status,
            "amount": str(self.amount),
            "convertRatio": f"{CONVERT_RATIO:.8f}",
            "rateMargin": f"{RATE_MARGIN:.2f}",
            "baseAmount": f"{self.amount * RATE_BASE:.3f}",
            "marginAmount": f"{self.amount * CONVERT_RATIO * RATE_MARGIN:.4f}",
            "assetMargin": self.asset_margin,
            "assetBase": BASE,
            "id": self.record_id,
        }


@dataclass
class Account:
    key: str
    secret: str
    balances: dict[tuple[str, str], list[Decimal]] = field(default_factory=dict)  # (section, asset) -> [free, locked]
    orders: dict[int, Order] = field(default_factory=dict)
    records: list[Record] = field(default_factory=list)
    released: dict[str, list[int]] = field(default_factory=dict)  # symbol -> [released, backed]
    bought: dict[str, list[int]] = field(default_factory=dict)  # symbol -> [qty bought, ticks paid]: the cost
    updated: int = 0  # ms of the last change
    placed: list[int] = field(default_factory=list)  # ms of recent placements (the `orders` limits)
    placed_today: dict[int, int] = field(default_factory=dict)  # day -> placements

    def balance(self, section: str, asset: str) -> list[Decimal]:
        return self.balances.setdefault((section, asset), [Decimal(0), Decimal(0)])


class Accounts:
    """Every account of the exchange, advanced to ``now`` whenever one is looked at."""

    ORDERS_PER_SECOND = 10
    ORDERS_PER_DAY = 100_000

    def __init__(self, market: Market, keys: dict[str, str] | None, seed: int) -> None:
        self.market = market
        self.seed = seed
        pairs = dict(keys) if keys else {DEMO_KEY: DEMO_SECRET}
        self._accounts = {k: self._new(k, s) for k, s in pairs.items()}
        self._next_order = 1_000_000 + seed * 7919 % 100_000
        self._next_record = 20_000 + seed * 104729 % 1_000
        self._demo_done = DEMO_KEY not in pairs

    @staticmethod
    def _new(key: str, secret: str) -> Account:
        account = Account(key, secret)
        for where, amount in START_BALANCES.items():
            account.balances[where] = [amount, Decimal(0)]
        return account

    def secret(self, key: str) -> str | None:
        account = self._accounts.get(key)
        return None if account is None else account.secret

    def get(self, key: str, now: int) -> Account:
        """The account, with every fill and expiry up to ``now`` applied (ground truth for tests)."""
        if not self._demo_done:
            self._demo_done = True
            self._demo_history(self._accounts[DEMO_KEY], now)
        account = self._accounts[key]
        self._advance(account, now)
        return account

    # ---- orders --------------------------------------------------------------------------
    def place(self, account: Account, opt: Option, side: str, qty: int, price: int, now: int) -> Order:
        self._advance(account, now)
        self._count_order(account, now)
        if side == "BUY":
            need = Decimal(price * qty) / TICKS
            quote = account.balance("option", QUOTE)
            if quote[0] < need:
                raise insufficient()
            quote[0] -= need
            quote[1] += need
        else:
            held = account.balance("option", opt.name)
            if held[0] < qty:
                raise insufficient()
            held[0] -= qty
            held[1] += qty
        order = Order(self._next_order, opt.name, side, price, qty, now, update_time=now, scanned=now)
        self._next_order += 1 + (self._next_order * 31 % 7)  # ids grow, not one by one: shared exchange
        account.orders[order.order_id] = order
        account.updated = now
        return order

    def _count_order(self, account: Account, now: int) -> None:
        account.placed = [t for t in account.placed if t > now - 1000]
        day = now // 86_400_000
        if len(account.placed) >= self.ORDERS_PER_SECOND or account.placed_today.get(day, 0) >= self.ORDERS_PER_DAY:
            raise AccountError(
                429, -1015, f"Too many new orders; current limit is {self.ORDERS_PER_SECOND} orders per SECOND."
            )
        account.placed.append(now)
        account.placed_today = {day: account.placed_today.get(day, 0) + 1}

    def cancel(self, account: Account, order: Order, now: int) -> Order:
        self._advance(account, now)
        if order.status not in OPEN:
            raise AccountError(400, -2011, "Unknown order sent.")
        self._close(account, order, "CANCELED", now)
        return order

    def _close(self, account: Account, order: Order, status: str, at: int) -> None:
        """Unlock what the order still held."""
        left = order.qty - order.executed
        if order.side == "BUY":
            quote = account.balance("option", QUOTE)
            amount = Decimal(order.price * left) / TICKS
            quote[1] -= amount
            quote[0] += amount
        else:
            held = account.balance("option", order.symbol)
            held[1] -= left
            held[0] += left
        order.status = status
        order.update_time = at
        account.updated = max(account.updated, at)

    def _advance(self, account: Account, now: int) -> None:
        """Match open orders against the market's trades up to ``now``; cancel those expired."""
        for order in account.orders.values():
            if order.status not in OPEN or order.scanned > now:
                continue
            opt = self.market.option(order.symbol)
            end = min(now + 1, opt.expiry)
            for _, p, q, t, _ in self.market._trades_range(opt, order.scanned, end):
                if (order.side == "BUY" and p <= order.price) or (order.side == "SELL" and p >= order.price):
                    self._fill(account, order, min(q, order.qty - order.executed), t)
                    if order.status == "FILLED":
                        break
            order.scanned = end
            if order.status in OPEN and now >= opt.expiry:
                self._close(account, order, "CANCELED", opt.expiry)

    def _fill(self, account: Account, order: Order, qty: int, at: int) -> None:
        cost = Decimal(order.price * qty) / TICKS
        held = account.balance("option", order.symbol)
        quote = account.balance("option", QUOTE)
        if order.side == "BUY":
            quote[1] -= cost
            held[0] += qty
            bought = account.bought.setdefault(order.symbol, [0, 0])
            bought[0] += qty
            bought[1] += order.price * qty
        else:
            held[1] -= qty
            quote[0] += cost
        order.executed += qty
        order.quote += order.price * qty
        order.status = "FILLED" if order.executed >= order.qty else "PARTIALLY_FILLED"
        order.update_time = at
        account.updated = max(account.updated, at)

    # ---- shorts and calls ----------------------------------------------------------------
    def release(self, account: Account, opt: Option, amount: int, now: int) -> dict:
        self._advance(account, now)
        margin, base = self._margin_base(amount)
        spot_margin, spot_base = account.balance("spot", opt.underlying), account.balance("spot", BASE)
        if spot_margin[0] < margin or spot_base[0] < base:
            raise insufficient()
        spot_margin[0] -= margin
        spot_base[0] -= base
        account.balance("option", opt.name)[0] += amount
        account.released.setdefault(opt.name, [0, 0])[0] += amount
        return self._short_call(account, opt, 1, amount, now)

    def back(self, account: Account, opt: Option, amount: int, now: int) -> dict:
        self._advance(account, now)
        released, backed = account.released.get(opt.name, [0, 0])
        held = account.balance("option", opt.name)
        if amount > released - backed or held[0] < amount:
            raise insufficient()
        margin, base = self._margin_base(amount)
        held[0] -= amount
        account.balance("spot", opt.underlying)[0] += margin
        account.balance("spot", BASE)[0] += base
        account.released[opt.name][1] += amount
        return self._short_call(account, opt, 2, amount, now)

    @staticmethod
    def _margin_base(amount: int) -> tuple[Decimal, Decimal]:
        return amount * CONVERT_RATIO * RATE_MARGIN, amount * RATE_BASE

    def _short_call(self, account: Account, opt: Option, status: int, amount: int, now: int) -> dict:
        account.records.append(Record(self._next_record, opt.name, status, amount, now, opt.underlying))
        self._next_record += 1 + (self._next_record * 17 % 5)
        account.updated = now
        return {**self.info(account, opt), "createdDate": now}

    def info(self, account: Account, opt: Option) -> dict:
        released, backed = account.released.get(opt.name, [0, 0])
        out = released - backed
        margin, base = self._margin_base(out)
        return {
            "assetMargin": opt.underlying,
            "assetBase": BASE,
            "assetOption": opt.name,
            "releaseAmount": str(released),
            "backAmount": str(backed),
            "marginAmount": f"{margin:.4f}",
            "baseAmount": f"{base:.3f}",
            "availableMargin": f"{account.balance('spot', opt.underlying)[0]:.4f}",
            "availableBase": f"{account.balance('spot', BASE)[0]:.3f}",
            "availableOption": str(account.balance("option", opt.name)[0]),
        }

    # ---- what the account holds ------------------------------------------------------------
    def positions(self, account: Account, now: int, symbol: str | None = None) -> list[dict]:
        out = []
        for (section, asset), (free, locked) in sorted(account.balances.items()):
            if section != "option" or asset == QUOTE or free + locked == 0 or (symbol and asset != symbol):
                continue
            opt = self.market.option(asset)
            amount = free + locked
            qty, paid = account.bought.get(asset, [0, 0])
            cost = Decimal(paid) / TICKS / qty if qty else Decimal(0)
            last = Decimal(self.market.last_price_ticks(opt, min(now, opt.expiry) + 1)) / TICKS
            profit = (last - cost) * amount
            rate = profit / (cost * amount) if cost else Decimal(0)
            out.append(
                {
                    "name": asset,
                    "amount": str(amount),
                    "availAmount": str(free),
                    "profit": f"{profit:.8f}",
                    "profitRate": f"{rate:.8f}",
                    "cost": f"{cost:.4f}",
                    "type": "CALL" if opt.is_call else "PUT",
                    "execTime": opt.expiry,
                    "execrPrice": fmt_ticks(opt.strike),
                    "orderIndex": 0,
                }
            )
        return out

    def account_json(self, account: Account) -> dict:
        sections: dict[str, list] = {"contract": [], "option": [], "spot": []}
        for (section, asset), (free, locked) in sorted(account.balances.items()):
            sections[section].append(
                {
                    "asset": asset,
                    "canDeposit": section == "spot",
                    "canTrade": True,
                    "canWithdraw": False,
                    "free": _num(free),
                    "locked": _num(locked),
                }
            )
        return {
            "updateTime": account.updated,
            "contractBalances": sections["contract"],
            "optionBalances": sections["option"],
            "spotBalances": sections["spot"],
        }

    # ---- the demo account's past -----------------------------------------------------------
    def _demo_history(self, account: Account, now: int) -> None:
        m = self.market
        rng = random.Random(self.seed * 1_000_003 + 77)
        t = m.history_start + 5 * MINUTE
        pending_cancel: list[tuple[int, Order]] = []
        while t < now - MINUTE:
            for when, due in sorted((p for p in pending_cancel if p[0] <= t), key=lambda p: (p[0], p[1].order_id)):
                pending_cancel.remove((when, due))
                self._advance(account, when)
                if due.status in OPEN:
                    self._close(account, due, "CANCELED", when)
            trading = [o for o in m.listed(t) if o.listing <= t < o.expiry - 30 * MINUTE and not o.silent]
            if trading:
                opt = trading[rng.randrange(len(trading))]
                self._advance(account, t)
                last = m.last_price_ticks(opt, t)
                held = account.balance("option", opt.name)[0]
                side = "SELL" if held >= 2 and rng.random() < 0.4 else "BUY"
                # up to a few trades' worth (so some fill in parts); one in five rests away from the market
                qty = 1 + rng.randrange(int(held) if side == "SELL" else 30)
                step = max(1, last // 200)
                away = rng.randrange(10, 20) if rng.random() < 0.2 else rng.randrange(0, 4)
                price = max(1, last + (-1 if side == "BUY" else 1) * step * away)
                order: Order | None
                try:
                    order = self.place(account, opt, side, qty, price, t)
                except AccountError:
                    order = None
                if order is not None:  # some are cancelled soon; none stays open more than 2 hours
                    later = rng.randrange(3, 30) if rng.random() < 0.3 else 120
                    pending_cancel.append((t + later * MINUTE, order))
                shortable = [o for o in trading if o.k % 3 == 0]  # optionInfo canRelease
                if shortable and (not account.records or rng.random() < 0.15):  # the first always
                    opt = shortable[rng.randrange(len(shortable))]
                    try:
                        self.release(account, opt, 10 * (1 + rng.randrange(5)), t)
                        if len(account.records) == 1 or rng.random() < 0.5:
                            self.back(account, opt, 5, t + MINUTE)
                    except AccountError:
                        pass
            t += rng.randrange(10, 30) * MINUTE
        account.placed.clear()
        account.placed_today.clear()


def _num(value: Decimal) -> str:
    return format(value.normalize(), "f") if value == value.to_integral() else format(value, "f")
