"""Small files in the data directory that say what a running command offers the others (the
demo's simulator URL, the TCP port `db serve` forwards), with its process id: a record whose process
is gone is ignored, and only the process that wrote a record removes it."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any


def write(path: Path, **fields: Any) -> Path:
    """Record ``fields`` for this process (removed by ``forget``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**fields, "pid": os.getpid()}))
    return path


def forget(path: Path) -> None:
    """Remove the record if this process wrote it."""
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()


def read(path: Path, field: str) -> Any | None:
    """The record's ``field`` while the process that wrote it is alive, else None."""
    try:
        found = json.loads(path.read_text())
        pid, value = int(found["pid"]), found[field]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, another user's
    return value
