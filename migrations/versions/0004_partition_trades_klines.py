"""partition trades and klines by month

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 14:00:00+00:00

``klines`` becomes partitioned BY RANGE (open_time) and ``trades`` BY RANGE (time), one partition
per UTC month plus a DEFAULT one (layout and upkeep: collector/store/partitions.py). Table names,
columns, types and the (symbol, time) index on trades stay; trades' primary key becomes
(symbol, trade_id, time), because PostgreSQL needs the partition key in every unique constraint
(the trade-off is in docs/operations.md).

The data is copied: each old table is renamed aside, the partitioned one created with partitions
for every month its rows cover (and the current month and the next two), the rows copied with
INSERT ... SELECT and the old table dropped. That rewrites both tables (twice their size on disk for
a while) under an exclusive lock: run it with the daemon stopped, as every upgrade. The
``trades_enriched`` view reads ``trades``, so it is dropped and re-created around the swap (the
``option_chain_at`` function resolves ``klines`` by name at run time and needs nothing).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from collector.store.partitions import create_month, ensure_partitions, month_start

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As created by 0002 (a migration's SQL is frozen: copied, not imported).
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

KLINE_COLUMNS = (
    "symbol",
    "interval",
    "open_time",
    "close_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "quote_volume",
    "trade_count",
    "taker_buy_base_volume",
    "taker_buy_quote_volume",
    "is_closed",
    "updated_at",
)
TRADE_COLUMNS = ("symbol", "trade_id", "price", "qty", "time", "buyer_maker")


def _klines(name: str, **kw) -> None:
    op.create_table(
        name,
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("interval", sa.Text(), nullable=False),
        sa.Column("open_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("close_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("open", sa.Numeric(), nullable=False),
        sa.Column("high", sa.Numeric(), nullable=False),
        sa.Column("low", sa.Numeric(), nullable=False),
        sa.Column("close", sa.Numeric(), nullable=False),
        sa.Column("volume", sa.Numeric(), nullable=False),
        sa.Column("quote_volume", sa.Numeric(), nullable=False),
        sa.Column("trade_count", sa.BigInteger(), nullable=False),
        sa.Column("taker_buy_base_volume", sa.Numeric(), nullable=False),
        sa.Column("taker_buy_quote_volume", sa.Numeric(), nullable=False),
        sa.Column("is_closed", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("symbol", "interval", "open_time", name="pk_klines"),
        **kw,
    )


def _trades(name: str, key: tuple[str, ...], **kw) -> None:
    op.create_table(
        name,
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("trade_id", sa.BigInteger(), nullable=False),
        sa.Column("price", sa.Numeric(), nullable=False),
        sa.Column("qty", sa.Numeric(), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("buyer_maker", sa.Boolean(), nullable=True),
        sa.PrimaryKeyConstraint(*key, name="pk_trades"),
        **kw,
    )
    op.create_index("ix_trades_symbol_time", name, ["symbol", "time"], unique=False)


def _set_aside(table: str, suffix: str) -> None:
    """Rename a table and its key/index out of the way (index names are schema-wide)."""
    op.execute(f"ALTER TABLE {table} RENAME TO {table}_{suffix}")
    op.execute(f"ALTER TABLE {table}_{suffix} RENAME CONSTRAINT pk_{table} TO pk_{table}_{suffix}")
    if table == "trades":
        op.execute(f"ALTER INDEX ix_trades_symbol_time RENAME TO ix_trades_symbol_time_{suffix}")


def _copy(table: str, source: str, columns: Sequence[str]) -> None:
    cols = ", ".join(f'"{c}"' for c in columns)
    op.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {source}")


def upgrade() -> None:
    conn = op.get_bind()
    op.execute("DROP VIEW IF EXISTS trades_enriched")
    _set_aside("klines", "old")
    _set_aside("trades", "old")
    _klines("klines", postgresql_partition_by="RANGE (open_time)")
    _trades("trades", ("symbol", "trade_id", "time"), postgresql_partition_by="RANGE (time)")
    # Partitions for the months the existing rows cover, so they are copied straight into them.
    for table, column in (("klines", "open_time"), ("trades", "time")):
        months = conn.execute(
            sa.text(f"SELECT DISTINCT date_trunc('month', {column}, 'UTC') AT TIME ZONE 'UTC' FROM {table}_old")
        ).scalars()
        for month in sorted(month_start(m) for m in months):
            create_month(conn, table, month)
    ensure_partitions(conn)  # DEFAULT, this month and the next ones
    _copy("klines", "klines_old", KLINE_COLUMNS)
    _copy("trades", "trades_old", TRADE_COLUMNS)
    op.execute("DROP TABLE klines_old")
    op.execute("DROP TABLE trades_old")
    op.execute(TRADES_ENRICHED)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS trades_enriched")
    _set_aside("klines", "part")
    _set_aside("trades", "part")
    _klines("klines")
    # Fails on a unique violation if one (symbol, trade_id) was stored with two times.
    _trades("trades", ("symbol", "trade_id"))
    _copy("klines", "klines_part", KLINE_COLUMNS)
    _copy("trades", "trades_part", TRADE_COLUMNS)
    op.execute("DROP TABLE klines_part")  # its partitions go with it
    op.execute("DROP TABLE trades_part")
    op.execute(TRADES_ENRICHED)
