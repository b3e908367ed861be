"""indexes for analysts: time windows across every symbol

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 04:00:00+00:00

The keys lead with the symbol ((symbol, interval, open_time), (symbol, trade_id, time),
(symbol, captured_at)), so a query over a time window of every symbol, which most of docs/sql.md's
examples are ("the last 24 hours", "the latest snapshot"), found no index and read the whole
month's partition (9M klines, 4M trades at 200 symbols) or every depth snapshot. On a year of 200
symbols (docs/benchmarks.md, "Analyst queries on a year of data") OHLCV resampled from 1m klines
took 1.1 s and the put/call notional from trades 1.07 s, over the 1 s goal; the latest snapshot
read all 3.7M snapshots there, and a year of the daemon's (one a minute per symbol) is 28 times as
many.

- ``ix_klines_interval_open_time`` on klines (interval, open_time): every partition;
- ``ix_trades_time`` on trades (time): every partition;
- ``ix_depth_snapshots_captured_at`` on depth_snapshots (captured_at).

B-trees rather than BRIN: a backfill writes symbol after symbol, so a month's rows are not in time
order on disk and block ranges would not narrow a window. New monthly partitions get them from the
parent (``collector.store.partitions``). Building them reads every partition (about 45 s per 100M
klines) and blocks writes to the table being indexed meanwhile: run it with the daemon stopped, as
every upgrade.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = (
    ("ix_klines_interval_open_time", "klines", ["interval", "open_time"]),
    ("ix_trades_time", "trades", ["time"]),
    ("ix_depth_snapshots_captured_at", "depth_snapshots", ["captured_at"]),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns, unique=False)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
