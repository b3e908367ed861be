"""The backfill's window flags: absolute, relative to now, from where the stored data ends, and
every combination that describes no window (one line, ConfigError)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from collector.cli.backfill import NOW_SETTLE, Window, resolve_window
from collector.errors import ConfigError

NOW = datetime(2026, 3, 4, 5, 6, 7, 890_000, tzinfo=UTC)
STOP = datetime(2026, 3, 4, 5, 5, 57, tzinfo=UTC)  # now less NOW_SETTLE, whole seconds


def window(start=None, end=None, since=None, days=None, until_now=False) -> Window:
    return resolve_window(start, end, since, days, until_now, NOW)


def test_relative_windows_end_now_less_the_settle():
    assert (NOW - NOW_SETTLE).replace(microsecond=0) == STOP
    assert window(days=7) == Window(STOP - timedelta(days=7), STOP, True)
    assert window(days=0.5) == Window(STOP - timedelta(hours=12), STOP, True)
    assert window(since="2026-03-01T12:00") == Window(datetime(2026, 3, 1, 12, tzinfo=UTC), STOP, True)
    assert window(since="2026-03-01T12:00+02:00") == Window(datetime(2026, 3, 1, 10, tzinfo=UTC), STOP, True)
    assert window(start="2026-03-02", until_now=True) == Window(datetime(2026, 3, 2, tzinfo=UTC), STOP, True)
    # --until-now alone: from where each symbol's stored data ends
    assert window(until_now=True) == Window(None, STOP, True)


def test_an_absolute_window_is_as_given():
    got = window(start="2026-03-01", end="2026-03-02T06:00Z")
    assert got == Window(datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 2, 6, tzinfo=UTC), False)


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        ({}, "no window"),
        ({"start": "2026-03-01"}, "--start needs --end"),
        ({"end": "2026-03-01"}, "--end needs --start"),
        ({"start": "2026-03-01", "days": 2}, "both say where the window starts"),
        ({"since": "2026-03-01", "days": 2}, "both say where the window starts"),
        ({"days": 2, "end": "2026-03-03"}, "--end cannot be combined"),
        ({"until_now": True, "end": "2026-03-03"}, "--end cannot be combined"),
        ({"days": 0}, "--days must be more than 0"),
        ({"days": -1}, "--days must be more than 0"),
        ({"since": "2026-03-05"}, "not before now"),
        ({"start": "2026-03-02", "end": "2026-03-01"}, "must be before --end"),
        ({"since": "yesterday"}, "--since"),
    ],
)
def test_flags_that_describe_no_window_say_why_in_one_line(flags, says):
    with pytest.raises(ConfigError) as refused:
        window(**flags)
    assert says in str(refused.value) and "\n" not in str(refused.value)
