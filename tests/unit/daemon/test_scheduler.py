"""The scheduler's triggers: klines jobs run just after a minute begins, whatever the phase."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from collector.daemon.scheduler import KLINES_AFTER_MINUTE, _trigger


def test_klines_jobs_run_just_after_the_minute_other_jobs_at_their_interval():
    now = datetime.now(UTC)
    fire = _trigger("klines 1m", 60.0).get_next_fire_time(None, now)
    assert fire is not None and fire.second == KLINES_AFTER_MINUTE and fire.microsecond == 0
    assert timedelta(0) < fire - now <= timedelta(seconds=60 + KLINES_AFTER_MINUTE)
    later = _trigger("klines 1m", 60.0).get_next_fire_time(fire, fire + timedelta(seconds=1))
    assert later == fire + timedelta(seconds=60)  # and every minute after
    quarter = _trigger("klines 1h", 900.0).get_next_fire_time(fire, fire + timedelta(seconds=1))
    assert quarter is not None and quarter.second == KLINES_AFTER_MINUTE
    depth = _trigger("depth", 60.0)
    assert depth.interval == timedelta(seconds=60)
