"""Tables: the analyst contract (DESIGN.md) and the collector's own bookkeeping.

Every price and quantity is unconstrained ``NUMERIC`` (exact, whatever precision the exchange
sends); every time is ``timestamptz``. Primary keys are the natural keys, so every write can be
an idempotent upsert.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    Numeric,
    Table,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB, TSTZMULTIRANGE
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

TZ = DateTime(timezone=True)
NUM = Numeric(asdecimal=True)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: TZ, Decimal: NUM, dict[str, Any]: JSONB}


INGESTED_AT_COMMENT = (
    "When the row was stored or last changed (UTC): the start time of the writing transaction. "
    "Incremental exports (collector export --since-last) select on it."
)


def ingested_at_column() -> Mapped[datetime]:
    """The market tables' ``ingested_at`` (migration 0008): set by the default on insert, and by the
    upserts when a row's values change (store.upsert); incremental exports select on it."""
    return mapped_column(server_default=func.now(), comment=INGESTED_AT_COMMENT)


def ingested_at_index(table: str) -> Index:
    """BRIN on ``ingested_at``: rows arrive in ingestion order, so block ranges summarise it well."""
    return Index(f"ix_{table}_ingested_at", "ingested_at", postgresql_using="brin")


# --- The analyst contract ------------------------------------------------------------------


class OptionSymbolRow(Base):
    __tablename__ = "option_symbols"

    symbol: Mapped[str] = mapped_column(Text, primary_key=True)
    option_type: Mapped[str | None] = mapped_column(Text)  # CALL / PUT from optionInfo type
    raw_type: Mapped[str | None] = mapped_column(Text)  # LONGS / SHORTS as sent
    expiry_time: Mapped[datetime | None]  # exertionTime
    strike_price: Mapped[Decimal | None]  # exertionPrice, from the 24hr ticker
    status: Mapped[str | None] = mapped_column(Text)  # as the exchange last reported it
    base_asset: Mapped[str | None] = mapped_column(Text)
    quote_asset: Mapped[str | None] = mapped_column(Text)
    quote_precision: Mapped[int | None] = mapped_column(Integer)
    listed: Mapped[bool] = mapped_column(Boolean, server_default="true")
    first_seen: Mapped[datetime] = mapped_column(server_default=func.now())
    last_seen: Mapped[datetime] = mapped_column(server_default=func.now())
    delisted_at: Mapped[datetime | None]  # set when the exchange stops listing it; never deleted
    final_sweep_at: Mapped[datetime | None]  # the daemon's last collection after expiry
    underlying: Mapped[str | None] = mapped_column(Text)  # BTC, ETH, ...
    underlying_source: Mapped[str | None] = mapped_column(Text)  # optionInfo | name (read off the name)
    weekly: Mapped[bool | None] = mapped_column(Boolean)  # the name ends in W; NULL: the name does not say
    refused_at: Mapped[datetime | None]  # the exchange refused its market data for good: no longer asked
    can_release: Mapped[bool | None] = mapped_column(Boolean)  # optionInfo: it may be shorted (release)
    refusal: Mapped[str | None] = mapped_column(Text)  # why: the exchange's code and message, and where

    __table_args__ = (
        CheckConstraint("option_type IN ('CALL', 'PUT')", name="option_type"),
        CheckConstraint("underlying_source IN ('optionInfo', 'name')", name="underlying_source"),
    )


