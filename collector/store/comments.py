"""What each table, column, view and function holds, in the database's own catalog (``COMMENT ON``),
so that ``\\d+ klines`` in psql, DBeaver's column list or Grafana's query editor explain the data:
units, where it comes from (which exchange endpoint), and the key.

Migration 0009 wrote these comments (a migration keeps its own copy of the text, as it keeps its
own copy of a table). Here they are applied to the models' metadata (``described``), so that
Alembic's comparison of the models with a migrated database also compares the comments: a comment
changed here without a migration, or the other way round, is a difference. A table or column whose
model carries its own ``comment=`` keeps it. Views and functions are not in the models; their
comments live in the migrations only.

Conventions of the text: prices are in the option's quote asset (``option_symbols.quote_asset``,
e.g. USDT), quantities in option contracts, every time a ``timestamptz`` in UTC; an exchange field
name (``exertionTime``) says which field of the answer filled the column.
"""

from __future__ import annotations

from sqlalchemy import MetaData

# (table comment, {column: comment}) per table.
TABLES: dict[str, tuple[str, dict[str, str]]] = {
    # --- The analyst contract -------------------------------------------------------------------
    "option_symbols": (
        "One row per option the collector has known, never deleted: optionInfo (terms, status) merged "
        "with exchangeInfo (assets, precision) and the 24hr ticker (strike). Key: symbol.",
        {
            "symbol": "Option symbol as the exchange names it (BTC0925CALL). Key.",
            "option_type": "CALL or PUT: optionInfo type (LONGS = CALL, SHORTS = PUT).",
            "raw_type": "optionInfo type as sent (LONGS, SHORTS, CALL or PUT).",
            "expiry_time": "Exercise (expiry) time, UTC: optionInfo exertionTime.",
            "strike_price": "Strike, in the quote asset: exertionPrice of the 24hr ticker (the daemon's "
            "tickers, or one ticker a backfill fetches for a symbol that has none).",
            "status": "Trading status as the exchange last reported it (optionInfo, else exchangeInfo).",
            "base_asset": "exchangeInfo baseAsset.",
            "quote_asset": "exchangeInfo quoteAsset: the asset this option's prices are in (e.g. usdt).",
            "quote_precision": "exchangeInfo quotePrecision: decimals of a price.",
            "listed": "True while optionInfo or exchangeInfo lists the option.",
            "first_seen": "When the collector first saw the option listed (UTC).",
            "last_seen": "When the collector last saw the option listed (UTC).",
            "delisted_at": "When the option stopped being listed (UTC); NULL while listed.",
            "final_sweep_at": "When the daemon's last collection after expiry finished (UTC); NULL until then.",
            "underlying": "Underlying asset (BTC, ETH, ...): optionInfo releaseOption.assetMarginName, "
            "else read off the name.",
            "underlying_source": "Where underlying came from: optionInfo, or name (only a fallback).",
            "weekly": "True when the name ends in W (a weekly option); NULL when the name does not say.",
            "refused_at": "When the exchange refused this option's market data for good (UTC), e.g. -7013 "
            "past its exercise time: it is no longer asked for. NULL: never refused.",
            "refusal": "Why it was refused: the exchange's code and message, and which request got them.",
            "can_release": "optionInfo canRelease: the option may be shorted (release).",
        },
    ),
    "klines": (
        "Candlesticks of every interval (always filter on interval), from the klines endpoint: the "
        "exchange emits one for every interval of an option's life, trades or not. Prices in the quote "
        "asset, volumes in contracts, times UTC. Key: (symbol, interval, open_time). Partitioned by "
        "month of open_time.",
        {
            "symbol": "Option symbol (option_symbols.symbol).",
            "interval": "Kline interval: 1m, 1h, ... (the table holds every interval collected).",
            "open_time": "Start of the interval (UTC).",
            "close_time": "End of the interval as the exchange sent it (open_time + interval - 1 ms), UTC.",
            "open": "Price of the interval's first trade, in the quote asset (the previous close when nothing traded).",
            "high": "Highest trade price of the interval, in the quote asset.",
            "low": "Lowest trade price of the interval, in the quote asset.",
            "close": "Price of the interval's last trade, in the quote asset (the previous close when nothing traded).",
            "volume": "Contracts traded in the interval.",
            "quote_volume": "Quote asset traded in the interval (sum of price * qty).",
            "trade_count": "Number of trades in the interval; NULL on an open kline last written from the push stream.",
            "taker_buy_base_volume": "Contracts bought by takers in the interval; NULL on an open kline last "
            "written from the push stream.",
            "taker_buy_quote_volume": "Quote asset spent by takers' buys in the interval; NULL on an open kline "
            "last written from the push stream.",
            "is_closed": "False for the current, still-changing kline (its close time had not passed "
            "when it was stored).",
            "updated_at": "When the collector last wrote this row (UTC); bookkeeping.",
        },
    ),
    "trades": (
        "Every trade, from historicalTrades (paged by fromId; needs the API key). Prices in the quote "
        "asset, quantities in contracts, times UTC. Key: (symbol, trade_id, time); (symbol, trade_id) "
        "alone identifies a trade: time is in the key because the table is partitioned by month of "
        "time.",
        {
            "symbol": "Option symbol (option_symbols.symbol).",
            "trade_id": "The exchange's trade id (id), increasing per symbol.",
            "price": "Trade price, in the quote asset.",
            "qty": "Quantity traded, in contracts.",
            "time": "Trade time (UTC, millisecond resolution).",
            "buyer_maker": "True when the buyer was the maker (so the seller took liquidity); NULL when "
            "the exchange did not say.",
        },
    ),
    "depth_snapshots": (
        "One order-book snapshot per depth poll (the depth endpoint); its price levels are in "
        "depth_levels, its best levels in the view top_of_book. Key: id; (symbol, captured_at) is "
        "unique.",
        {
            "id": "Snapshot id, generated; depth_levels.snapshot_id refers to it.",
            "symbol": "Option symbol (option_symbols.symbol).",
            "captured_at": "When the collector received the answer (UTC, the collector's clock).",
            "last_update_id": "The book's lastUpdateId; NULL when the exchange did not send one.",
            "depth_limit": "Levels asked for per side (the request's limit).",
        },
    ),
    "depth_levels": (
        "The price levels of each depth snapshot, as the exchange sent them. Key: (snapshot_id, side, level).",
        {
            "snapshot_id": "depth_snapshots.id (the levels are deleted with their snapshot).",
            "side": "bid or ask.",
            "level": "0 is the best price of its side, then outwards in the order sent.",
            "price": "Price of the level, in the quote asset.",
            "qty": "Contracts offered at that price.",
        },
    ),
    "tickers_24hr": (
        "24hr ticker statistics, one row per option per poll (ticker/24hr). Prices in the quote asset, "
        "volumes in contracts, times UTC. Key: (symbol, captured_at).",
        {
            "symbol": "Option symbol (option_symbols.symbol).",
            "captured_at": "When the collector received the answer (UTC, the collector's clock).",
            "price_change": "priceChange: last price minus the price 24 h before, in the quote asset.",
            "price_change_percent": "priceChangePercent: price_change in percent.",
            "weighted_avg_price": "weightedAvgPrice: volume-weighted average price over 24 h.",
            "last_price": "lastPrice: the latest trade price.",
            "bid_price": "bidPrice: the best bid.",
            "bid_qty": "bidQty: contracts at the best bid.",
            "ask_price": "askPrice: the best ask.",
            "ask_qty": "askQty: contracts at the best ask.",
            "open_price": "openPrice: the price 24 h before.",
            "high_price": "highPrice: the highest price over 24 h.",
            "low_price": "lowPrice: the lowest price over 24 h.",
            "volume": "volume: contracts traded over 24 h.",
            "quote_volume": "quoteVolume: quote asset traded over 24 h.",
            "open_time": "openTime: start of the 24 h window (UTC).",
            "close_time": "closeTime as sent (UTC): the real exchange often sent one before openTime.",
            "expiry_time": "exertionTime: the option's expiry (UTC).",
            "perform_price": "performPrice as sent: the exercise value per contract once the option has "
            "settled, 0 before; quote asset.",
            "underlying_price": "referencePrice: the underlying's price, in the quote asset.",
            "strike_price": "exertionPrice: the strike, in the quote asset.",
        },
    ),
    "avg_prices": (
        "Average price over the last mins minutes, one row per poll (avgPrice; the avg_price stream, "
        "off by default). Key: (symbol, captured_at).",
        {
            "symbol": "Option symbol (option_symbols.symbol).",
            "captured_at": "When the collector received the answer (UTC, the collector's clock).",
            "mins": "mins: the minutes averaged over.",
            "price": "price: the average price, in the quote asset.",
        },
    ),
    "book_tickers": (
        "Best bid and ask, one row per poll (ticker/bookTicker; the book_ticker stream, off by default). "
        "Key: (symbol, captured_at).",
        {
            "symbol": "Option symbol (option_symbols.symbol).",
            "captured_at": "When the collector received the answer (UTC, the collector's clock).",
            "bid_price": "bidPrice: the best bid, in the quote asset.",
            "bid_qty": "bidQty: contracts at the best bid.",
            "ask_price": "askPrice: the best ask, in the quote asset.",
            "ask_qty": "askQty: contracts at the best ask.",
        },
    ),
    # --- The account ------------------------------------------------------------------------------
    "account_orders": (
        "Every order of the account (historyOrders paged by orderId, openOrders, then a lookup of each "
        "that left it), kept current until final. Prices in the quote asset, quantities in contracts, "
        "times UTC. Key: (symbol, order_id).",
        {
            "symbol": "Option symbol.",
            "order_id": "orderId: the exchange's order id.",
            "price": "price: the limit price, in the quote asset.",
            "orig_qty": "origQty: contracts ordered.",
            "executed_qty": "executedQty: contracts filled so far.",
            "cummulative_quote_qty": "cummulativeQuoteQty (the exchange's spelling): quote asset filled so far.",
            "status": "NEW, PARTIALLY_FILLED, FILLED, CANCELED, REJECTED or EXPIRED, as the exchange last said.",
            "time_in_force": "timeInForce (GTC, ...).",
            "type": "type: the order type (LIMIT, ...).",
            "side": "BUY or SELL.",
            "time": "When the order was placed (time, else transactTime), UTC.",
            "update_time": "When the exchange last changed the order (updateTime), UTC.",
            "final": "True once the order cannot change any more (FILLED, CANCELED, REJECTED, EXPIRED), or "
            "the exchange stopped answering for it: its last status is kept.",
            "account": "The account's label (the account_name setting), never its key.",
            "updated_at": "When the collector last wrote this row (UTC); bookkeeping.",
        },
    ),
    "account_option_records": (
        "Every short (release, status '1') and call (back, status '2') of the account, from option/record "
        "paged by fromId. Times UTC. Key: record_id.",
        {
            "record_id": "id: the record's id.",
            "symbol": "name: the option symbol.",
            "status": "'1' a short (release), '2' a call (back), as sent.",
            "amount": "amount: contracts shorted or called.",
            "convert_ratio": "convertRatio: units of the margin asset per contract, before rate_margin.",
            "rate_margin": "rateMargin: the share of convert_ratio held as margin.",
            "base_amount": "baseAmount: amount of asset_base taken (short) or returned (call).",
            "margin_amount": "marginAmount: amount of asset_margin taken (short) or returned (call).",
            "asset_margin": "assetMargin: the margin asset (the underlying).",
            "asset_base": "assetBase: the other asset a short takes (base_amount's).",
            "created_at": "createdDate: when it was made (UTC).",
            "account": "The account's label (the account_name setting), never its key.",
        },
    ),
    "account_positions": (
        "The account's option positions (option/position), a row each time the holding changed (amount, "
        "availability or cost) and a row of zeros when it closed: the position at a time is the latest "
        "row at or before it. Key: (symbol, captured_at).",
        {
            "symbol": "name: the option symbol.",
            "captured_at": "When the collector saw this state (UTC, the collector's clock).",
            "amount": "amount: contracts held.",
            "avail_amount": "availAmount: contracts held and not locked by orders.",
            "profit": "profit, as the exchange valued it then (quote asset).",
            "profit_rate": "profitRate, as the exchange valued it then.",
            "cost": "cost: the average cost per contract, in the quote asset.",
            "type": "type: CALL or PUT.",
            "exec_time": "execTime: the option's exercise (expiry) time (UTC).",
            "exec_price": "execrPrice (or execPrice): the strike, in the quote asset.",
            "account": "The account's label (the account_name setting), never its key.",
        },
    ),
    "account_balances": (
        "The account's balances (GET /api/v1/account), a row each time free, locked or a flag changed and "
        "zeros when the balance went away: the balance at a time is the latest row at or before it. "
        "Key: (section, asset, captured_at).",
        {
            "section": "contract, option or spot (contractBalances, optionBalances, spotBalances).",
            "asset": "asset: a coin, or in the option section an option symbol or the quote asset.",
            "captured_at": "When the collector saw this state (UTC, the collector's clock).",
            "free": "free: the amount available.",
            "locked": "locked: the amount held by open orders or shorts.",
            "can_trade": "canTrade, as sent.",
            "can_deposit": "canDeposit, as sent.",
            "can_withdraw": "canWithdraw, as sent.",
            "account": "The account's label (the account_name setting), never its key.",
        },
    ),
    "account_short_call": (
        "The account's short & call position in each option it shorted (option/info), a row each time it "
        "changed. Key: (symbol, captured_at).",
        {
            "symbol": "assetOption: the option symbol.",
            "captured_at": "When the collector saw this state (UTC, the collector's clock).",
            "asset_margin": "assetMargin: the margin asset (the underlying).",
            "asset_base": "assetBase: the other asset a short takes.",
            "release_amount": "releaseAmount: contracts shorted, in total.",
            "back_amount": "backAmount: contracts called back, in total.",
            "margin_amount": "marginAmount: asset_margin held for what is still shorted.",
            "base_amount": "baseAmount: asset_base held for what is still shorted.",
            "available_margin": "availableMargin: asset_margin still free (spot).",
            "available_base": "availableBase: asset_base still free (spot).",
            "available_option": "availableOption: contracts of this option free in the option section.",
            "account": "The account's label (the account_name setting), never its key.",
        },
    ),
    # --- Bookkeeping ------------------------------------------------------------------------------
    "checkpoints": (
        "Bookkeeping: where each stream of each symbol stands, for the daemon (scope live) and for each "
        "backfill window; committed with the rows it covers. Key: (scope, symbol, stream, interval).",
        {
            "scope": "live for the daemon, backfill <start>/<end> for a backfill window.",
            "symbol": "Option symbol.",
            "stream": "trades, klines, or the account's orders and records.",
            "interval": "Kline interval; empty for streams without one.",
            "last_trade_id": "trades: the last trade id stored; orders and records: the last id stored.",
            "last_time": "trades: the time of that trade; klines: the open time of the last closed kline (UTC).",
            "complete": "A backfill window fetched to its end.",
            "rows": "Rows written under this checkpoint.",
            "updated_at": "When it last moved (UTC).",
            "last_error": "The last failure of this stream of this symbol (secrets redacted).",
            "last_error_at": "When that failure happened (UTC).",
        },
    ),
    "collector_runs": (
        "Bookkeeping: one row per command run (the daemon, a backfill), with its counts and outcome. Key: id.",
        {
            "id": "Run id, generated.",
            "kind": "The command: run (the daemon) or backfill.",
            "started_at": "When it started (UTC).",
            "finished_at": "When it ended (UTC); NULL while it runs, or if it died.",
            "status": "running, ok, failed or interrupted.",
            "host": "Host name of the machine it ran on.",
            "pid": "Its process id.",
            "args": "Its arguments (never a secret).",
            "counts": "What it did, by name (rows, requests, ...).",
            "error": "Why it failed (secrets redacted).",
        },
    ),
    "job_errors": (
        "Bookkeeping: failures of the daemon's jobs, for collector status and post-mortems (bounded by "
        "retention). Key: id.",
        {
            "id": "Error id, generated.",
            "at": "When the job failed (UTC).",
            "job": "The job: trades, klines, depth, tickers, symbols, ...",
            "symbol": "The symbol it failed for; NULL for a job over every symbol.",
            "error_class": "The error's class (ExchangeUnavailable, ParseError, ...).",
            "message": "The error's message (secrets redacted).",
        },
    ),
    "collector_nodes": (
        "Bookkeeping: every running daemon and its heartbeat, when several collectors share the database. Key: node.",
        {
            "node": "host:pid:random, the daemon's name.",
            "host": "Host name of its machine.",
            "pid": "Its process id.",
            "egress": "Which weight budget it spends (one per outgoing IP).",
            "started_at": "When it started (UTC).",
            "heartbeat_at": "Its last heartbeat (UTC): dead once older than the lease TTL.",
        },
    ),
    "collector_leases": (
        "Bookkeeping: which daemon polls which symbol; one holder while expires_at is ahead. Key: resource.",
        {
            "resource": "What is leased: symbol:<name>.",
            "holder": "collector_nodes.node of the daemon holding it.",
            "expires_at": "When the lease lapses unless renewed (UTC).",
            "acquired_at": "When the holder took it (UTC).",
        },
    ),
    "weight_budget": (
        "Bookkeeping: request weight claimed per outgoing IP and exchange rate-limit window, shared by "
        "every daemon behind that IP. Key: (egress, window_start).",
        {
            "egress": "The outgoing IP's name (the egress setting).",
            "window_start": "Start of the exchange's weight window (UTC).",
            "claimed": "Weight claimed in that window so far.",
        },
    ),
}

