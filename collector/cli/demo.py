"""Where the demo's simulator listens, for the other commands: `collector run --simulate` records
its exchange URL in the data directory while it runs, and a command whose exchange URL is the
default one uses the recorded URL instead (so `collector symbols`, `status`, `verify --repair` and a
second terminal just work beside the demo)."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

RECORD = "simulator.json"


def record(data_dir: Path, url: str) -> Path:
    """Say where this process's simulator listens (removed by ``forget``)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / RECORD
    path.write_text(json.dumps({"url": url, "pid": os.getpid()}))
    return path


def forget(data_dir: Path) -> None:
    path = data_dir / RECORD
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()


def recorded_url(data_dir: Path) -> str | None:
    """The URL of a demo simulator running now (its process alive), else None."""
    try:
        found = json.loads((data_dir / RECORD).read_text())
        pid, url = int(found["pid"]), str(found["url"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, another user's
    return url
