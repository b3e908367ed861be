"""plot klines: a real PNG of plausible size from stored klines; bad input is exit 2."""

from __future__ import annotations

import struct
from datetime import timedelta

import pytest

from collector.analyst import frames as analysis
from collector.analyst import plots
from collector.cli.commands import main
from collector.errors import ConfigError
from tests.helpers.analyst_data import T0, populate

SYM = "EOS0106CALLW"


def run(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return exc.value.code


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_cli_draws_candles(clean_env, db_url, engine, tmp_path, capsys):
    populate(engine, symbols=[SYM], snapshots=False)
    out = tmp_path / "candles.png"
    assert (
        run(
            [
                "--database-url",
                db_url,
                "plot",
                "klines",
                "--symbol",
                SYM,
                "--start",
                "2026-01-05T11:00Z",
                "--end",
                "2026-01-05T12:00Z",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    data = out.read_bytes()
    assert png_size(data) == (1200, 700)
    assert 30_000 < len(data) < 3_000_000
    assert "60 klines drawn" in capsys.readouterr().err


def test_plain_candles_from_a_frame(engine, tmp_path):
    populate(engine, symbols=[SYM], snapshots=False)
    df = analysis.klines(SYM, "1m", T0, T0 + timedelta(minutes=5), engine=engine, decimals=True)
    out = plots.candles(df, tmp_path / "five.png", title="five")  # Decimal columns are fine too
    assert png_size(out.read_bytes()) == (1200, 700)


def test_bad_input(clean_env, db_url, engine, tmp_path, capsys):
    populate(engine, symbols=[SYM], snapshots=False)
    base = ["--database-url", db_url, "plot", "klines", "-o", str(tmp_path / "x.png")]
    assert run([*base, "--symbol", "NOPE"]) == 2
    assert "no 1m klines stored for 'NOPE'" in capsys.readouterr().err
    assert run([*base, "--symbol", SYM, "--interval", "7m"]) == 2
    assert run([*base, "--symbol", SYM, "--start", "yesterday"]) == 2
    assert "--start" in capsys.readouterr().err
    with pytest.raises(ConfigError):
        plots.candles(analysis.klines(SYM, "1m", T0, T0, engine=engine), tmp_path / "y.png")
    assert list(tmp_path.iterdir()) == []