_ACCOUNT_OPEN_ORDERS = {
    "symbol": "Option symbol.",
    "order_id": "orderId: the exchange's order id.",
    "side": "BUY or SELL.",
    "price": "The limit price, in the quote asset.",
    "orig_qty": "Contracts ordered.",
    "executed_qty": "Contracts filled so far.",
    "remaining_qty": "orig_qty - executed_qty: contracts still to fill.",
    "cummulative_quote_qty": "Quote asset filled so far.",
    "status": "NEW or PARTIALLY_FILLED.",
    "time": "When the order was placed (UTC).",
    "update_time": "When the exchange last changed it (UTC).",
}

_CHAIN = {
    "symbol": "Option symbol.",
    "option_type": "CALL or PUT.",
    "strike_price": "Strike, in the quote asset (option_symbols, else the latest ticker's).",
    "expiry_time": "Expiry (UTC; option_symbols, else the latest ticker's).",
    "time_to_expiry": "expiry_time minus the chain's time, as an interval.",
    "days_to_expiry": "expiry_time minus the chain's time, in days.",
    "status": "Trading status (option_symbols).",
    "ticker_at": "captured_at of the latest 24hr ticker at or before the chain's time (how old the ticker "
    "columns are).",
    "last_price": "lastPrice of that ticker, in the quote asset.",
    "bid_price": "bidPrice of that ticker.",
    "ask_price": "askPrice of that ticker.",
    "volume_24h": "volume of that ticker: contracts traded over 24 h.",
    "quote_volume_24h": "quoteVolume of that ticker: quote asset traded over 24 h.",
    "underlying_price": "referencePrice of that ticker: the underlying's price.",
    "depth_at": "captured_at of the latest depth snapshot at or before the chain's time (how old the book "
    "columns are).",
    "best_bid": "Best bid of that snapshot, in the quote asset.",
    "best_bid_qty": "Contracts at the best bid.",
    "best_ask": "Best ask of that snapshot, in the quote asset.",
    "best_ask_qty": "Contracts at the best ask.",
    "spread": "best_ask - best_bid.",
    "mid_price": "(best_ask + best_bid) / 2.",
}

