"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-25 12:00:45.446363+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "avg_prices",
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("captured_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("mins", sa.Integer(), nullable=False),
        sa.Column("price", sa.Numeric(), nullable=False),
        sa.PrimaryKeyConstraint("symbol", "captured_at", name=op.f("pk_avg_prices")),
    )
    op.create_table(
        "book_tickers",
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("captured_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("bid_price", sa.Numeric(), nullable=True),
        sa.Column("bid_qty", sa.Numeric(), nullable=True),
        sa.Column("ask_price", sa.Numeric(), nullable=True),
        sa.Column("ask_qty", sa.Numeric(), nullable=True),
        sa.PrimaryKeyConstraint("symbol", "captured_at", name=op.f("pk_book_tickers")),
    )
    op.create_table(
        "checkpoints",
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("stream", sa.Text(), nullable=False),
        sa.Column("interval", sa.Text(), server_default="", nullable=False),
        sa.Column("last_trade_id", sa.BigInteger(), nullable=True),
        sa.Column("last_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("complete", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("rows", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_error_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("scope", "symbol", "stream", "interval", name=op.f("pk_checkpoints")),
    )
    op.create_table(
        "collector_runs",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.Text(), server_default="running", nullable=False),
        sa.Column("host", sa.Text(), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("args", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False),
        sa.Column("counts", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_collector_runs")),
    )
    op.create_index("ix_collector_runs_kind_started_at", "collector_runs", ["kind", "started_at"], unique=False)
    op.create_table(
        "depth_snapshots",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("captured_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_update_id", sa.BigInteger(), nullable=True),
        sa.Column("depth_limit", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_depth_snapshots")),
        sa.UniqueConstraint("symbol", "captured_at", name=op.f("uq_depth_snapshots_symbol_captured_at")),
    )
    op.create_table(
        "job_errors",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("job", sa.Text(), nullable=False),
        sa.Column("symbol", sa.Text(), nullable=True),
        sa.Column("error_class", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_errors")),
    )
    op.create_index("ix_job_errors_at", "job_errors", ["at"], unique=False)
    op.create_table(
        "klines",
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
        sa.PrimaryKeyConstraint("symbol", "interval", "open_time", name=op.f("pk_klines")),
    )
    op.create_table(
        "option_symbols",
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("option_type", sa.Text(), nullable=True),
        sa.Column("raw_type", sa.Text(), nullable=True),
        sa.Column("expiry_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("strike_price", sa.Numeric(), nullable=True),
        sa.Column("status", sa.Text(), nullable=True),
        sa.Column("base_asset", sa.Text(), nullable=True),
        sa.Column("quote_asset", sa.Text(), nullable=True),
        sa.Column("quote_precision", sa.Integer(), nullable=True),
        sa.Column("listed", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("delisted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("final_sweep_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("option_type IN ('CALL', 'PUT')", name=op.f("ck_option_symbols_option_type")),
        sa.PrimaryKeyConstraint("symbol", name=op.f("pk_option_symbols")),
    )
    op.create_table(
        "tickers_24hr",
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("captured_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("price_change", sa.Numeric(), nullable=True),
        sa.Column("price_change_percent", sa.Numeric(), nullable=True),
        sa.Column("weighted_avg_price", sa.Numeric(), nullable=True),
        sa.Column("last_price", sa.Numeric(), nullable=True),
        sa.Column("bid_price", sa.Numeric(), nullable=True),
        sa.Column("bid_qty", sa.Numeric(), nullable=True),
        sa.Column("ask_price", sa.Numeric(), nullable=True),
        sa.Column("ask_qty", sa.Numeric(), nullable=True),
        sa.Column("open_price", sa.Numeric(), nullable=True),
        sa.Column("high_price", sa.Numeric(), nullable=True),
        sa.Column("low_price", sa.Numeric(), nullable=True),
        sa.Column("volume", sa.Numeric(), nullable=True),
        sa.Column("quote_volume", sa.Numeric(), nullable=True),
        sa.Column("open_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("close_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expiry_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("perform_price", sa.Numeric(), nullable=True),
        sa.Column("underlying_price", sa.Numeric(), nullable=True),
        sa.Column("strike_price", sa.Numeric(), nullable=True),
        sa.PrimaryKeyConstraint("symbol", "captured_at", name=op.f("pk_tickers_24hr")),
    )
    op.create_table(
        "trades",
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("trade_id", sa.BigInteger(), nullable=False),
        sa.Column("price", sa.Numeric(), nullable=False),
        sa.Column("qty", sa.Numeric(), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("buyer_maker", sa.Boolean(), nullable=True),
        sa.PrimaryKeyConstraint("symbol", "trade_id", name=op.f("pk_trades")),
    )
    op.create_index("ix_trades_symbol_time", "trades", ["symbol", "time"], unique=False)
    op.create_table(
        "depth_levels",
        sa.Column("snapshot_id", sa.BigInteger(), nullable=False),
        sa.Column("side", sa.Text(), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("price", sa.Numeric(), nullable=False),
        sa.Column("qty", sa.Numeric(), nullable=False),
        sa.CheckConstraint("side IN ('bid', 'ask')", name=op.f("ck_depth_levels_side")),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["depth_snapshots.id"],
            name=op.f("fk_depth_levels_snapshot_id_depth_snapshots"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("snapshot_id", "side", "level", name=op.f("pk_depth_levels")),
    )


def downgrade() -> None:
    op.drop_table("depth_levels")
    op.drop_index("ix_trades_symbol_time", table_name="trades")
    op.drop_table("trades")
    op.drop_table("tickers_24hr")
    op.drop_table("option_symbols")
    op.drop_table("klines")
    op.drop_index("ix_job_errors_at", table_name="job_errors")
    op.drop_table("job_errors")
    op.drop_table("depth_snapshots")
    op.drop_index("ix_collector_runs_kind_started_at", table_name="collector_runs")
    op.drop_table("collector_runs")
    op.drop_table("checkpoints")
    op.drop_table("book_tickers")
    op.drop_table("avg_prices")
