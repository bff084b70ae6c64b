"""How many SMS segments a text costs: GSM-7 (160/153 septets) or UCS-2 (70/67 code units)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

_GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """What one SMS text costs: segments, the encoding and the units counted."""

    segments: int
    encoding: str
    """"GSM-7" or "UCS-2"."""
    units: int
    """Septets for GSM-7, UTF-16 code units for UCS-2."""


@lru_cache(maxsize=1024)
def segment_info(text: str) -> SegmentInfo:
    """Segments the text costs as one SMS (concatenated messages lose room to the UDH). Kept
    for recent texts: a survey sends the same questions to everyone."""
    if all(c in _GSM7_BASIC or c in _GSM7_EXTENDED for c in text):
        units = sum(2 if c in _GSM7_EXTENDED else 1 for c in text)
        single, multi, encoding = 160, 153, "GSM-7"
    else:
        units = len(text.encode("utf-16-le")) // 2
        single, multi, encoding = 70, 67, "UCS-2"
    if units <= single:
        return SegmentInfo(1, encoding, units)
    return SegmentInfo(-(-units // multi), encoding, units)