VIEWS: dict[str, tuple[str, dict[str, str]]] = {
    "top_of_book": (
        "The best bid and ask (level 0) of every depth snapshot, with spread and mid; one row per "
        "depth_snapshots row. Prices in the quote asset. Filter on symbol and captured_at.",
        {
            "snapshot_id": "depth_snapshots.id.",
            "symbol": "Option symbol.",
            "captured_at": "When the snapshot was received (UTC).",
            "last_update_id": "The book's lastUpdateId; NULL when the exchange did not send one.",
            "bid_price": "Best bid; NULL when the bid side was empty.",
            "bid_qty": "Contracts at the best bid.",
            "ask_price": "Best ask; NULL when the ask side was empty.",
            "ask_qty": "Contracts at the best ask.",
            "spread": "ask_price - bid_price.",
            "mid_price": "(ask_price + bid_price) / 2.",
        },
    ),
    "option_chain": (
        "Every live option now, with its terms, its latest 24hr ticker and its latest depth snapshot: "
        "option_chain_at(now()). ticker_at and depth_at say how old each part is.",
        _CHAIN,
    ),
    "trades_enriched": (
        "Every trade with its option's terms and the underlying's price at the time (from the latest 24hr "
        "ticker at or before the trade). Filter on symbol and time first.",
        {
            "symbol": "Option symbol.",
            "trade_id": "The exchange's trade id.",
            "time": "Trade time (UTC).",
            "price": "Trade price, in the quote asset.",
            "qty": "Quantity traded, in contracts.",
            "notional": "price * qty, in the quote asset.",
            "buyer_maker": "True when the buyer was the maker; NULL when unknown.",
            "taker_side": "buy when the buyer took liquidity, sell when the seller did, NULL when unknown.",
            "option_type": "CALL or PUT.",
            "strike_price": "Strike, in the quote asset.",
            "expiry_time": "Expiry (UTC).",
            "time_to_expiry": "expiry_time - time: how long the option had left at the trade.",
            "underlying_price": "referencePrice of the latest 24hr ticker captured at or before the trade.",
            "underlying_at": "When that ticker was captured (UTC).",
        },
    ),
    "account_open_orders": (
        "The account's orders still working (NEW, PARTIALLY_FILLED), with what remains to fill.",
        _ACCOUNT_OPEN_ORDERS,
    ),
    "position_marks": (
        "Every open position of the account (its latest snapshot, amount <> 0) valued at the market: the "
        "mark is the latest top_of_book mid price, else the latest 24hr ticker's last price.",
        {
            "symbol": "Option symbol.",
            "position_at": "captured_at of the position's latest snapshot (UTC).",
            "amount": "Contracts held.",
            "cost": "Average cost per contract, in the quote asset.",
            "type": "CALL or PUT.",
            "exec_time": "The option's exercise (expiry) time (UTC).",
            "exec_price": "The strike, in the quote asset.",
            "ticker_at": "captured_at of the latest 24hr ticker (UTC).",
            "last_price": "lastPrice of that ticker.",
            "book_at": "captured_at of the latest depth snapshot with a mid price (UTC).",
            "mid_price": "mid_price of that snapshot.",
            "mark_price": "mid_price, else last_price: the price the position is valued at.",
            "market_value": "amount * mark_price, in the quote asset.",
            "unrealised_pnl": "(mark_price - cost) * amount, in the quote asset.",
        },
    ),
    "account_balance_daily": (
        "Every balance of the account at the end of every UTC day since its first snapshot.",
        {
            "day": "The UTC day.",
            "section": "contract, option or spot.",
            "asset": "The asset.",
            "free": "free at the end of the day.",
            "locked": "locked at the end of the day.",
            "total": "free + locked.",
            "as_of": "captured_at of the snapshot in force at the end of the day (UTC).",
        },
    ),
}

FUNCTIONS: dict[str, str] = {
    "option_chain_at(timestamptz)": "The option chain as it stood at as_of, from what was captured at or "
    "before it: the options not expired or delisted by then that the collector knew of (seen, or with "
    "a ticker or a 1m kline from before then). Columns as the view option_chain.",
}


def described(metadata: MetaData) -> MetaData:
    """``metadata`` (changed in place) with the comments above on every table and column that has
    no comment of its own in the models."""
    for name, (comment, columns) in TABLES.items():
        table = metadata.tables[name]  # a table or column gone from the models must go from here too
        if table.comment is None:
            table.comment = comment
        for column_name, column_comment in columns.items():
            column = table.columns[column_name]
            if column.comment is None:
                column.comment = column_comment
    return metadata
