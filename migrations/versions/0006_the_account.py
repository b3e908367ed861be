"""the account: orders, shorts and calls, positions, balances; and the views an account holder wants

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 23:00:00+00:00

Tables of the analyst contract (DESIGN.md): ``account_orders`` (every order, kept current until
final), ``account_option_records`` (every short and call), ``account_positions`` and
``account_balances`` (a row each time the holding changed), plus ``account_short_call`` (the short &
call position per option, from option/info). ``option_symbols.can_release`` records optionInfo's
canRelease. Views: ``account_open_orders``, ``position_marks`` (each position valued at the latest
top of book, else the latest ticker, with its unrealised P&L) and ``account_balance_daily`` (every
balance at the end of every UTC day since its first snapshot). Documented in docs/sql.md.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NUM = sa.Numeric(asdecimal=True)
TZ = sa.DateTime(timezone=True)

ACCOUNT_OPEN_ORDERS = """
CREATE VIEW account_open_orders AS
SELECT symbol, order_id, side, price, orig_qty, executed_qty, orig_qty - executed_qty AS remaining_qty,
       cummulative_quote_qty, status, time, update_time
FROM account_orders
WHERE status IN ('NEW', 'PARTIALLY_FILLED')
"""

POSITION_MARKS = """
CREATE VIEW position_marks AS
SELECT p.symbol,
       p.captured_at AS position_at,
       p.amount,
       p.cost,
       p.type,
       p.exec_time,
       p.exec_price,
       t.captured_at AS ticker_at,
       t.last_price,
       b.captured_at AS book_at,
       b.mid_price,
       coalesce(b.mid_price, t.last_price) AS mark_price,
       p.amount * coalesce(b.mid_price, t.last_price) AS market_value,
       (coalesce(b.mid_price, t.last_price) - p.cost) * p.amount AS unrealised_pnl
FROM (SELECT DISTINCT ON (symbol) * FROM account_positions ORDER BY symbol, captured_at DESC) p
LEFT JOIN LATERAL (SELECT captured_at, last_price FROM tickers_24hr
                   WHERE symbol = p.symbol ORDER BY captured_at DESC LIMIT 1) t ON true
LEFT JOIN LATERAL (SELECT captured_at, mid_price FROM top_of_book
                   WHERE symbol = p.symbol AND mid_price IS NOT NULL ORDER BY captured_at DESC LIMIT 1) b ON true
WHERE p.amount <> 0
"""

ACCOUNT_BALANCE_DAILY = """
CREATE VIEW account_balance_daily AS
SELECT d.day::date AS day, k.section, k.asset, b.free, b.locked, b.free + b.locked AS total, b.captured_at AS as_of
FROM (SELECT section, asset, min(captured_at) AS first FROM account_balances GROUP BY section, asset) k
CROSS JOIN LATERAL generate_series(date_trunc('day', k.first AT TIME ZONE 'UTC'),
                                   date_trunc('day', now() AT TIME ZONE 'UTC'), interval '1 day') AS d(day)
CROSS JOIN LATERAL (SELECT free, locked, captured_at FROM account_balances a
                    WHERE a.section = k.section AND a.asset = k.asset
                      AND a.captured_at < (d.day + interval '1 day') AT TIME ZONE 'UTC'
                    ORDER BY captured_at DESC LIMIT 1) b
