"""Showing a backfill: rich progress bars on a terminal, plain log lines elsewhere, a summary table."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Column, Table

from collector.backfill.estimate import DryRun
from collector.backfill.plan import Task
from collector.backfill.run import BackfillSummary

log = logging.getLogger(__name__)
MAX_ROWS_SHOWN = 12  # active tasks shown under the overall bar; the rest are counted in it
WIDE = 110  # columns from which the range covered and the weight are shown on each line


def _covered(task: Task) -> str:
    if task.complete:
        return "complete"
    if task.covered_until is None:
        return "-"
    return task.covered_until.strftime("%Y-%m-%d %H:%M")


class RichReporter:
    """An overall bar plus one line per running task: rows, range covered, weight, ETA."""

    def __init__(self, console: Console) -> None:
        # Built from columns, so that the line fits the terminal: the name gives way first (cut
        # with an ellipsis), and a narrow terminal drops the range and weight columns.
        wide = console.width >= WIDE
        columns = [
            SpinnerColumn(),
            TextColumn("{task.description}", table_column=Column(no_wrap=True, overflow="ellipsis", ratio=1)),
            BarColumn(bar_width=16 if wide else 10),
            TextColumn("{task.percentage:>5.1f}%"),
            TextColumn("{task.fields[rows]:>9,} rows"),
            *(
                [
                    TextColumn("to {task.fields[covered]}", table_column=Column(no_wrap=True)),
                    TextColumn("w {task.fields[weight]:>6,}"),
                ]
                if wide
                else []
            ),
            TimeRemainingColumn(),
        ]
        self.progress = Progress(*columns, console=console, transient=False, expand=True)
        self._ids: dict[int, TaskID] = {}
        self._overall: TaskID | None = None
        self._preparing: TaskID | None = None
        self.tasks: Sequence[Task] = ()

    def preparing(self) -> None:
        """Shown from the first second: the exchange and the store are consulted before any task."""
        self.progress.start()
        self._preparing = self.progress.add_task(
            "checking the window with the exchange and the store", total=None, rows=0, covered="", weight=0
        )

    def started(self, tasks: Sequence[Task]) -> None:
        self.tasks = tasks
        if self._preparing is not None:
            self.progress.remove_task(self._preparing)
            self._preparing = None
        self.progress.start()
        self._overall = self.progress.add_task("all", total=len(tasks), rows=0, covered="", weight=0)

    def _line(self, task: Task) -> None:
        key = id(task)
        if key not in self._ids:
            visible = sum(1 for i in self._ids.values() if self.progress.tasks[i].visible)
            self._ids[key] = self.progress.add_task(
                task.name, total=1.0, rows=0, covered="-", weight=0, visible=visible < MAX_ROWS_SHOWN
            )
        self.progress.update(
            self._ids[key], completed=task.fraction, rows=task.rows, covered=_covered(task), weight=task.cost.weight
        )

    def updated(self, task: Task) -> None:
        self._line(task)
        self._refresh_overall()

    def finished(self, task: Task) -> None:
        if id(task) in self._ids:
            self.progress.update(self._ids[id(task)], visible=False)
        self._refresh_overall()
        if all(t.done or t.skipped for t in self.tasks):
            self.progress.stop()

    def close(self) -> None:
        """Stop drawing (the run ended early)."""
        self.progress.stop()

    def _refresh_overall(self) -> None:
        if self._overall is None:
            return
        finished = sum(1 for t in self.tasks if t.done or t.skipped)
        self.progress.update(
            self._overall,
            completed=finished,
            rows=sum(t.rows for t in self.tasks),
            covered=f"{finished}/{len(self.tasks)} tasks",
            weight=sum(t.cost.weight for t in self.tasks),
        )


class LogReporter:
    """When stdout is not a terminal: a line per finished task and a heartbeat every ``every`` s."""

    def __init__(self, every: float = 10.0) -> None:
        self.every = every
        self._last = time.monotonic()
        self.tasks: Sequence[Task] = ()

    def preparing(self) -> None:
        """Nothing: the first line is the plan's (a failure to start is then the only line)."""

    def started(self, tasks: Sequence[Task]) -> None:
        self.tasks = tasks
        skipped = sum(t.skipped for t in tasks)
        log.info("backfill: %d tasks (%d already stored whole)", len(tasks), skipped)

    def updated(self, task: Task) -> None:
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            done = sum(1 for t in self.tasks if t.done or t.skipped)
            log.info(
                "backfill: %d/%d tasks done, %d rows, weight %d",
                done,
                len(self.tasks),
                sum(t.rows for t in self.tasks),
                sum(t.cost.weight for t in self.tasks),
            )

    def close(self) -> None:
        pass

    def finished(self, task: Task) -> None:
        if task.skipped:
            return
        state = (
            "failed: " + task.error
            if task.error
            else ("refused: " + task.refused if task.refused else ("complete" if task.complete else "incomplete"))
        )
        log.info(
            "backfill %s: %d rows, %d requests, weight %d, %s",
            task.name,
            task.rows,
            task.cost.requests,
            task.cost.weight,
            state,
        )