class KlineRow(Base):
    __tablename__ = "klines"

    symbol: Mapped[str] = mapped_column(Text, primary_key=True)
    interval: Mapped[str] = mapped_column(Text, primary_key=True)
    open_time: Mapped[datetime] = mapped_column(primary_key=True)
    close_time: Mapped[datetime]
    open: Mapped[Decimal]
    high: Mapped[Decimal]
    low: Mapped[Decimal]
    close: Mapped[Decimal]
    volume: Mapped[Decimal]
    quote_volume: Mapped[Decimal]
    # NULL on an open kline the push stream wrote last (it has no counts); REST fills them
    trade_count: Mapped[int | None] = mapped_column(BigInteger)
    taker_buy_base_volume: Mapped[Decimal | None]
    taker_buy_quote_volume: Mapped[Decimal | None]
    is_closed: Mapped[bool] = mapped_column(Boolean, server_default="true")  # false: partial, will change
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())
    ingested_at: Mapped[datetime] = ingested_at_column()

    # Monthly partitions, created ahead by the daemon (collector/store/partitions.py).
    # (interval, open_time): windows over every symbol ("the last 24 hours"), migration 0010.
    __table_args__ = (
        Index("ix_klines_interval_open_time", "interval", "open_time"),
        ingested_at_index("klines"),
        {"postgresql_partition_by": "RANGE (open_time)"},
    )


class TradeRow(Base):
    """The natural key is (symbol, trade_id). The table is partitioned by month of ``time``, and
    PostgreSQL wants the partition key in every unique constraint, so the primary key is
    (symbol, trade_id, time): a trade's time never changes, so (symbol, trade_id) stays unique in
    practice, and lookups by (symbol, trade_id) use the key's prefix (docs/operations.md)."""

    __tablename__ = "trades"

    symbol: Mapped[str] = mapped_column(Text, primary_key=True)
    trade_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    time: Mapped[datetime] = mapped_column(primary_key=True)
    price: Mapped[Decimal]
    qty: Mapped[Decimal]
    buyer_maker: Mapped[bool | None] = mapped_column(Boolean)
    ingested_at: Mapped[datetime] = ingested_at_column()

    __table_args__ = (
        Index("ix_trades_symbol_time", "symbol", "time"),
        Index("ix_trades_time", "time"),  # windows over every symbol, migration 0010
        ingested_at_index("trades"),
        {"postgresql_partition_by": "RANGE (time)"},
    )


class DepthSnapshotRow(Base):
    __tablename__ = "depth_snapshots"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    symbol: Mapped[str] = mapped_column(Text)
    captured_at: Mapped[datetime]
    last_update_id: Mapped[int | None] = mapped_column(BigInteger)
    depth_limit: Mapped[int | None] = mapped_column(Integer)
    ingested_at: Mapped[datetime] = ingested_at_column()  # the levels are written with their snapshot

    __table_args__ = (
        UniqueConstraint("symbol", "captured_at"),
        Index("ix_depth_snapshots_captured_at", "captured_at"),  # the latest snapshots, migration 0010
        ingested_at_index("depth_snapshots"),
    )


class DepthLevelRow(Base):
    __tablename__ = "depth_levels"

    snapshot_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("depth_snapshots.id", ondelete="CASCADE"), primary_key=True
    )
    side: Mapped[str] = mapped_column(Text, primary_key=True)
    level: Mapped[int] = mapped_column(Integer, primary_key=True)  # 0 = best
    price: Mapped[Decimal]
    qty: Mapped[Decimal]

    __table_args__ = (CheckConstraint("side IN ('bid', 'ask')", name="side"),)


class Ticker24hRow(Base):
    __tablename__ = "tickers_24hr"

    symbol: Mapped[str] = mapped_column(Text, primary_key=True)
    captured_at: Mapped[datetime] = mapped_column(primary_key=True)
    price_change: Mapped[Decimal | None]
    price_change_percent: Mapped[Decimal | None]
    weighted_avg_price: Mapped[Decimal | None]
    last_price: Mapped[Decimal | None]
    bid_price: Mapped[Decimal | None]
    bid_qty: Mapped[Decimal | None]
    ask_price: Mapped[Decimal | None]
    ask_qty: Mapped[Decimal | None]
    open_price: Mapped[Decimal | None]
    high_price: Mapped[Decimal | None]
    low_price: Mapped[Decimal | None]
    volume: Mapped[Decimal | None]
    quote_volume: Mapped[Decimal | None]
    open_time: Mapped[datetime | None]
    close_time: Mapped[datetime | None]  # as sent: the real exchange often sent close < open
    expiry_time: Mapped[datetime | None]  # exertionTime
    perform_price: Mapped[Decimal | None]  # performPrice
    underlying_price: Mapped[Decimal | None]  # referencePrice
    strike_price: Mapped[Decimal | None]  # exertionPrice
    ingested_at: Mapped[datetime] = ingested_at_column()

    __table_args__ = (ingested_at_index("tickers_24hr"),)


