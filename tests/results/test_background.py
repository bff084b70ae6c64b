"""Background attributes on raw rows only when every combination present holds k people."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

import pytest

from bot.results.aggregate import ResponseRecord
from bot.results.background import ATTRIBUTE_COLUMNS, RawAttributes, raw_attributes


def people(*profiles: tuple[int, Mapping[str, str | None]]) -> list[ResponseRecord]:
    out: list[ResponseRecord] = []
    for count, attributes in profiles:
        for _ in range(count):
            out.append(ResponseRecord(f"r{len(out)}", True, date(2026, 3, 2), dict(attributes), {}))
    return out


SV = {"language": "sv"}

CASES: list[tuple[str, list[ResponseRecord], int, tuple[str, ...]]] = [
    ("nobody: nothing to protect", [], 5, ATTRIBUTE_COLUMNS),
    (
        "every combination has k",
        people((5, {"gender": "kvinna", **SV}), (6, {"gender": "man", **SV})),
        5,
        ATTRIBUTE_COLUMNS,
    ),
    (
        "15 people, one woman in unit syd: unit goes first (most values)",
        people(
            (7, {"gender": "kvinna", "unit": "norr", **SV}),
            (1, {"gender": "kvinna", "unit": "syd", **SV}),
            (7, {"gender": "man", "unit": "ost", **SV}),
        ),
        5,
        ("gender", "target_group", "contact_length", "age_group", "language"),
    ),
    (
        "one Arabic speaker: language goes once it is the only small split left",
        people((9, {"gender": "kvinna", **SV}), (1, {"gender": "kvinna", "language": "ar"})),
        5,
        ("gender", "target_group", "unit", "contact_length", "age_group"),
    ),
    (
        "too few people for any split: everything goes",
        people((3, SV)),
        5,
        (),
    ),
    (
        "two attributes that only fail together: the one with more values goes",
        people(
            (5, {"gender": "kvinna", "age_group": "18-24", **SV}),
            (5, {"gender": "man", "age_group": "25-44", **SV}),
            (2, {"gender": "kvinna", "age_group": "25-44", **SV}),
            (3, {"gender": "man", "age_group": "18-24", **SV}),
            (5, {"gender": "annat", "age_group": "65+", **SV}),
        ),
        5,
        ("gender", "target_group", "unit", "contact_length", "language"),
    ),
]


@pytest.mark.parametrize(
    ("records", "k", "included"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_raw_attributes(records: list[ResponseRecord], k: int, included: tuple[str, ...]) -> None:
    result = raw_attributes(records, k)
    assert result.included == included
    assert set(result.left_out) == set(ATTRIBUTE_COLUMNS) - set(included)
    # The property itself: every combination of what is kept holds k.
    combos: dict[tuple[object, ...], int] = {}
    for record in records:
        key = tuple(record.attributes.get(name) for name in result.included)
        combos[key] = combos.get(key, 0) + 1
    assert not result.included or all(n >= k for n in combos.values())


def test_notes_say_what_was_left_out_in_each_language() -> None:
    attrs = RawAttributes(("gender",), ("unit", "language"), 5)
    sv, en, ar = attrs.notes("sv"), attrs.notes("en"), attrs.notes("ar")
    assert "unit, language" in sv[1] and "färre än 5 personer" in sv[1]
    assert en[1].startswith("Background attributes left out of the rows: unit, language.")
    assert "unit, language" in ar[1] and "5" in ar[1]
    assert "," not in attrs.notes("en", sep="; ")[1]
    assert RawAttributes(("gender",)).notes("en") == ["Background attributes on the rows: gender."]
