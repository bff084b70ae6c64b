"""Durations in survey files: "90s", "15m", "2h", "7d", or combined like "1d12h"."""

from __future__ import annotations

import re
from typing import Final

_UNITS: Final = (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1))
_SECONDS: Final = dict(_UNITS)
_PART = re.compile(r"(\d+)([dhms])")
_WHOLE = re.compile(r"(?:\d+[dhms])+")


def parse_duration(text: str) -> int:
    """Seconds in a duration like "7d" or "1d12h"; raises ValueError saying what is wrong."""
    if not isinstance(text, str):
        raise ValueError(f'a duration must be a text like "7d", not {text!r}')
    compact = text.strip().lower()
    if not compact or not _WHOLE.fullmatch(compact):
        raise ValueError(
            f"{text!r} is not a duration: use a number and a unit, "
            'like "90s", "15m", "2h", "7d" or "1d12h"'
        )
    parts = _PART.findall(compact)
    units = [unit for _, unit in parts]
    if len(set(units)) != len(units) or units != sorted(units, key=list(_SECONDS).index):
        raise ValueError(f"{text!r}: give each unit once, largest first (d, h, m, s)")
    seconds = sum(int(n) * _SECONDS[unit] for n, unit in parts)
    if seconds <= 0:
        raise ValueError(f"{text!r}: a duration must be longer than zero")
    return seconds


def format_duration(seconds: int) -> str:
    """The shortest duration text for `seconds`, e.g. 129600 -> "1d12h"; 0 -> "0s"."""
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative: {seconds}")
    if seconds == 0:
        return "0s"
    out: list[str] = []
    for unit, size in _UNITS:
        n, seconds = divmod(seconds, size)
        if n:
            out.append(f"{n}{unit}")
    return "".join(out)
