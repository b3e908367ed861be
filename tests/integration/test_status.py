"""status: per symbol and stream, as a table and as JSON; the coverage picture."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from collector.analyst import status
from collector.cli.commands import main
from collector.store import checkpoints
from tests.helpers.analyst_data import T0, T1, execute, populate

M = timedelta(minutes=1)
SYM = "EOS0106CALLW"


def run(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return exc.value.code


@pytest.fixture
def data(engine):
    return populate(engine)


def test_rows_times_lag_and_gaps(engine, data):
    execute(
        engine,
        "DELETE FROM klines WHERE symbol = :s AND open_time >= :a AND open_time < :b",
        s=SYM,
        a=T0 + 5 * M,
        b=T0 + 8 * M,
    )
    with engine.begin() as conn:
        checkpoints.save(conn, checkpoints.backfill_scope(T1, T1 + 60 * M), SYM, "trades")
        checkpoints.record_error(conn, checkpoints.LIVE, SYM, "trades", "", "ExchangeUnavailable: 502")
        conn.exec_driver_sql(
            "INSERT INTO job_errors (at, job, symbol, error_class, message) VALUES "
            "(%s, 'depth', %s, 'ParseError', 'bad level')",
            (T1, SYM),
        )
        conn.exec_driver_sql(
            "INSERT INTO job_errors (at, job, symbol, error_class, message) VALUES "
            "(%s, 'tickers', 'GONE', 'ExchangeRejected', 'no such symbol')",
            (T1,),
        )
    rows = {(s.symbol, s.stream, s.interval): s for s in status.collect(engine, now=T1 + 5 * M)}
    k = rows[SYM, "klines", "1m"]
    assert (k.rows, k.first, k.newest, k.open_gaps) == (117, T0, T1 - M, 3)
    assert k.lag == 5 * M  # from the newest kline's close
    t = rows[SYM, "trades", ""]
    with engine.connect() as conn:
        n, newest = conn.exec_driver_sql("SELECT count(*), max(time) FROM trades WHERE symbol = %s", (SYM,)).one()
    assert (t.rows, t.newest, t.lag, t.open_gaps) == (n, newest, T1 + 5 * M - newest, 1)
    assert t.last_error == "ExchangeUnavailable: 502"
    d = rows[SYM, "depth", ""]
    assert d.rows == 12 and d.open_gaps is None and d.last_error == "ParseError: bad level"
    assert rows["GONE", "tickers", ""].rows == 0  # failing before anything was stored still shows
    assert {s.stream for s in rows.values()} == {"klines", "trades", "depth", "tickers"}


def test_cli_json_and_table(clean_env, db_url, data, capsys):
    assert run(["--database-url", db_url, "status", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    one = next(r for r in got if r["symbol"] == SYM and r["stream"] == "klines")
    assert one["rows"] == 120 and one["first"] == "2026-01-05T11:00:00Z" and one["open_gaps"] == 0
    assert isinstance(one["lag_seconds"], float)
    assert run(["--database-url", db_url, "status"]) == 0  # the table: a line per stream
    text = capsys.readouterr().out
    assert "klines 1m" in text and "open gaps" in text and "worst lag" in text
    assert run(["--database-url", db_url, "status", "--details"]) == 0
    text = capsys.readouterr().out
    assert SYM in text and "klines 1m" in text and "open gaps" in text
    # --output: the same rows as JSON or CSV, and the collector's options after the command
    assert run(["status", "--output", "json", "--database-url", db_url]) == 0
    again = json.loads(capsys.readouterr().out)
    assert [{**r, "lag_seconds": 0} for r in again] == [{**r, "lag_seconds": 0} for r in got]  # lag: a clock
    assert run(["status", "--output", "csv", "--database-url", db_url]) == 0
    import csv
    import io

    table = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(table) == len(got) and table[0].keys() == got[0].keys()
    assert any(r["symbol"] == SYM and r["stream"] == "klines" and r["rows"] == "120" for r in table)


def test_coverage_plot(clean_env, db_url, engine, data, tmp_path, capsys):
    execute(
        engine,
        "DELETE FROM klines WHERE symbol = :s AND open_time >= :a AND open_time < :b",
        s=SYM,
        a=T0 + 30 * M,
        b=T0 + 60 * M,
    )
    cov = status.coverage(engine, buckets=24)
    shares = cov.rows[SYM, "klines 1m"]
    assert (cov.start, cov.width, cov.buckets) == (T0, 10 * M, 13)  # round cells; 13:00 holds the end
    assert shares[:3] == [1.0] * 3 and shares[3:6] == [0.0] * 3 and shares[6:12] == [1.0] * 6  # the hole
    assert cov.rows[SYM, "trades"][:12] == [1.0] * 12
    out = tmp_path / "coverage.png"
    assert run(["--database-url", db_url, "status", "--plot", str(out)]) == 0
    head = out.read_bytes()
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and 20_000 < len(head) < 2_000_000


def test_empty_database(clean_env, db_url, tmp_path, capsys):
    assert run(["--database-url", db_url, "status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert run(["--database-url", db_url, "status", "--plot", str(tmp_path / "c.png")]) == 2
    assert "nothing stored" in capsys.readouterr().err


def test_every_symbol_has_a_row_in_every_stream_filters_and_the_summary_adds_up(
    clean_env, db_url, engine, data, capsys
):
    execute(
        engine,
        "INSERT INTO option_symbols (symbol, status, listed, first_seen, last_seen) "
        "VALUES ('QUIET0106PUT', 'TRADING', true, :t, :t)",
        t=T0,
    )
    rows = status.collect(engine, now=T1)
    streams = {(r.stream, r.interval) for r in rows if r.symbol == SYM}
    quiet = {(r.stream, r.interval): r.rows for r in rows if r.symbol == "QUIET0106PUT"}
    assert quiet == dict.fromkeys(streams, 0)  # no rows anywhere, still a line in each stream

    assert run(["--database-url", db_url, "status", "--json", "--symbol", "quiet0106put", "--stream", "trades"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert [(r["symbol"], r["stream"], r["rows"]) for r in got] == [("QUIET0106PUT", "trades", 0)]
    assert run(["--database-url", db_url, "status", "--json", "--stream", "klines 1m"]) == 0
    assert {r["stream"] + " " + r["interval"] for r in json.loads(capsys.readouterr().out)} == {"klines 1m"}

    assert run(["--database-url", db_url, "status", "--json", "--summary"]) == 0
    summary = {r["stream"]: r for r in json.loads(capsys.readouterr().out)}
    with engine.connect() as conn:
        trades = conn.exec_driver_sql("SELECT count(*), count(DISTINCT symbol) FROM trades").one()
    assert (summary["trades"]["rows"], summary["trades"]["with_rows"]) == tuple(trades)
    assert summary["trades"]["symbols"] == len({r.symbol for r in rows if r.stream == "trades"})

    assert run(["--database-url", db_url, "status", "--symbol", "NOPE"]) == 2
    assert "nothing stored for NOPE" in capsys.readouterr().err


def test_coverage_draws_klines_at_their_interval_gaps_in_red_and_quiet_apart(clean_env, db_url, engine, data, tmp_path):
    """A 1h kline fills the hour's cells; klines deleted from the middle are a gap (what verify
    finds); a symbol with no trades in a range a backfill proved complete is quiet, not missing;
    many rows are drawn on pages."""
    from sqlalchemy import select

    from collector.analyst import plots
    from collector.store.models import KlineRow

    t = KlineRow.__table__
    before = plots.coverage(status.coverage(engine, buckets=24), tmp_path / "before.png", rows_per_page=5)
    with engine.begin() as conn:
        row = (
            conn.execute(select(t).where(t.c.symbol == SYM, t.c.interval == "1m", t.c.open_time == T0)).mappings().one()
        )
        conn.execute(
            t.insert().values({**row, "interval": "1h", "close_time": T0 + 60 * M - timedelta(milliseconds=1)})
        )
        conn.exec_driver_sql(
            "INSERT INTO backfill_coverage (symbol, stream, interval, covered) "
            "VALUES ('QUIET0106PUT', 'trades', '', tstzmultirange(tstzrange(%s, %s)))",
            (T0, T1),
        )
    execute(
        engine,
        "DELETE FROM klines WHERE symbol = :s AND interval = '1m' AND open_time >= :a AND open_time < :b",
        s=SYM,
        a=T0 + 30 * M,
        b=T0 + 60 * M,
    )
    cov = status.coverage(engine, buckets=24)
    assert cov.width == 10 * M
    assert cov.rows[SYM, "klines 1h"][:7] == [1.0] * 6 + [0.0]  # the hour's six cells, not a sliver
    assert cov.gaps[SYM, "klines 1m"][:7] == [False] * 3 + [True] * 3 + [False]
    assert not any(cov.gaps.get((SYM, "klines 1h"), [False] * 6)[:6])  # the stored hour is whole
    assert all(cov.known["QUIET0106PUT", "trades"][:12]) and ("QUIET0106PUT", "trades") not in cov.rows
    assert plots._kind(0.0, True, False) == plots.QUIET != plots._kind(0.0, False, True) == plots.GAP

    pages = plots.coverage(cov, tmp_path / "cov.png", rows_per_page=5)
    keys = set(cov.rows) | set(cov.gaps) | {k for k, v in cov.known.items() if any(v)}
    assert [p.name for p in pages] == [f"cov-{n}of{len(pages)}.png" for n in range(1, len(pages) + 1)]
    assert len(pages) == -(-len(keys) // 5) > 1
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pages)
    # and in the pictures: the gap's three cells drawn red, the quiet row's twelve grey, where the
    # pictures before either had neither (beyond the legend's swatch on each page)
    for colour in (plots.GAP, plots.QUIET):
        assert coloured_pixels(pages, colour) - coloured_pixels(before, colour) > 2_000, colour


def coloured_pixels(pages, colour: str) -> int:
    """Pixels of exactly ``colour`` (anti-aliased edges aside) over every page."""
    import matplotlib.image
    import numpy as np
    from matplotlib.colors import to_rgb

    rgb = np.array(to_rgb(colour))
    return sum(int((abs(matplotlib.image.imread(p)[..., :3] - rgb).max(axis=-1) < 0.01).sum()) for p in pages)