class AvgPriceRow(Base):
    __tablename__ = "avg_prices"

    symbol: Mapped[str] = mapped_column(Text, primary_key=True)
    captured_at: Mapped[datetime] = mapped_column(primary_key=True)
    mins: Mapped[int] = mapped_column(Integer)
    price: Mapped[Decimal]
    ingested_at: Mapped[datetime] = ingested_at_column()

    __table_args__ = (ingested_at_index("avg_prices"),)


class BookTickerRow(Base):
    __tablename__ = "book_tickers"

    symbol: Mapped[str] = mapped_column(Text, primary_key=True)
    captured_at: Mapped[datetime] = mapped_column(primary_key=True)
    bid_price: Mapped[Decimal | None]
    bid_qty: Mapped[Decimal | None]
    ask_price: Mapped[Decimal | None]
    ask_qty: Mapped[Decimal | None]
    ingested_at: Mapped[datetime] = ingested_at_column()

    __table_args__ = (ingested_at_index("book_tickers"),)


# --- The account (signed endpoints; one account per database, named in ``account``) -----------


class AccountOrderRow(Base):
    """Every order of the account, kept current until it is final (FILLED, CANCELED, ...)."""

    __tablename__ = "account_orders"

    symbol: Mapped[str] = mapped_column(Text, primary_key=True)
    order_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    price: Mapped[Decimal]
    orig_qty: Mapped[Decimal]
    executed_qty: Mapped[Decimal]
    cummulative_quote_qty: Mapped[Decimal]  # the exchange's spelling
    status: Mapped[str] = mapped_column(Text)
    time_in_force: Mapped[str | None] = mapped_column(Text)
    type: Mapped[str | None] = mapped_column(Text)
    side: Mapped[str] = mapped_column(Text)
    time: Mapped[datetime | None]
    update_time: Mapped[datetime | None]
    final: Mapped[bool] = mapped_column(Boolean)  # FILLED/CANCELED/REJECTED/EXPIRED: never changes again
    account: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class AccountOptionRecordRow(Base):
    """Every short (``release``) and call (``back``) of the account."""

    __tablename__ = "account_option_records"

    record_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    symbol: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)  # as sent (the seed shows 2 for a call)
    amount: Mapped[Decimal]
    convert_ratio: Mapped[Decimal | None]
    rate_margin: Mapped[Decimal | None]
    base_amount: Mapped[Decimal | None]
    margin_amount: Mapped[Decimal | None]
    asset_margin: Mapped[str | None] = mapped_column(Text)
    asset_base: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    account: Mapped[str] = mapped_column(Text)

    __table_args__ = (Index("ix_account_option_records_symbol_created_at", "symbol", "created_at"),)


class AccountPositionRow(Base):
    """A position as it was each time the holding changed (amount, availability or cost)."""

    __tablename__ = "account_positions"

    symbol: Mapped[str] = mapped_column(Text, primary_key=True)
    captured_at: Mapped[datetime] = mapped_column(primary_key=True)
    amount: Mapped[Decimal]
    avail_amount: Mapped[Decimal | None]
    profit: Mapped[Decimal | None]  # as the exchange valued it then
    profit_rate: Mapped[Decimal | None]
    cost: Mapped[Decimal | None]
    type: Mapped[str | None] = mapped_column(Text)
    exec_time: Mapped[datetime | None]  # the option's exercise time
    exec_price: Mapped[Decimal | None]  # the strike (the seed spells it execrPrice)
    account: Mapped[str] = mapped_column(Text)


