from __future__ import annotations

from datetime import UTC, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bot.timewindows import DailyWindow, next_allowed

STOCKHOLM = ZoneInfo("Europe/Stockholm")
QUIET = DailyWindow(time(20), time(9))


PARSE_OK: list[tuple[str, time, time]] = [
    ("20:00-09:00", time(20), time(9)),
    ("10:00–18:00", time(10), time(18)),
    ("10:00—18:00", time(10), time(18)),
    (" 08:30 - 16:45 ", time(8, 30), time(16, 45)),
    ("9-17", time(9), time(17)),
    ("9.30-17", time(9, 30), time(17)),
    ("18:00-24:00", time(18), time(0)),
    ("00:00-06:00", time(0), time(6)),
    ("23:59-00:01", time(23, 59), time(0, 1)),
]


@pytest.mark.parametrize(("text", "start", "end"), PARSE_OK)
def test_parse(text: str, start: time, end: time) -> None:
    assert DailyWindow.parse(text) == DailyWindow(start, end)


PARSE_BAD: list[tuple[str, str]] = [
    ("", "not a time window"),
    ("20:00", "not a time window"),
    ("evening", "not a time window"),
    ("9-17-18", "not a time window"),
    ("25:00-09:00", "not a time of day"),
    ("10:60-11:00", "not a time of day"),
    ("24:00-09:00", "not a time of day"),
    ("09:00-24:30", "not a time of day"),
    ("09:00-09:00", "the same time"),
    ("00:00-24:00", "the same time"),
    ("9:5-10", "not a time window"),
]


@pytest.mark.parametrize(("text", "message"), PARSE_BAD)
def test_parse_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DailyWindow.parse(text)


def test_constructor_rejects_empty_and_aware_windows() -> None:
    with pytest.raises(ValueError, match="must differ"):
        DailyWindow(time(9), time(9))
    with pytest.raises(ValueError, match="naive"):
        DailyWindow(time(9, tzinfo=UTC), time(10))


def test_str_round_trips() -> None:
    for text in ("20:00-09:00", "09:30-17:00", "18:00-00:00"):
        assert str(DailyWindow.parse(text)) == text
        assert DailyWindow.parse(str(DailyWindow.parse(text))) == DailyWindow.parse(text)


CONTAINS: list[tuple[str, time, bool]] = [
    # wraps midnight
    ("20:00-09:00", time(19, 59, 59), False),
    ("20:00-09:00", time(20), True),
    ("20:00-09:00", time(23, 59, 59), True),
    ("20:00-09:00", time(0), True),
    ("20:00-09:00", time(8, 59, 59, 999999), True),
    ("20:00-09:00", time(9), False),
    ("20:00-09:00", time(12), False),
    # same day
    ("10:00-18:00", time(9, 59), False),
    ("10:00-18:00", time(10), True),
    ("10:00-18:00", time(17, 59, 59), True),
    ("10:00-18:00", time(18), False),
    # to midnight
    ("18:00-24:00", time(23, 59, 59), True),
    ("18:00-24:00", time(0), False),
    # from midnight
    ("00:00-06:00", time(0), True),
    ("00:00-06:00", time(6), False),
    # aware and folded times compare by wall clock
    ("10:00-18:00", time(12, tzinfo=UTC), True),
    ("10:00-18:00", time(10, fold=1), True),
]


@pytest.mark.parametrize(("window", "local", "expected"), CONTAINS)
def test_contains(window: str, local: time, expected: bool) -> None:
    assert DailyWindow.parse(window).contains(local) is expected


# (label, now, quiet, allowed, expected): times ending in Z are UTC, the rest Stockholm local time
# (UTC+1 in winter, UTC+2 in summer).
NEXT: list[tuple[str, str, str | None, str | None, str]] = [
    ("no windows", "2026-06-01T03:00", None, None, "2026-06-01T03:00"),
    ("daytime", "2026-06-01T12:00", "20:00-09:00", None, "2026-06-01T12:00"),
    ("quiet starts", "2026-06-01T20:00", "20:00-09:00", None, "2026-06-02T09:00"),
    ("late evening", "2026-06-01T23:30", "20:00-09:00", None, "2026-06-02T09:00"),
    ("after midnight", "2026-06-02T00:10", "20:00-09:00", None, "2026-06-02T09:00"),
    ("last quiet instant", "2026-06-01T08:59:59.5", "20:00-09:00", None, "2026-06-01T09:00"),
    ("quiet ends", "2026-06-01T09:00", "20:00-09:00", None, "2026-06-01T09:00"),
    ("last open second", "2026-06-01T19:59:59", "20:00-09:00", None, "2026-06-01T19:59:59"),
    ("same-day quiet", "2026-06-01T12:30", "12:00-13:00", None, "2026-06-01T13:00"),
    # spring forward 2026-03-29: 02:00 CET -> 03:00 CEST
    ("spring evening", "2026-03-28T20:00Z", "20:00-09:00", None, "2026-03-29T07:00Z"),
    ("spring night", "2026-03-29T00:30Z", "20:00-09:00", None, "2026-03-29T07:00Z"),
    ("quiet ends in gap", "2026-03-29T00:30Z", "01:00-02:30", None, "2026-03-29T01:00Z"),
    ("quiet starts in gap", "2026-03-29T00:59:30Z", "02:30-04:00", None, "2026-03-29T00:59:30Z"),
    ("quiet after gap", "2026-03-29T01:00Z", "02:30-04:00", None, "2026-03-29T02:00Z"),
    ("allowed in gap", "2026-03-29T00:30Z", None, "02:00-02:30", "2026-03-30T00:00Z"),
    ("allowed over gap", "2026-03-29T00:30Z", None, "02:30-03:30", "2026-03-29T01:00Z"),
    # fall back 2026-10-25: 03:00 CEST -> 02:00 CET, so 02:00-03:00 happens twice
    ("autumn evening", "2026-10-24T19:00Z", "20:00-09:00", None, "2026-10-25T08:00Z"),
    ("fold, first pass", "2026-10-25T00:15Z", "02:00-02:30", None, "2026-10-25T00:30Z"),
    ("fold, between", "2026-10-25T00:45Z", "02:00-02:30", None, "2026-10-25T00:45Z"),
    ("fold, second pass", "2026-10-25T01:10Z", "02:00-02:30", None, "2026-10-25T01:30Z"),
    ("fold, allowed", "2026-10-25T00:10Z", None, "02:00-02:30", "2026-10-25T00:10Z"),
    ("fold reopens allowed", "2026-10-25T00:40Z", None, "01:30-02:30", "2026-10-25T01:00Z"),
    # an allowed window together with quiet hours
    ("before allowed", "2026-06-01T09:30", "20:00-09:00", "10:00-18:00", "2026-06-01T10:00"),
    ("inside both", "2026-06-01T11:00", "20:00-09:00", "10:00-18:00", "2026-06-01T11:00"),
    ("allowed ended", "2026-06-01T18:00", "20:00-09:00", "10:00-18:00", "2026-06-02T10:00"),
    ("quiet ends later", "2026-06-01T07:00", "20:00-09:00", "08:00-12:00", "2026-06-01T09:00"),
    ("cut by quiet", "2026-06-01T21:00", "20:00-09:00", "18:00-22:00", "2026-06-02T18:00"),
    ("open hour", "2026-03-28T19:30", "20:00-09:00", "19:00-21:00", "2026-03-28T19:30"),
    ("across spring", "2026-03-28T19:30Z", "20:00-09:00", "19:00-21:00", "2026-03-29T17:00Z"),
    ("allowed wraps", "2026-06-01T12:00", None, "22:00-02:00", "2026-06-01T22:00"),
]


