"""Bad input to every command: a bad flag, date, symbol, interval, URL, config file or environment
value gives exactly one line on stderr, exit code 2, no traceback, and writes nothing.

Each case runs the real `python -m collector` with the test database and a live simulator (so a
command that wrongly got far enough would find an exchange to fetch from and rows to write).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from sqlalchemy import text

from collector.store.db import make_engine

CONFIGS = {
    "missing": None,
    "not-toml": "this is = not [ toml",
    "unknown-key": 'exchange_urll = "http://127.0.0.1:1"\n',
    "bad-type": 'max_retries = "many"\n',
    "bad-interval": 'kline_intervals = ["7m"]\n',
    "bad-url": 'exchange_url = "ftp://example.com"\n',
    "bad-secret-type": "api_secret = 12\n",
    "negative-timeout": "http_read_timeout = -1\n",
}
W = ["--start", "2026-01-01T00:00:00Z", "--end", "2026-01-01T01:00:00Z"]

# (id, argv after `collector`, extra environment, what stderr must mention)
CASES: list[tuple[str, list[str], dict[str, str], str]] = [
    # flags
    ("unknown-flag", ["backfill", *W, "--frobnicate"], {}, "--frobnicate"),
    ("unknown-command", ["frobnicate"], {}, "frobnicate"),
    ("missing-end", ["backfill", "--start", "2026-01-01"], {}, "--end"),
    ("run-bad-port", ["run", "--metrics-port", "70000"], {}, "metrics_port"),
    ("run-port-not-int", ["run", "--metrics-port", "ninety"], {}, "--metrics-port"),
    ("run-sim-symbols-0", ["run", "--simulate", "--sim-symbols", "0"], {}, "symbols"),
    ("simulate-bad-faults", ["simulate", "--port", "0", "--faults", "gremlins=1"], {}, "gremlins"),
    ("simulate-fault-rate", ["simulate", "--port", "0", "--faults", "5xx=2"], {}, "server_error_rate"),
    ("simulate-bad-port", ["simulate", "--port", "99999"], {}, "99999"),
    ("simulate-symbols-0", ["simulate", "--port", "0", "--symbols", "0"], {}, "symbols"),
    ("export-bad-table", ["export", "--table", "users", "-o", "{tmp}/x.csv", "--format", "csv"], {}, "users"),
    ("export-bad-format", ["export", "--table", "trades", "-o", "{tmp}/x.xml", "--format", "xml"], {}, "xml"),
    ("export-missing-output", ["export", "--table", "trades"], {}, "--output"),
    (
        "export-output-dir-missing",
        ["export", "--table", "trades", "-o", "/nonexistent/dir/x.parquet"],
        {},
        "/nonexistent/dir",
    ),
    ("log-level-flag", ["--log-level", "LOUD", "config", "show"], {}, "--log-level"),
    ("log-level-after-command", ["config", "show", "--log-level", "LOUD"], {}, "--log-level"),
    ("log-format-flag", ["--log-format", "yaml", "config", "show"], {}, "--log-format"),
    ("db-upgrade-bad-revision", ["db", "upgrade", "nosuchrev"], {}, "nosuchrev"),
    # dates
    ("start-not-a-date", ["backfill", "--start", "yesterday", "--end", "2026-01-01"], {}, "--start"),
    ("end-impossible", ["backfill", "--start", "2026-01-01", "--end", "2026-13-45"], {}, "--end"),
    ("start-after-end", ["backfill", "--start", "2026-01-02", "--end", "2026-01-01"], {}, "before"),
    ("start-equals-end", ["backfill", "--start", "2026-01-01", "--end", "2026-01-01"], {}, "before"),
    ("export-bad-start", ["export", "--table", "trades", "-o", "{tmp}/x.parquet", "--start", "soon"], {}, "--start"),
    ("verify-bad-end", ["verify", "--start", "2026-01-01", "--end", "31/12/2026"], {}, "--end"),
    # symbols and intervals
    ("backfill-unknown-symbol", ["backfill", *W, "--symbol", "NOPE-1-C"], {}, "NOPE-1-C"),
    ("backfill-empty-symbol", ["backfill", *W, "--symbol", ""], {}, "symbol"),
    ("backfill-bad-interval", ["backfill", *W, "--interval", "7m"], {}, "7m"),
    ("backfill-bad-stream", ["backfill", *W, "--streams", "klines,gossip"], {}, "gossip"),
    ("export-bad-interval", ["export", "--table", "klines", "--interval", "2x", "-o", "{tmp}/k.parquet"], {}, "2x"),
    # URLs
    ("exchange-url-scheme", ["backfill", *W, "--exchange-url", "ftp://example.com"], {}, "exchange_url"),
    ("exchange-url-no-host", ["backfill", *W, "--exchange-url", "http://"], {}, "exchange_url"),
    ("exchange-url-bad-port", ["backfill", *W, "--exchange-url", "http://127.0.0.1:99999"], {}, "port"),
    ("exchange-url-nothing-there", ["backfill", *W, "--exchange-url", "http://127.0.0.1:9"], {}, "127.0.0.1:9"),  # 75
    ("database-url-scheme", ["db", "upgrade"], {"COLLECTOR_DATABASE_URL": "mysql://u:hunter2pw@h/db"}, "mysql"),
    ("database-url-garbage", ["status"], {"COLLECTOR_DATABASE_URL": "not a url"}, "database_url"),
    (
        "database-unreachable",
        ["db", "upgrade"],  # 75
        {"COLLECTOR_DATABASE_URL": "postgresql://u:hunter2pw@127.0.0.1:9/db"},
        "127.0.0.1",
    ),
    # config files
    *[
        (
            f"config-{name}",
            ["--config", "{tmp}/" + name + ".toml", "config", "show"],
            {},
            name if name == "missing" else "",
        )
        for name in CONFIGS
    ],
    ("config-is-a-directory", ["--config", "{tmp}", "status"], {}, "directory"),
    # environment
    ("env-streams", ["run"], {"COLLECTOR_STREAMS": "klines,gossip"}, "COLLECTOR_STREAMS"),
    ("env-intervals", ["backfill", *W], {"COLLECTOR_KLINE_INTERVALS": "1m,7m"}, "COLLECTOR_KLINE_INTERVALS"),
    ("env-poll-zero", ["run"], {"COLLECTOR_TRADES_POLL_SECONDS": "0"}, "COLLECTOR_TRADES_POLL_SECONDS"),
    ("env-poll-text", ["run"], {"COLLECTOR_TRADES_POLL_SECONDS": "often"}, "COLLECTOR_TRADES_POLL_SECONDS"),
    ("env-margin", ["backfill", *W], {"COLLECTOR_WEIGHT_MARGIN": "0.9"}, "COLLECTOR_WEIGHT_MARGIN"),
    ("env-retries", ["verify"], {"COLLECTOR_MAX_RETRIES": "-1"}, "COLLECTOR_MAX_RETRIES"),
    ("env-log-level", ["status"], {"COLLECTOR_LOG_LEVEL": "CHATTY"}, "COLLECTOR_LOG_LEVEL"),
    ("env-unknown-depth", ["run"], {"COLLECTOR_DEPTH_LIMIT": "7"}, "COLLECTOR_DEPTH_LIMIT"),
    ("env-exchange-url", ["config", "show"], {"COLLECTOR_EXCHANGE_URL": "localhost:8080"}, "COLLECTOR_EXCHANGE_URL"),
    ("env-metrics-port", ["run"], {"COLLECTOR_METRICS_PORT": "-3"}, "COLLECTOR_METRICS_PORT"),
    ("env-coordination", ["run"], {"COLLECTOR_COORDINATION": "perhaps"}, "COLLECTOR_COORDINATION"),
    ("env-batch-rows", ["backfill", *W], {"COLLECTOR_BACKFILL_BATCH_ROWS": "5"}, "COLLECTOR_BACKFILL_BATCH_ROWS"),
]


@pytest.fixture(scope="module")
def sim_url() -> str:
    """A live simulator (subprocess), so a command wrongly proceeding would find data to write."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "collector", "simulate", "--port", "0", "--history-days", "0.1", "--weight-limit", "0"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for line in proc.stderr:
            m = re.search(r"JEX simulator on (http://\S+)", line)
            if m:
                yield m.group(1)
                break
        else:
            raise AssertionError("simulator did not start")
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stderr.close()


