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
FULL, PARTIAL, QUIET, GAP = "#2e7d32", "#f9a825", "#b0bec5", "#d32f2f"


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
    closed = df["is_closed"].to_numpy(dtype=bool) if "is_closed" in df else [True] * len(df)
    faces = [col if done else "white" for col, done in zip(colors, closed, strict=True)]
    ax.bar(x, heights, width, bottom=bottoms, color=faces, edgecolor=colors, linewidth=0.8)
    axv.bar(x, v, width, color=faces, edgecolor=colors, linewidth=0.5)
    for xi, hi, done in zip(x, h, closed, strict=True):
        if not done:  # the current kline: its values change until it closes
            ax.annotate("open", (xi, hi), textcoords="offset points", xytext=(0, 4), ha="center", fontsize=8)
    ax.set_title((title or "klines") + ("  (hollow: open kline, not final)" if not all(closed) else ""))
    ax.set_ylabel("price (quote asset)")
    axv.set_ylabel("volume (contracts)")
    ax.grid(alpha=0.3)
    axv.grid(alpha=0.3)
    locator = AutoDateLocator()
    axv.xaxis.set_major_locator(locator)
    axv.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    ax.tick_params(labelbottom=False)
    axv.set_xlabel("open time, UTC")
    return _save(fig, path)


ROWS_PER_PAGE = 60  # (symbol, stream) rows on one coverage picture: readable at its default size


def coverage(cov: Coverage, path: str | Path, *, rows_per_page: int = ROWS_PER_PAGE) -> list[Path]:
    """One row per (symbol, stream): green where stored, amber where partly, grey-blue where known
    complete without rows (quiet), red where `collector verify` finds a real gap, blank where
    nothing is known. More rows than ``rows_per_page`` are drawn on pages: ``NAME-1of3.png``..."""
    keys = sorted(set(cov.rows) | set(cov.gaps) | {k for k, cells in cov.known.items() if any(cells)})
    pages = [keys[i : i + rows_per_page] for i in range(0, len(keys), rows_per_page)] or [[]]
    out = Path(path)
    paths = []
    for n, page in enumerate(pages, 1):
        target = out if len(pages) == 1 else out.with_name(f"{out.stem}-{n}of{len(pages)}{out.suffix}")
        title = "stored data coverage" + (
            f" ({n} of {len(pages)}: {page[0][0]} to {page[-1][0]})" if len(pages) > 1 else ""
        )
        paths.append(_coverage_page(cov, page, target, title))
    return paths


def _coverage_page(cov: Coverage, keys: list[tuple[str, str]], path: Path, title: str) -> Path:
    fig = Figure(figsize=(12, max(3.5, 0.2 * len(keys) + 1.8)))
    ax = fig.add_subplot()
    start = date2num(cov.start.astimezone(UTC).replace(tzinfo=None))
    w = (date2num(cov.end.astimezone(UTC).replace(tzinfo=None)) - start) / cov.buckets
    for row, key in enumerate(keys):
        shares = cov.rows.get(key, [0.0] * cov.buckets)
        known = cov.known.get(key, [False] * cov.buckets)
        gaps = cov.gaps.get(key, [False] * cov.buckets)
        kinds = [_kind(shares[i], known[i], gaps[i]) for i in range(cov.buckets)]
        for color in (FULL, PARTIAL, QUIET, GAP):
            spans = _runs([i for i, k in enumerate(kinds) if k == color])
            ax.broken_barh([(start + a * w, (b - a) * w) for a, b in spans], (row - 0.4, 0.8), color=color)
    ax.set_yticks(range(len(keys)), [f"{s}  {stream}" for s, stream in keys], fontsize=7)
    ax.set_ylim(-0.6, max(len(keys), 1) - 0.4)
    ax.invert_yaxis()
    ax.set_xlim(start, start + w * cov.buckets)
    locator = AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    ax.set_xlabel(f"time, UTC (one cell = {cov.width})")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    fig.legend(
        handles=[
            Patch(color=FULL, label="stored"),
            Patch(color=PARTIAL, label="partly stored"),
            Patch(color=QUIET, label="complete, no rows (quiet)"),
            Patch(color=GAP, label="gap (collector verify)"),
        ],
        loc="upper center",
        ncol=4,
        fontsize=8,
        frameon=False,
        bbox_to_anchor=(0.5, 1.0),
    )
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    return _save(fig, path)


def _kind(share: float, known: bool, gap: bool) -> str | None:
    """The colour of a cell: a real gap wins; then stored, partly stored, quiet; else nothing."""
    if gap:
        return GAP
    if share >= 0.999:
        return FULL
    if share > 0:
        return PARTIAL
    return QUIET if known else None


def _runs(indexes: list[int]) -> list[tuple[int, int]]:
    """[2, 3, 4, 7] -> [(2, 5), (7, 8)]"""
    out: list[tuple[int, int]] = []
    for i in indexes:
        if out and out[-1][1] == i:
            out[-1] = (out[-1][0], i + 1)
        else:
            out.append((i, i + 1))
    return out
