"""What every command module shares: the CLI state, database opening, input parsing, the console.

Command modules import this, never ``collector.cli.commands`` (which imports them to register them).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, overload

import typer
from rich.console import Console

from collector.config import Settings, load_settings
from collector.errors import ConfigError
from collector.logs import register_secret, setup_logging


class LogLevel(enum.StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


class LogFormat(enum.StrEnum):
    text = "text"
    json = "json"


class Output(enum.StrEnum):
    """How a command that prints data prints it."""

    table = "table"
    json = "json"
    csv = "csv"


OutputOpt = Annotated[Output, typer.Option("--output", help="How to print: table, json or csv.")]


def write_csv(rows: list[dict[str, Any]]) -> None:
    """Rows (dicts with the same keys) as CSV with a header on stdout."""
    import csv
    import sys

    if not rows:
        return
    writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)


# Messages for the operator go to stderr; stdout is left for data (tables, JSON, exports).
console = Console(stderr=True, soft_wrap=True)


@dataclass
class State:
    """What the top-level options said; Settings are built on first use, not at import."""

    config_file: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    _settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config_file, self.overrides)
            if self._settings.exchange_url == Settings.model_fields["exchange_url"].default:
                from collector.cli.demo import recorded_url

                demo = recorded_url(self._settings.data_dir)
                if demo is not None and demo != self._settings.exchange_url:
                    console.print(f"[dim]exchange: the demo's simulator at {demo} (collector run --simulate)[/dim]")
                    self._settings = self._settings.model_copy(update={"exchange_url": demo})
            s = self._settings
            for secret in (s.api_key, s.api_secret):
                register_secret(secret.get_secret_value() if secret else None)
            if s.database_url:
                from sqlalchemy.engine import make_url

                register_secret(make_url(s.database_url).password)
            setup_logging(s.log_level, s.log_format)
        return self._settings


def state(ctx: typer.Context) -> State:
    return ctx.ensure_object(State)


def settings(ctx: typer.Context, **flag_overrides: Any) -> Settings:
    """Settings for this command; a command's own flags (non-None) override everything."""
    st = state(ctx)
    flags = {k: v for k, v in flag_overrides.items() if v is not None}
    if flags:
        st.overrides.update(flags)
        st._settings = None
    return st.settings


def open_db(ctx: typer.Context, *, reads: bool = False, **kwargs: Any):
    """Open the configured database (embedded when no URL is set), announcing where it is.
    ``reads``: the command only reads what is stored: an embedded database that does not exist is
    not created, and one without the current schema is one line and exit 2, not a traceback."""
    from collector.store.db import open_database

    opener = open_database
    if reads:
        from collector.store.migrate import open_for_reading

        opener = open_for_reading
    return opener(
        state(ctx).settings.database_url,
        state(ctx).settings.data_dir,
        announce=lambda m: console.print(f"[dim]{m}[/dim]"),
        **kwargs,
    )


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived while a command ran (``signum``); what was committed stays."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by signal {signum}")
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # 130 for SIGINT, 143 for SIGTERM, as shells report them


def run_interruptible(coro: Any) -> Any:
    """``asyncio.run(coro)``, with SIGINT and SIGTERM cancelling it: then ``Interrupted`` is raised
    once it has wound down (transactions already handed to the database complete first)."""
    import asyncio
    import signal

    async def main() -> Any:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        got: list[int] = []

        def on_signal(signum: int) -> None:
            if not got:
                got.append(signum)
                task.cancel()

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, on_signal, signum)
        try:
            return await coro
        except asyncio.CancelledError:
            if got:
                raise Interrupted(got[0]) from None
            raise

    return asyncio.run(main())


def parse_time(value: str, option: str) -> datetime:
    """ISO 8601 → aware UTC datetime; a time without offset is UTC. Bad input is a ConfigError."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{option}: {value!r} is not an ISO 8601 time (e.g. 2026-01-31T12:00:00Z)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


@overload
def parse_window(start: str, end: str) -> tuple[datetime, datetime]: ...
@overload
def parse_window(start: str | None, end: str | None) -> tuple[datetime | None, datetime | None]: ...


def parse_window(start: str | None, end: str | None) -> tuple[datetime | None, datetime | None]:
    """``--start``/``--end`` as [start, end) in UTC; either may be left open (None)."""
    s = parse_time(start, "--start") if start else None
    e = parse_time(end, "--end") if end else None
    if s is not None and e is not None and s >= e:
        raise ConfigError(f"--start ({s.isoformat()}) must be before --end ({e.isoformat()})")
    return s, e