def at(text: str) -> datetime:
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=STOCKHOLM)


@pytest.mark.parametrize(
    ("now", "quiet", "allowed", "expected"),
    [pytest.param(*case[1:], id=case[0]) for case in NEXT],
)
def test_next_allowed(now: str, quiet: str | None, allowed: str | None, expected: str) -> None:
    got = next_allowed(
        at(now),
        STOCKHOLM,
        quiet=DailyWindow.parse(quiet) if quiet else None,
        allowed=DailyWindow.parse(allowed) if allowed else None,
    )
    assert got == at(expected)
    assert got.tzinfo is UTC


def test_next_allowed_in_other_zone() -> None:
    tokyo = ZoneInfo("Asia/Tokyo")
    now = datetime(2026, 6, 1, 13, 0, tzinfo=UTC)  # 22:00 in Tokyo
    assert next_allowed(now, tokyo, quiet=QUIET) == datetime(2026, 6, 2, 0, 0, tzinfo=UTC)


def test_next_allowed_rejects_naive_now() -> None:
    with pytest.raises(ValueError, match="aware"):
        next_allowed(datetime(2026, 6, 1, 12), STOCKHOLM, quiet=QUIET)


def test_next_allowed_rejects_windows_that_never_open() -> None:
    now = at("2026-06-01T12:00")
    with pytest.raises(ValueError, match="entirely inside quiet hours"):
        next_allowed(
            now,
            STOCKHOLM,
            quiet=QUIET,
            allowed=DailyWindow.parse("21:00-23:00"),
        )
    day = DailyWindow(time(8), time(20))
    with pytest.raises(ValueError, match="entirely inside quiet hours"):
        next_allowed(now, STOCKHOLM, quiet=day, allowed=day)


ZONES = ["Europe/Stockholm", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "UTC"]
minute_times = st.builds(time, st.integers(0, 23), st.integers(0, 59))


def _window(pair: tuple[time, time] | None) -> DailyWindow | None:
    if pair is None or pair[0] == pair[1]:
        return None
    return DailyWindow(*pair)


def _open(
    instant: datetime, tz: tzinfo, quiet: DailyWindow | None, allowed: DailyWindow | None
) -> bool:
    wall = instant.astimezone(tz).time()
    if quiet is not None and quiet.contains(wall):
        return False
    return allowed is None or allowed.contains(wall)


@settings(max_examples=300, deadline=None)
@given(
    now=st.datetimes(
        min_value=datetime(2025, 1, 1),
        max_value=datetime(2028, 12, 31),
        timezones=st.just(UTC),
    ),
    zone=st.sampled_from(ZONES),
    quiet_pair=st.none() | st.tuples(minute_times, minute_times),
    allowed_pair=st.none() | st.tuples(minute_times, minute_times),
)
def test_next_allowed_is_the_earliest_open_instant(
    now: datetime,
    zone: str,
    quiet_pair: tuple[time, time] | None,
    allowed_pair: tuple[time, time] | None,
) -> None:
    tz = ZoneInfo(zone)
    quiet, allowed = _window(quiet_pair), _window(allowed_pair)
    # Windows that leave no open time at all are rejected (tested above).
    midnight = datetime(2026, 1, 1, tzinfo=UTC)
    minutes = (midnight + timedelta(minutes=m) for m in range(24 * 60))
    assume(any(_open(m, UTC, quiet, allowed) for m in minutes))
    got = next_allowed(now, tz, quiet=quiet, allowed=allowed)

    assert got.tzinfo is UTC
    assert got >= now
    assert _open(got, tz, quiet, allowed)
    if got > now:
        assert not _open(got - timedelta(seconds=1), tz, quiet, allowed)
    probe = now
    while probe < got:
        assert not _open(probe, tz, quiet, allowed), probe
        probe += timedelta(minutes=1)