def summary_table(summary: BackfillSummary) -> Table:
    table = Table(title="backfill summary", show_header=True)
    table.add_column("what")
    table.add_column("value", justify="right")
    written = summary.written
    for stream, rows in sorted(summary.rows.items()):
        new = written.get(stream, 0)
        table.add_row(f"{stream} rows fetched", f"{rows:,}")
        table.add_row(f"{stream} rows new or changed", f"{new:,}")
        table.add_row(f"{stream} rows already stored", f"{rows - new:,}")
    skipped = sum(t.skipped for t in summary.tasks)
    table.add_row("tasks", f"{len(summary.tasks)} ({skipped} windows already stored whole, not asked for)")
    table.add_row("requests", f"{summary.requests:,}")
    table.add_row("weight", f"{summary.weight:,}")
    table.add_row("retries", f"{summary.retries:,}")
    table.add_row("wall time", f"{summary.wall_seconds:,.1f} s")
    if summary.incomplete:
        table.add_row("incomplete (window reaches past the exchange's clock)", str(len(summary.incomplete)))
    if summary.failed:
        table.add_row("failed", ", ".join(t.name for t in summary.failed))
    for symbol, reason in sorted(summary.refused.items()):
        named = " (named with --symbol)" if symbol in summary.named_refused else ""
        table.add_row(f"refused by the exchange: {symbol}{named}", reason)
    return table


def dry_run_table(result: DryRun) -> Table:
    """What `backfill --dry-run` would do: a line per stream, then the totals."""
    table = Table(title="backfill plan (dry run: nothing fetched or stored)", show_header=True)
    for name in ("stream", "tasks", "already stored", "rows (est.)", "requests", "weight"):
        table.add_column(name, justify="left" if name == "stream" else "right")
    streams = sorted({t.stream + (" " + t.interval if t.interval else "") for t in result.tasks})
    for stream in streams:
        mine = [e for e in result.estimates if _label(e.task) == stream]
        skipped = sum(1 for t in result.tasks if t.skipped and _label(t) == stream)
        table.add_row(
            stream,
            f"{len(mine):,}",
            f"{skipped:,}",
            f"{sum(e.rows for e in mine):,}",
            f"{sum(e.requests for e in mine):,}",
            f"{sum(e.weight for e in mine):,}",
        )
    seconds = result.seconds
    took = "unknown (no limit announced)" if seconds is None else f"{seconds / 60:,.1f} min at the weight limit"
    table.add_row("total", f"{len(result.estimates):,}", "", "", f"{result.requests:,}", f"{result.weight:,}")
    table.caption = f"time: {took}"
    return table


def _label(task: Task) -> str:
    return task.stream + (" " + task.interval if task.interval else "")
