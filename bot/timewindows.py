"""Daily local-time windows (quiet hours, allowed sending hours) and the next instant outside them.

Pure: no clock, no I/O. Campaigns and follow-ups ask `next_allowed(now, tz, quiet=..., allowed=...)`
when a message may go out; the answer is an aware UTC instant that respects daylight saving time.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

_SIDE = r"(\d{1,2})(?:[:.](\d{2}))?"
_WINDOW_RE = re.compile(rf"^\s*{_SIDE}\s*[-–—]\s*{_SIDE}\s*$")

# How far ahead `next_allowed` looks at most. Windows with any open wall time open within two local
# days (three if that day's open hours fall in a spring-forward gap); the rest is for odd zones.
_HORIZON_DAYS = 14
_TRANSITION_STEP = timedelta(hours=1)


def _side(hours: str, minutes: str | None, text: str, *, is_end: bool) -> time:
    h, m = int(hours), int(minutes or 0)
    if is_end and h == 24 and m == 0:
        return time(0, 0)
    if h > 23 or m > 59:
        raise ValueError(f"{text!r}: {hours}:{minutes or '00'} is not a time of day")
    return time(h, m)


@dataclass(frozen=True, slots=True)
class DailyWindow:
    """A local-time window [start, end) repeated daily; it wraps midnight when end < start."""

    start: time
    end: time

    def __post_init__(self) -> None:
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("window times are local wall-clock times and must be naive")
        if self.start == self.end:
            raise ValueError("a window's start and end must differ")

    @classmethod
    def parse(cls, text: str) -> DailyWindow:
        """Parse "20:00-09:00", "10:00–18:00" (en dash), "9-17" (whole hours) or "18:00-24:00"."""
        match = _WINDOW_RE.match(text)
        if match is None:
            raise ValueError(f"{text!r} is not a time window; write it like 20:00-09:00")
        start = _side(match[1], match[2], text, is_end=False)
        end = _side(match[3], match[4], text, is_end=True)
        if start == end:
            raise ValueError(f"{text!r}: start and end are the same time")
        return cls(start, end)

    def contains(self, local: time) -> bool:
        """Whether the local wall-clock time falls inside the window (start inclusive, end not)."""
        t = local.replace(tzinfo=None, fold=0)
        if self.start < self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


def _is_open(local: time, quiet: DailyWindow | None, allowed: DailyWindow | None) -> bool:
    if quiet is not None and quiet.contains(local):
        return False
    return allowed is None or allowed.contains(local)


def _local(instant: datetime, tz: ZoneInfo) -> time:
    return instant.astimezone(tz).time()


def _ever_open(quiet: DailyWindow | None, allowed: DailyWindow | None) -> bool:
    # Every stretch of open wall time begins at allowed.start or at quiet.end, so checking those
    # two wall times decides whether any exists.
    starts = [time(0, 0)] if allowed is None else [allowed.start]
    if quiet is not None:
        starts.append(quiet.end)
    return any(_is_open(t, quiet, allowed) for t in starts)


def _transitions(tz: ZoneInfo, start: datetime, end: datetime) -> Iterator[datetime]:
    """UTC instants in (start, end] where tz's UTC offset changes; start must be whole seconds."""
    t = start
    offset = start.astimezone(tz).utcoffset()
    while t < end:
        nxt = t + _TRANSITION_STEP
        nxt_offset = nxt.astimezone(tz).utcoffset()
        if nxt_offset != offset:
            lo, hi = t, nxt  # offset(lo) == offset, offset(hi) differs
            while hi - lo > timedelta(seconds=1):
                mid = lo + timedelta(seconds=(hi - lo).total_seconds() // 2)
                if mid.astimezone(tz).utcoffset() == offset:
                    lo = mid
                else:
                    hi = mid
            yield hi
        t, offset = nxt, nxt_offset


def _wall_instants(day: date, wall: time, tz: ZoneInfo) -> Iterator[datetime]:
    """UTC instants whose local time is `wall` on `day`: two in a fall-back fold, and in a
    spring-forward gap the (non-round-tripping) readings, which the caller verifies."""
    for fold in (0, 1):
        yield datetime.combine(day, wall, tzinfo=tz).replace(fold=fold).astimezone(UTC)


def next_allowed(
    now: datetime,
    tz: ZoneInfo,
    *,
    quiet: DailyWindow | None = None,
    allowed: DailyWindow | None = None,
) -> datetime:
    """The earliest aware UTC instant >= now whose local time in tz is outside quiet and inside
    allowed; raises ValueError if the windows leave no time at all."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be an aware datetime")
    now = now.astimezone(UTC)
    if _is_open(_local(now, tz), quiet, allowed):
        return now
    if not _ever_open(quiet, allowed):
        raise ValueError(f"allowed hours {allowed} lie entirely inside quiet hours {quiet}")

    # Openness only changes at a wall-clock boundary (quiet.end, allowed.start) or when the UTC
    # offset jumps, so the answer is the earliest open instant among those candidates. Looking a
    # few days ahead suffices in practice; the wider horizon covers odd zones.
    boundaries: list[time] = []
    if quiet is not None:
        boundaries.append(quiet.end)
    if allowed is not None:
        boundaries.append(allowed.start)
    first_day = now.astimezone(tz).date() - timedelta(days=1)
    span_start = (now - _TRANSITION_STEP).replace(microsecond=0)
    for horizon in (4, _HORIZON_DAYS):
        candidates = {
            instant
            for n in range(horizon + 1)
            for wall in boundaries
            for instant in _wall_instants(first_day + timedelta(days=n), wall, tz)
        }
        span_end = now + timedelta(days=horizon + 1)
        candidates.update(_transitions(tz, span_start, span_end))
        opens = [c for c in candidates if c >= now and _is_open(_local(c, tz), quiet, allowed)]
        if opens:
            return min(opens)
    raise ValueError(f"no allowed time within {_HORIZON_DAYS} days in {tz.key}")
