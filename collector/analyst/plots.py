"""Pictures: a coverage chart (status --plot) and candlesticks with volume (plot klines).

Plain matplotlib on the Agg canvas, through ``Figure`` objects rather than pyplot: no global state,
no display needed, safe in a daemon or a test. Candlesticks are drawn as bars (bodies) and
vertical lines (wicks), which is all mplfinance would add here.
"""

from __future__ import annotations

from datetime import UTC
from pathlib import Path

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from collector.analyst.status import Coverage
from collector.errors import ConfigError

UP, DOWN = "#26a69a", "#ef5350"
FULL, PARTIAL = "#2e7d32", "#f9a825"


def _save(fig: Figure, path: str | Path) -> Path:
    out = Path(path)
    if not out.parent.is_dir():
        raise ConfigError(f"output directory {out.parent} does not exist")
    FigureCanvasAgg(fig)
    fig.savefig(out, format="png", dpi=100)
    return out


def candles(df: pd.DataFrame, path: str | Path, *, title: str = "") -> Path:
    """Candlesticks of a klines frame (analysis.klines: open_time index, float columns) with volume."""
    if df.empty:
        raise ConfigError("no klines in that range: nothing to draw")
    x = date2num(df.index.tz_convert("UTC").tz_localize(None).to_pydatetime())
    step = (x[1] - x[0]) if len(x) > 1 else 1 / 1440
    width = step * 0.7
    o, h, lo, c, v = (df[k].astype("float64").to_numpy() for k in ("open", "high", "low", "close", "volume"))
    colors = [UP if ci >= oi else DOWN for oi, ci in zip(o, c, strict=True)]
    fig = Figure(figsize=(12, 7))
    grid = fig.add_gridspec(2, 1, height_ratios=(3, 1), hspace=0.05)
    ax = fig.add_subplot(grid[0])
    axv = fig.add_subplot(grid[1], sharex=ax)
    ax.vlines(x, lo, h, colors=colors, linewidth=0.8)
    bottoms = [min(a, b) for a, b in zip(o, c, strict=True)]
    heights = [max(abs(b - a), (h.max() - lo.min()) * 1e-3) for a, b in zip(o, c, strict=True)]
    ax.bar(x, heights, width, bottom=bottoms, color=colors, edgecolor=colors, linewidth=0.5)
    axv.bar(x, v, width, color=colors)
    ax.set_title(title or "klines")
    ax.set_ylabel("price")
    axv.set_ylabel("volume")
    ax.grid(alpha=0.3)
    axv.grid(alpha=0.3)
    locator = AutoDateLocator()
    axv.xaxis.set_major_locator(locator)
    axv.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    ax.tick_params(labelbottom=False)
    axv.set_xlabel("UTC")
    return _save(fig, path)


def coverage(cov: Coverage, path: str | Path) -> Path:
    """One row per (symbol, stream): green where fully covered, amber where partly, blank where empty."""
    keys = sorted(cov.rows)
    fig = Figure(figsize=(12, max(3.0, 0.22 * len(keys) + 1.5)))
    ax = fig.add_subplot()
    start = date2num(cov.start.astimezone(UTC).replace(tzinfo=None))
    w = (date2num(cov.end.astimezone(UTC).replace(tzinfo=None)) - start) / cov.buckets
    for row, key in enumerate(keys):
        shares = cov.rows[key]
        for color, pick in ((FULL, lambda s: s >= 0.999), (PARTIAL, lambda s: 0 < s < 0.999)):
            spans = _runs([i for i, s in enumerate(shares) if pick(s)])
            ax.broken_barh([(start + a * w, (b - a) * w) for a, b in spans], (row - 0.4, 0.8), color=color)
    ax.set_yticks(range(len(keys)), [f"{s}  {stream}" for s, stream in keys], fontsize=7)
    ax.set_ylim(-0.6, len(keys) - 0.4)
    ax.invert_yaxis()
    ax.set_xlim(start, start + w * cov.buckets)
    locator = AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    ax.set_xlabel(f"UTC (one cell = {cov.width})")
    ax.set_title("stored data coverage")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(
        handles=[Patch(color=FULL, label="complete"), Patch(color=PARTIAL, label="partial")],
        loc="upper right",
        fontsize=7,
    )
    fig.tight_layout()
    return _save(fig, path)


def _runs(indexes: list[int]) -> list[tuple[int, int]]:
    """[2, 3, 4, 7] -> [(2, 5), (7, 8)]"""
    out: list[tuple[int, int]] = []
    for i in indexes:
        if out and out[-1][1] == i:
            out[-1] = (out[-1][0], i + 1)
        else:
            out.append((i, i + 1))
    return out