class AccountBalanceRow(Base):
    """A balance as it was each time it changed."""

    __tablename__ = "account_balances"

    section: Mapped[str] = mapped_column(Text, primary_key=True)  # contract | option | spot
    asset: Mapped[str] = mapped_column(Text, primary_key=True)
    captured_at: Mapped[datetime] = mapped_column(primary_key=True)
    free: Mapped[Decimal]
    locked: Mapped[Decimal]
    can_trade: Mapped[bool | None] = mapped_column(Boolean)
    can_deposit: Mapped[bool | None] = mapped_column(Boolean)
    can_withdraw: Mapped[bool | None] = mapped_column(Boolean)
    account: Mapped[str] = mapped_column(Text)

    __table_args__ = (CheckConstraint("section IN ('contract', 'option', 'spot')", name="section"),)


class AccountShortCallRow(Base):
    """The account's short & call position in one option (``option/info``), each time it changed."""

    __tablename__ = "account_short_call"

    symbol: Mapped[str] = mapped_column(Text, primary_key=True)
    captured_at: Mapped[datetime] = mapped_column(primary_key=True)
    asset_margin: Mapped[str | None] = mapped_column(Text)
    asset_base: Mapped[str | None] = mapped_column(Text)
    release_amount: Mapped[Decimal]
    back_amount: Mapped[Decimal]
    margin_amount: Mapped[Decimal]
    base_amount: Mapped[Decimal]
    available_margin: Mapped[Decimal | None]
    available_base: Mapped[Decimal | None]
    available_option: Mapped[Decimal | None]
    account: Mapped[str] = mapped_column(Text)


# --- Bookkeeping ---------------------------------------------------------------------------


class CheckpointRow(Base):
    """Where a stream of a symbol stands. Committed in the same transaction as its rows.

    ``scope`` is ``live`` for the daemon and ``backfill <start>/<end>`` for a backfill window;
    ``interval`` is '' for streams without one (a primary key cannot hold NULL).
    """

    __tablename__ = "checkpoints"

    scope: Mapped[str] = mapped_column(Text, primary_key=True)
    symbol: Mapped[str] = mapped_column(Text, primary_key=True)
    stream: Mapped[str] = mapped_column(Text, primary_key=True)
    interval: Mapped[str] = mapped_column(Text, primary_key=True, server_default="")
    last_trade_id: Mapped[int | None] = mapped_column(BigInteger)  # trades: last id stored
    last_time: Mapped[datetime | None]  # trades: time of that id; klines: open of last closed
    complete: Mapped[bool] = mapped_column(Boolean, server_default="false")  # backfill window done
    rows: Mapped[int] = mapped_column(BigInteger, server_default="0")  # rows written under it
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None]


class BackfillCoverageRow(Base):
    """Times whose rows are all stored, per (symbol, stream, interval): a backfill fetches only the
    holes of its window. Grown in the transaction that stores the rows proving it."""

    __tablename__ = "backfill_coverage"
    __table_args__ = {
        "comment": "Times whose rows are all stored, per (symbol, stream, interval): a backfill fetches "
        "only the holes of its window. Key: (symbol, stream, interval)."
    }

    symbol: Mapped[str] = mapped_column(Text, primary_key=True, comment="Option symbol.")
    stream: Mapped[str] = mapped_column(Text, primary_key=True, comment="trades, klines, orders or records.")
    interval: Mapped[str] = mapped_column(
        Text,
        primary_key=True,
        server_default="",
        comment="Kline interval (1m, 1h, ...); empty for streams without one.",
    )
    covered: Mapped[Any] = mapped_column(
        TSTZMULTIRANGE,
        comment="UTC time ranges known complete: every trade (klines: every kline open time; orders and "
        "records: every one made) in them is stored. Grown in the transaction that stores the rows.",
    )
    updated_at: Mapped[datetime] = mapped_column(
        server_default=func.now(), comment="When the coverage last grew (UTC)."
    )


