"""The analyst's side: pandas frames, verify and repair, export, plots, status.

    from collector import analyst
    k = analyst.klines("BTC0925CALL", "1m", "2026-01-01", "2026-01-02")

The frame functions of ``frames`` are available here too (``collector.analyst.klines``; this was
``collector.analysis``). ``verify`` checks stored history against what its checkpoints claim
(``claims``), ``repair`` re-fetches what is missing, ``export`` writes Parquet or CSV, ``plots``
draws, ``status`` summarises per symbol and stream. May import store, exchange, backfill (repair
re-fetches through it) and the shared modules; pandas lives only here. Like the command line, the
frames are an entry point of their own: given no engine, they build the collector's Settings (as
a notebook has no ``collector`` command around it to do so).
"""

from __future__ import annotations

from typing import Any

_FRAMES = (
    "klines",
    "trades",
    "tickers",
    "top_of_book",
    "option_chain",
    "depth",
    "orders",
    "option_records",
    "positions",
    "position_marks",
    "balances",
    "resolve_engine",
    "to_utc",
)


def __getattr__(name: str) -> Any:  # the frames on first use: `collector status` need not load pandas
    if name in _FRAMES:
        from collector.analyst import frames

        return getattr(frames, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = list(_FRAMES)