# The shared weight budget records weight actually spent at the exchange (checking a symbol costs
# some): bookkeeping of the exchange's limits, not data.
BOOKKEEPING = {"weight_budget"}


def table_rows(engine) -> dict[str, int]:
    with engine.connect() as conn:
        names = (
            conn.execute(
                text(
                    "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')"
                )
            )
            .scalars()
            .all()
        )
        return {
            n: conn.execute(text(f'SELECT count(*) FROM "{n}"')).scalar()  # noqa: S608
            for n in names
            if n not in BOOKKEEPING
        }


@pytest.mark.slow
@pytest.mark.parametrize(("argv", "env_extra", "mentions"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_no_traceback_nothing_written(
    argv, env_extra, mentions, sim_url, db_url, tmp_path
):
    for name, body in CONFIGS.items():
        if body is not None:
            (tmp_path / f"{name}.toml").write_text(body)
    engine = make_engine(db_url)
    try:
        before = table_rows(engine)
        env = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR_")}
        env.update(
            COLLECTOR_DATABASE_URL=db_url,
            COLLECTOR_API_KEY="badinput1",
            COLLECTOR_DATA_DIR=str(tmp_path / "data"),
            COLLECTOR_METRICS_PORT="0",
        )
        if "--config" not in argv:  # a config file's own exchange_url must not be overridden
            env["COLLECTOR_EXCHANGE_URL"] = sim_url
        env.update(env_extra)
        args = [a.replace("{tmp}", str(tmp_path)) for a in argv]
        proc = subprocess.run(
            [sys.executable, "-m", "collector", *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        # 2: the input must be fixed; 75 (EX_TEMPFAIL): nothing answers there, try again later
        expected = 75 if re.search(r"127\.0\.0\.1:9\b", " ".join([*argv, *env_extra.values()])) else 2
        assert proc.returncode == expected, (proc.returncode, proc.stderr[-3000:])
        assert "Traceback" not in proc.stderr
        lines = proc.stderr.splitlines()
        if "symbol" in " ".join(argv):
            # Only the exchange knows its symbols: the client's INFO line about the limits it
            # adopted may come first. Still exactly one error line.
            lines = [ln for ln in lines if not re.match(r"\d{4}-\d\d-\d\d \S+ INFO ", ln)]
        assert len(lines) == 1, proc.stderr
        assert lines[0].startswith("collector: error: "), lines[0]
        assert mentions in lines[0], (mentions, lines[0])
        assert "hunter2pw" not in proc.stderr + proc.stdout
        assert table_rows(engine) == before
    finally:
        engine.dispose()
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / "x.parquet").exists()
