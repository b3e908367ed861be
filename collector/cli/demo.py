"""Where the demo's simulator listens, for the other commands: `collector run --simulate` records
its exchange URL in the data directory while it runs, and a command whose exchange URL is the
default one uses the recorded URL instead (so `collector symbols`, `status`, `verify --repair` and a
second terminal just work beside the demo)."""

from __future__ import annotations

from pathlib import Path

from collector.cli import records

RECORD = "simulator.json"


def record(data_dir: Path, url: str) -> Path:
    """Say where this process's simulator listens (removed by ``forget``)."""
    return records.write(data_dir / RECORD, url=url)


def forget(data_dir: Path) -> None:
    records.forget(data_dir / RECORD)


def recorded_url(data_dir: Path) -> str | None:
    """The URL of a demo simulator running now (its process alive), else None."""
    url = records.read(data_dir / RECORD, "url")
    return None if url is None else str(url)