"""


def upgrade() -> None:
    op.add_column("option_symbols", sa.Column("can_release", sa.Boolean(), nullable=True))
    op.create_table(
        "account_orders",
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("order_id", sa.BigInteger(), nullable=False),
        sa.Column("price", NUM, nullable=False),
        sa.Column("orig_qty", NUM, nullable=False),
        sa.Column("executed_qty", NUM, nullable=False),
        sa.Column("cummulative_quote_qty", NUM, nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("time_in_force", sa.Text(), nullable=True),
        sa.Column("type", sa.Text(), nullable=True),
        sa.Column("side", sa.Text(), nullable=False),
        sa.Column("time", TZ, nullable=True),
        sa.Column("update_time", TZ, nullable=True),
        sa.Column("final", sa.Boolean(), nullable=False),
        sa.Column("account", sa.Text(), nullable=False),
        sa.Column("updated_at", TZ, server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("symbol", "order_id", name=op.f("pk_account_orders")),
    )
    op.create_table(
        "account_option_records",
        sa.Column("record_id", sa.BigInteger(), nullable=False),
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("amount", NUM, nullable=False),
        sa.Column("convert_ratio", NUM, nullable=True),
        sa.Column("rate_margin", NUM, nullable=True),
        sa.Column("base_amount", NUM, nullable=True),
        sa.Column("margin_amount", NUM, nullable=True),
        sa.Column("asset_margin", sa.Text(), nullable=True),
        sa.Column("asset_base", sa.Text(), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("account", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("record_id", name=op.f("pk_account_option_records")),
    )
    op.create_index("ix_account_option_records_symbol_created_at", "account_option_records", ["symbol", "created_at"])
    op.create_table(
        "account_positions",
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("captured_at", TZ, nullable=False),
        sa.Column("amount", NUM, nullable=False),
        sa.Column("avail_amount", NUM, nullable=True),
        sa.Column("profit", NUM, nullable=True),
        sa.Column("profit_rate", NUM, nullable=True),
        sa.Column("cost", NUM, nullable=True),
        sa.Column("type", sa.Text(), nullable=True),
        sa.Column("exec_time", TZ, nullable=True),
        sa.Column("exec_price", NUM, nullable=True),
        sa.Column("account", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("symbol", "captured_at", name=op.f("pk_account_positions")),
    )
    op.create_table(
        "account_balances",
        sa.Column("section", sa.Text(), nullable=False),
        sa.Column("asset", sa.Text(), nullable=False),
        sa.Column("captured_at", TZ, nullable=False),
        sa.Column("free", NUM, nullable=False),
        sa.Column("locked", NUM, nullable=False),
        sa.Column("can_trade", sa.Boolean(), nullable=True),
        sa.Column("can_deposit", sa.Boolean(), nullable=True),
        sa.Column("can_withdraw", sa.Boolean(), nullable=True),
        sa.Column("account", sa.Text(), nullable=False),
        sa.CheckConstraint("section IN ('contract', 'option', 'spot')", name=op.f("ck_account_balances_section")),
        sa.PrimaryKeyConstraint("section", "asset", "captured_at", name=op.f("pk_account_balances")),
    )
    op.create_table(
        "account_short_call",
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("captured_at", TZ, nullable=False),
        sa.Column("asset_margin", sa.Text(), nullable=True),
        sa.Column("asset_base", sa.Text(), nullable=True),
        sa.Column("release_amount", NUM, nullable=False),
        sa.Column("back_amount", NUM, nullable=False),
        sa.Column("margin_amount", NUM, nullable=False),
        sa.Column("base_amount", NUM, nullable=False),
        sa.Column("available_margin", NUM, nullable=True),
        sa.Column("available_base", NUM, nullable=True),
        sa.Column("available_option", NUM, nullable=True),
        sa.Column("account", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("symbol", "captured_at", name=op.f("pk_account_short_call")),
    )
    op.execute(ACCOUNT_OPEN_ORDERS)
    op.execute(POSITION_MARKS)
    op.execute(ACCOUNT_BALANCE_DAILY)


def downgrade() -> None:
    for view in ("account_balance_daily", "position_marks", "account_open_orders"):
        op.execute(f"DROP VIEW IF EXISTS {view}")
    for table in (
        "account_short_call",
        "account_balances",
        "account_positions",
        "account_option_records",
        "account_orders",
    ):
        op.drop_table(table)
    op.drop_column("option_symbols", "can_release")