class RunRow(Base):
    """One invocation of a command (run, backfill, verify, ...) with its counts and outcome."""

    __tablename__ = "collector_runs"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    kind: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(server_default=func.now())
    finished_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(Text, server_default="running")  # running|ok|failed|interrupted
    host: Mapped[str | None] = mapped_column(Text)
    pid: Mapped[int | None] = mapped_column(Integer)
    args: Mapped[dict[str, Any]] = mapped_column(server_default="{}")  # never holds secrets
    counts: Mapped[dict[str, Any]] = mapped_column(server_default="{}")
    error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_collector_runs_kind_started_at", "kind", "started_at"),)


class JobErrorRow(Base):
    """Failures of daemon jobs, for `collector status` and post-mortems (bounded by retention)."""

    __tablename__ = "job_errors"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    at: Mapped[datetime] = mapped_column(server_default=func.now())
    job: Mapped[str] = mapped_column(Text)
    symbol: Mapped[str | None] = mapped_column(Text)
    error_class: Mapped[str] = mapped_column(Text)
    message: Mapped[str] = mapped_column(Text)

    __table_args__ = (Index("ix_job_errors_at", "at"),)


metadata = Base.metadata


# --- Several collectors on one database (see collector/coordination.py) -------------------


class NodeRow(Base):
    """A running daemon, known by its heartbeat. Dead when the heartbeat is older than the TTL."""

    __tablename__ = "collector_nodes"

    node: Mapped[str] = mapped_column(Text, primary_key=True)  # host:pid:random
    host: Mapped[str] = mapped_column(Text)
    pid: Mapped[int] = mapped_column(Integer)
    egress: Mapped[str] = mapped_column(Text)  # which weight budget it spends (one per egress IP)
    started_at: Mapped[datetime] = mapped_column(server_default=func.now())
    heartbeat_at: Mapped[datetime] = mapped_column(server_default=func.now())


class LeaseRow(Base):
    """Who polls a symbol: exactly one holder while ``expires_at`` is in the future."""

    __tablename__ = "collector_leases"

    resource: Mapped[str] = mapped_column(Text, primary_key=True)  # "symbol:<name>"
    holder: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime]
    acquired_at: Mapped[datetime] = mapped_column(server_default=func.now())


class WeightBudgetRow(Base):
    """Request weight claimed per egress IP and exchange window, shared by every daemon on it."""

    __tablename__ = "weight_budget"

    egress: Mapped[str] = mapped_column(Text, primary_key=True)
    window_start: Mapped[datetime] = mapped_column(primary_key=True)
    claimed: Mapped[int] = mapped_column(Integer, server_default="0")


class ExportCursorRow(Base):
    """Where an incremental export (``collector export --since-last``) stands (migration 0008)."""

    __tablename__ = "export_cursors"
    __table_args__ = {
        "comment": "Where each incremental export (collector export --since-last) stands: rows with "
        "ingested_at below exported_until have been exported. Key: name."
    }

    name: Mapped[str] = mapped_column(
        Text, primary_key=True, comment="The export's name: --cursor NAME, else '<table> -> <absolute output path>'."
    )
    relation: Mapped[str] = mapped_column(Text, comment="What it exports (the --table value).")
    exported_until: Mapped[datetime | None] = mapped_column(
        comment="Ingestion time (UTC) below which every row has been exported; the next export takes rows "
        "with ingested_at at or after it. NULL until the first export completes."
    )
    runs: Mapped[int] = mapped_column(BigInteger, server_default="0", comment="Exports completed under this name.")
    rows: Mapped[int] = mapped_column(
        BigInteger, server_default="0", comment="Rows exported under this name, all runs together."
    )
    updated_at: Mapped[datetime] = mapped_column(
        server_default=func.now(), comment="When exported_until last moved (UTC)."
    )


def table_of(model: type[Base]) -> Table:
    """The model's Table (typed as one: ``__table__`` is declared as the more general FromClause)."""
    return cast(Table, model.__table__)
