"""backfill coverage: the time ranges of each (symbol, stream, interval) known to be stored whole

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 03:00:00+00:00

``backfill_coverage`` holds, per (symbol, stream, interval), a multirange of times whose rows are all
stored: for trades, every trade whose time lies in it; for klines, every kline whose open time lies in
it; for the account's orders and records, every one made in it. A backfill adds a range in the
transaction that commits the rows proving it (batch by batch for trades and klines, the whole window
at the end for the account's), and fetches only the holes of the window it is asked for.
Complete windows of earlier backfills (their checkpoints, scope ``backfill <start>/<end>``) are
carried over.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CARRY_OVER = """
INSERT INTO backfill_coverage (symbol, stream, interval, covered)
SELECT symbol, stream, interval,
       range_agg(tstzrange(split_part(substr(scope, 10), '/', 1)::timestamptz,
                           split_part(substr(scope, 10), '/', 2)::timestamptz))
FROM checkpoints
WHERE complete AND scope LIKE 'backfill %/%'
GROUP BY symbol, stream, interval
"""


def upgrade() -> None:
    op.create_table(
        "backfill_coverage",
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("stream", sa.Text(), nullable=False),
        sa.Column("interval", sa.Text(), server_default="", nullable=False),
        sa.Column("covered", postgresql.TSTZMULTIRANGE(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("symbol", "stream", "interval", name=op.f("pk_backfill_coverage")),
    )
    op.execute(CARRY_OVER)
    op.execute(
        "COMMENT ON TABLE backfill_coverage IS 'Times whose rows are all stored, per (symbol, stream, interval): "
        "a backfill fetches only the holes of its window. Key: (symbol, stream, interval).'"
    )
    for column, comment in (
        ("symbol", "Option symbol."),
        ("stream", "trades, klines, orders or records."),
        ("interval", "Kline interval (1m, 1h, ...); empty for streams without one."),
        (
            "covered",
            "UTC time ranges known complete: every trade (klines: every kline open time; orders and records: "
            "every one made) in them is stored. Grown in the transaction that stores the rows.",
        ),
        ("updated_at", "When the coverage last grew (UTC)."),
    ):
        op.execute(f"COMMENT ON COLUMN backfill_coverage.{column} IS '{comment}'")


def downgrade() -> None:
    op.drop_table("backfill_coverage")
