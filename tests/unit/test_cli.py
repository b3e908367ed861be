"""The command line's conventions: --version, -h, completion, choices, the environment variable in
each option's help, the collector's options after the command too, one --output."""

from __future__ import annotations

import pytest
import typer

from collector.cli.commands import app, global_options_first, main


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    return exc.value.code or 0, out, err


def test_version_and_short_help(capsys):
    code, out, _ = run(["--version"], capsys)
    assert code == 0 and out.startswith("collector ")
    for argv in (["-h"], ["status", "-h"], ["db", "-h"], ["db", "upgrade", "-h"], ["export", "-h"]):
        code, out, _ = run(argv, capsys)
        assert code == 0 and "Usage:" in out, argv


def test_help_shows_choices_environment_variables_and_completion(capsys):
    _, top, _ = run(["-h"], capsys)
    for name in ("DATABASE_URL", "EXCHANGE_URL", "DATA_DIR", "LOG_LEVEL", "LOG_FORMAT"):
        assert f"COLLECTOR_{name}" in top.replace("\n", " ").replace("  ", ""), name
    assert "debug|info|warning|error" in top and "text|json" in top
    assert "--install-completion" in top and "--show-completion" in top
    _, export, _ = run(["export", "-h"], capsys)
    assert "klines|trades|tickers_24hr|depth" in export and "parquet|csv" in export
    _, status, _ = run(["status", "-h"], capsys)
    assert "table|json|csv" in status


@pytest.mark.parametrize(
    ("given", "parsed"),
    [
        (["status", "--database-url", "X"], ["--database-url", "X", "status"]),
        (["status", "--log-level=DEBUG", "--json"], ["--log-level=DEBUG", "status", "--json"]),
        (["db", "upgrade", "--data-dir", "/d", "head"], ["--data-dir", "/d", "db", "upgrade", "head"]),
        (
            ["--config", "c.toml", "verify", "--log-format", "json"],
            ["--log-format", "json", "--config", "c.toml", "verify"],
        ),
        (["run", "--exchange-url", "http://x"], ["run", "--exchange-url", "http://x"]),  # run's own option
        (["symbols", "--exchange-url", "http://x"], ["symbols", "--exchange-url", "http://x"]),
        (
            ["export", "--table", "trades", "--", "--database-url"],
            ["export", "--table", "trades", "--", "--database-url"],
        ),
        (["frobnicate", "--database-url", "X"], ["frobnicate", "--database-url", "X"]),  # left to the parser
    ],
)
def test_the_collectors_options_may_come_after_the_command(given, parsed):
    assert global_options_first(typer.main.get_command(app), given) == parsed
