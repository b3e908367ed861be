"""analyst views: top_of_book, option_chain (and option_chain_at), trades_enriched

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 13:00:00+00:00

Views are not in the SQLAlchemy metadata, so autogenerate neither creates nor drops them; they live
here only. Each one reads through the tables' keys (latest-row lookups are ``ORDER BY captured_at
DESC LIMIT 1`` on the (symbol, captured_at) keys), so they stay cheap on big tables when filtered.
Documented, with example queries, in docs/sql.md.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Level 0 is the best level of each side (the store numbers levels as the exchange sends them).
TOP_OF_BOOK = """
CREATE VIEW top_of_book AS
SELECT s.id AS snapshot_id,
       s.symbol,
       s.captured_at,
       s.last_update_id,
       b.price AS bid_price,
       b.qty AS bid_qty,
       a.price AS ask_price,
       a.qty AS ask_qty,
       a.price - b.price AS spread,
       (a.price + b.price) / 2 AS mid_price
FROM depth_snapshots s
LEFT JOIN depth_levels b ON b.snapshot_id = s.id AND b.side = 'bid' AND b.level = 0
LEFT JOIN depth_levels a ON a.snapshot_id = s.id AND a.side = 'ask' AND a.level = 0
"""

# An option is in the chain at `as_of` when it has not expired or been delisted by then and the
# collector knew of it: seen by then, or holding a ticker or a 1m kline from before then (history
# backfilled after the fact).
OPTION_CHAIN_AT = """
CREATE FUNCTION option_chain_at(as_of timestamptz)
RETURNS TABLE (
    symbol text, option_type text, strike_price numeric, expiry_time timestamptz,
    time_to_expiry interval, days_to_expiry numeric, status text,
    ticker_at timestamptz, last_price numeric, bid_price numeric, ask_price numeric,
    volume_24h numeric, quote_volume_24h numeric, underlying_price numeric,
    depth_at timestamptz, best_bid numeric, best_bid_qty numeric, best_ask numeric,
    best_ask_qty numeric, spread numeric, mid_price numeric
)
LANGUAGE sql STABLE AS $$
SELECT s.symbol,
       s.option_type,
       coalesce(s.strike_price, t.strike_price),
       coalesce(s.expiry_time, t.expiry_time),
       coalesce(s.expiry_time, t.expiry_time) - as_of,
       extract(epoch FROM coalesce(s.expiry_time, t.expiry_time) - as_of) / 86400,
       s.status,
       t.captured_at, t.last_price, t.bid_price, t.ask_price, t.volume, t.quote_volume,
       t.underlying_price,
       d.captured_at, d.bid_price, d.bid_qty, d.ask_price, d.ask_qty, d.spread, d.mid_price
FROM option_symbols s
LEFT JOIN LATERAL (
    SELECT x.* FROM tickers_24hr x
    WHERE x.symbol = s.symbol AND x.captured_at <= as_of
    ORDER BY x.captured_at DESC LIMIT 1
) t ON true
LEFT JOIN LATERAL (
    SELECT y.* FROM top_of_book y
    WHERE y.symbol = s.symbol AND y.captured_at <= as_of
    ORDER BY y.captured_at DESC LIMIT 1
) d ON true
WHERE (s.expiry_time IS NULL OR s.expiry_time > as_of)
  AND (s.delisted_at IS NULL OR s.delisted_at > as_of)
  AND (s.first_seen <= as_of
       OR t.captured_at IS NOT NULL
       OR EXISTS (SELECT 1 FROM klines k
                  WHERE k.symbol = s.symbol AND k.interval = '1m' AND k.open_time <= as_of))
$$
"""

OPTION_CHAIN = "CREATE VIEW option_chain AS SELECT * FROM option_chain_at(now())"

# The underlying price at a trade is that of the latest 24hr ticker captured at or before it.
TRADES_ENRICHED = """
CREATE VIEW trades_enriched AS
SELECT t.symbol,
       t.trade_id,
       t.time,
       t.price,
       t.qty,
       t.price * t.qty AS notional,
       t.buyer_maker,
       CASE WHEN t.buyer_maker THEN 'sell' WHEN NOT t.buyer_maker THEN 'buy' END AS taker_side,
       s.option_type,
       s.strike_price,
       s.expiry_time,
       s.expiry_time - t.time AS time_to_expiry,
       u.underlying_price,
       u.captured_at AS underlying_at
FROM trades t
LEFT JOIN option_symbols s ON s.symbol = t.symbol
LEFT JOIN LATERAL (
    SELECT x.underlying_price, x.captured_at FROM tickers_24hr x
    WHERE x.symbol = t.symbol AND x.captured_at <= t.time
    ORDER BY x.captured_at DESC LIMIT 1
) u ON true
"""


def upgrade() -> None:
    op.execute(TOP_OF_BOOK)
    op.execute(OPTION_CHAIN_AT)
    op.execute(OPTION_CHAIN)
    op.execute(TRADES_ENRICHED)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS trades_enriched")
    op.execute("DROP VIEW IF EXISTS option_chain")
    op.execute("DROP FUNCTION IF EXISTS option_chain_at(timestamptz)")
    op.execute("DROP VIEW IF EXISTS top_of_book")
