"""klines: the open kline may come from the push stream, without trade count or taker volumes

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 07:00:00+00:00

The exchange's ``optionKline`` stream carries the current kline's prices and volumes but no trade
count and no taker volumes (JEX-STREAMS-NOTES.md). The daemon keeps the open kline live from it,
so those three columns are NULL (unknown) on an open kline the stream wrote last; a closed kline
is final only from REST, which always fills them. Dropping NOT NULL rewrites nothing.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = {
    "trade_count": "Number of trades in the interval; NULL on an open kline last written from the push stream.",
    "taker_buy_base_volume": "Contracts bought by takers in the interval; NULL on an open kline last written "
    "from the push stream.",
    "taker_buy_quote_volume": "Quote asset spent by takers' buys in the interval; NULL on an open kline last "
    "written from the push stream.",
}
BEFORE = {
    "trade_count": "Number of trades in the interval.",
    "taker_buy_base_volume": "Contracts bought by takers in the interval.",
    "taker_buy_quote_volume": "Quote asset spent by takers' buys in the interval.",
}


def _comment(column: str, text: str) -> None:
    op.execute(f"COMMENT ON COLUMN klines.{column} IS '{text.replace(chr(39), chr(39) * 2)}'")


def upgrade() -> None:
    for column, text in COLUMNS.items():
        op.alter_column("klines", column, nullable=True)
        _comment(column, text)


def downgrade() -> None:
    # Open klines from the stream have no counts: REST's next poll fills them; until then, zero.
    op.execute("UPDATE klines SET trade_count = 0 WHERE trade_count IS NULL")
    op.execute("UPDATE klines SET taker_buy_base_volume = 0 WHERE taker_buy_base_volume IS NULL")
    op.execute("UPDATE klines SET taker_buy_quote_volume = 0 WHERE taker_buy_quote_volume IS NULL")
    for column, text in BEFORE.items():
        op.alter_column("klines", column, nullable=False)
        _comment(column, text)
