"""Every command that reads, against a database without the schema or no database at all: one
line saying what to do, exit 2 (the operator's to fix), no traceback, and nothing created."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlalchemy import inspect

from collector.errors import ConfigError
from collector.store.db import make_engine

READERS = {
    "status": ["status"],
    "status --json": ["status", "--json"],
    "verify": ["verify"],
    "export": ["export", "--table", "trades", "-o", "t.parquet"],
    "plot": ["plot", "klines", "--symbol", "BTC0925CALL", "-o", "k.png"],
}


def run(args: list[str], cwd, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR_")}
    return subprocess.run(
        [sys.executable, "-m", "collector", *args],
        env={**base, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def one_error_line(done: subprocess.CompletedProcess) -> str:
    errors = [line for line in done.stderr.splitlines() if line.startswith("collector: error:")]
    assert done.returncode == 2 and len(errors) == 1 and "Traceback" not in done.stderr, done.stderr
    return errors[0]


@pytest.mark.parametrize("command", list(READERS))
def test_a_database_without_the_schema_is_one_line_and_exit_2(empty_db_url, tmp_path, command):
    done = run(READERS[command], tmp_path, COLLECTOR_DATABASE_URL=empty_db_url)
    line = one_error_line(done)
    assert "has no schema (revision none); run `collector db upgrade`" in line
    engine = make_engine(empty_db_url)
    assert inspect(engine).get_table_names() == []  # nothing created
    engine.dispose()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", list(READERS))
def test_no_embedded_database_yet_is_one_line_and_exit_2_and_none_is_made(tmp_path, command):
    data = tmp_path / "nowhere"
    done = run(READERS[command], tmp_path, COLLECTOR_DATA_DIR=str(data))
    assert "no database in" in one_error_line(done) and "collector db upgrade" in done.stderr
    assert not data.exists() and list(tmp_path.iterdir()) == []


def test_an_older_schema_says_which_revision_and_what_to_do(empty_db_url, tmp_path):
    from collector.store.migrate import upgrade

    engine = make_engine(empty_db_url)
    upgrade(engine, "0005")
    engine.dispose()
    line = one_error_line(run(["status"], tmp_path, COLLECTOR_DATABASE_URL=empty_db_url))
    assert "is at revision 0005, this collector reads" in line and "collector db upgrade" in line


def test_the_pandas_api_says_the_same(tmp_path, monkeypatch, clean_env):
    from collector.analyst import frames

    monkeypatch.setenv("COLLECTOR_DATA_DIR", str(tmp_path / "nowhere"))
    monkeypatch.setattr(frames, "_engines", {})
    with pytest.raises(ConfigError, match=r"no database in .* yet"):
        frames.trades("BTC0925CALL")
    assert not (tmp_path / "nowhere").exists()
