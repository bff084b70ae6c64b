from __future__ import annotations

import csv
import io
import itertools
import random
from collections.abc import Iterable, Iterator
from datetime import date
from typing import Any

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.contacts.csvfile import (
    COLUMNS,
    ContactRow,
    RowError,
    _PhoneNormaliser,
    parse_contacts,
    snake_case,
)

TODAY = date(2026, 6, 1)
HEADER = [*COLUMNS, "attr_note"]


def parse(source: str | Iterable[str], **kwargs: Any) -> list[ContactRow | RowError]:
    stream = io.StringIO(source, newline="") if isinstance(source, str) else source
    return list(parse_contacts(stream, today=TODAY, **kwargs))


def csv_text(rows: list[list[str]], delimiter: str = ",") -> str:
    out = io.StringIO(newline="")
    csv.writer(out, delimiter=delimiter, lineterminator="\n").writerows(rows)
    return out.getvalue()


def one(fields: dict[str, str]) -> ContactRow | RowError:
    """Parse a file with the full header and one data row built from `fields`."""
    results = parse(csv_text([HEADER, [fields.get(name, "") for name in HEADER]]))
    assert len(results) == 1
    return results[0]


# (label, row fields, expected ContactRow fields)
GOOD: list[tuple[str, dict[str, str], dict[str, object]]] = [
    ("ref only", {"external_ref": " A-17 "}, {"external_ref": "A-17", "phone": None}),
    ("national mobile", {"phone": "070-123 45 67"}, {"phone": "+46701234567"}),
    ("international", {"phone": "+46 70 123 45 67"}, {"phone": "+46701234567"}),
    ("plus, national zero", {"phone": "+46 (0)70-123 45 67"}, {"phone": "+46701234567"}),
    ("idd prefix", {"phone": "0046701234567"}, {"phone": "+46701234567"}),
    ("brackets and dots", {"phone": "(070) 123.45.67"}, {"phone": "+46701234567"}),
    ("stockholm landline", {"phone": "08-123 456 78"}, {"phone": "+46812345678"}),
    ("norwegian mobile", {"phone": "+47 412 34 567"}, {"phone": "+4741234567"}),
    ("finnish mobile", {"phone": "+358 40 123 4567"}, {"phone": "+358401234567"}),
    ("chat id", {"telegram_chat_id": "123456789"}, {"telegram_chat_id": "123456789"}),
    (
        "group chat id",
        {"telegram_chat_id": "-1001234567890"},
        {"telegram_chat_id": "-1001234567890"},
    ),
    ("chat id zeros", {"telegram_chat_id": "00042"}, {"telegram_chat_id": "42"}),
    ("language upper", {"external_ref": "r", "language": "SV"}, {"language": "sv"}),
    ("language region", {"external_ref": "r", "language": "en_GB"}, {"language": "en-gb"}),
    ("language 3 letters", {"external_ref": "r", "language": "ckb"}, {"language": "ckb"}),
    (
        "language script",
        {"external_ref": "r", "language": "zh-Hant-TW"},
        {"language": "zh-hant-tw"},
    ),
    ("gender kvinna", {"external_ref": "r", "gender": "Kvinna"}, {"gender": "kvinna"}),
    ("gender K", {"external_ref": "r", "gender": "K"}, {"gender": "kvinna"}),
    ("gender female", {"external_ref": "r", "gender": "female"}, {"gender": "kvinna"}),
    ("gender F", {"external_ref": "r", "gender": "F"}, {"gender": "kvinna"}),
    ("gender woman", {"external_ref": "r", "gender": "woman"}, {"gender": "kvinna"}),
    ("gender man", {"external_ref": "r", "gender": "MAN"}, {"gender": "man"}),
    ("gender m", {"external_ref": "r", "gender": "m"}, {"gender": "man"}),
    ("gender male", {"external_ref": "r", "gender": "Male"}, {"gender": "man"}),
    ("gender annat", {"external_ref": "r", "gender": "annat"}, {"gender": "annat"}),
    ("gender other", {"external_ref": "r", "gender": "Other"}, {"gender": "annat"}),
    ("gender x", {"external_ref": "r", "gender": "X"}, {"gender": "annat"}),
    ("gender empty", {"external_ref": "r", "gender": "  "}, {"gender": None}),
    ("birth year low", {"external_ref": "r", "birth_year": "1900"}, {"birth_year": 1900}),
    ("birth year now", {"external_ref": "r", "birth_year": " 2026 "}, {"birth_year": 2026}),
    (
        "target group",
        {"external_ref": "r", "target_group": "Ekonomiskt bistånd"},
        {"target_group": "ekonomiskt_bistand"},
    ),
    (
        "target punct",
        {"external_ref": "r", "target_group": " Barn & Unga "},
        {"target_group": "barn_unga"},
    ),
    (
        "target dash",
        {"external_ref": "r", "target_group": "LSS-insats"},
        {"target_group": "lss_insats"},
    ),
    ("unit", {"external_ref": "r", "unit": "  Enhet Syd, Malmö "}, {"unit": "Enhet Syd, Malmö"}),
    ("since today", {"external_ref": "r", "contact_since": "2026-06-01"}, {"contact_since": TODAY}),
    (
        "since long ago",
        {"external_ref": "r", "contact_since": "1999-12-31"},
        {"contact_since": date(1999, 12, 31)},
    ),
    (
        "attribute",
        {"external_ref": "r", "attr_note": " tolk behövs "},
        {"attributes": {"note": "tolk behövs"}},
    ),
    ("empty attribute", {"external_ref": "r", "attr_note": ""}, {"attributes": {}}),
]


@pytest.mark.parametrize(
    ("fields", "expected"), [pytest.param(*case[1:], id=case[0]) for case in GOOD]
)
def test_good_rows(fields: dict[str, str], expected: dict[str, object]) -> None:
    row = one(fields)
    assert isinstance(row, ContactRow), row
    assert row.line == 2
    for name, value in expected.items():
        assert getattr(row, name) == value, name


def test_full_row() -> None:
    row = one(
        {
            "external_ref": "K-1",
            "phone": "0701234567",
            "telegram_chat_id": "99",
            "language": "ar",
            "gender": "k",
            "birth_year": "1980",
            "target_group": "Försörjningsstöd",
            "unit": "Öster",
            "contact_since": "2024-05-01",
            "attr_note": "x",
        }
    )
    assert row == ContactRow(
        line=2,
        external_ref="K-1",
        phone="+46701234567",
        telegram_chat_id="99",
        language="ar",
        gender="kvinna",
        birth_year=1980,
        target_group="forsorjningsstod",
        unit="Öster",
        contact_since=date(2024, 5, 1),
        attributes={"note": "x"},
    )


# (label, row fields, expected reason fragment)
BAD: list[tuple[str, dict[str, str], str]] = [
    ("no identifier", {"language": "sv"}, "needs external_ref, phone or telegram_chat_id"),
    (
        "blank identifiers",
        {"external_ref": " ", "gender": "man"},
        "needs external_ref, phone or telegram_chat_id",
    ),
    ("short phone", {"phone": "12345"}, "phone is not a valid phone number (region SE)"),
    ("letters phone", {"phone": "ring mig"}, "phone is not a valid phone number"),
    ("incomplete phone", {"phone": "+46 70 123"}, "phone is not a valid phone number"),
    ("invalid swedish", {"phone": "0001234567"}, "phone is not a valid phone number"),
    ("chat id text", {"telegram_chat_id": "12a"}, "telegram_chat_id '12a' is not an integer"),
    ("chat id float", {"telegram_chat_id": "1.5"}, "telegram_chat_id '1.5' is not an integer"),
    (
        "language word",
        {"external_ref": "r", "language": "svenska"},
        "language 'svenska' is not a language code",
    ),
    (
        "language short",
        {"external_ref": "r", "language": "s"},
        "language 's' is not a language code",
    ),
    (
        "language dangling",
        {"external_ref": "r", "language": "sv-"},
        "language 'sv-' is not a language code",
    ),
    (
        "gender unknown",
        {"external_ref": "r", "gender": "kvinnor"},
        "gender 'kvinnor' is not one of kvinna, man, annat",
    ),
    (
        "birth year early",
        {"external_ref": "r", "birth_year": "1899"},
        "birth_year '1899' is not a year from 1900 to 2026",
    ),
    (
        "birth year future",
        {"external_ref": "r", "birth_year": "2027"},
        "birth_year '2027' is not a year",
    ),
    (
        "birth year short",
        {"external_ref": "r", "birth_year": "80"},
        "birth_year '80' is not a year",
    ),
    (
        "birth year text",
        {"external_ref": "r", "birth_year": "19x0"},
        "birth_year '19x0' is not a year",
    ),
    ("birth year digits", {"external_ref": "r", "birth_year": "１９８０"}, "is not a year"),
    (
        "since future",
        {"external_ref": "r", "contact_since": "2026-06-02"},
        "contact_since 2026-06-02 is in the future",
    ),
    (
        "since month",
        {"external_ref": "r", "contact_since": "2026-13-01"},
        "contact_since '2026-13-01' is not a date like 2024-05-01",
    ),
    ("since swedish", {"external_ref": "r", "contact_since": "1/5/2024"}, "is not a date"),
    ("since compact", {"external_ref": "r", "contact_since": "20240501"}, "is not a date"),
    (
        "target symbols",
        {"external_ref": "r", "target_group": "!!!"},
        "target_group '!!!' has no letters or digits",
    ),
    ("long ref", {"external_ref": "r" * 101}, "external_ref is longer than 100 characters"),
    ("long unit", {"external_ref": "r", "unit": "u" * 101}, "unit is longer than 100 characters"),
    (
        "several",
        {"external_ref": "r", "gender": "?", "birth_year": "0"},
        "gender '?' is not one of kvinna, man, annat; birth_year '0'",
    ),
]


@pytest.mark.parametrize(
    ("fields", "reason"), [pytest.param(*case[1:], id=case[0]) for case in BAD]
)
def test_bad_rows(fields: dict[str, str], reason: str) -> None:
    row = one(fields)
    assert isinstance(row, RowError), row
    assert row.line == 2
    assert reason in row.reason


def test_phone_errors_do_not_repeat_the_number() -> None:
    row = one({"phone": "070-12"})
    assert isinstance(row, RowError)
    assert "070" not in row.reason and "12" not in row.reason


def test_row_error_str() -> None:
    assert str(RowError(7, "gender 'q' is not one of kvinna, man, annat")) == (
        "line 7: gender 'q' is not one of kvinna, man, annat"
    )


def lines_and_kinds(results: list[ContactRow | RowError]) -> list[tuple[int, str]]:
    return [(r.line, "ok" if isinstance(r, ContactRow) else r.reason) for r in results]


def test_bom_and_semicolons() -> None:
    text = "\ufeffExternal_Ref;Phone;Unit\nR1;070-123 45 67;Syd, Malmö\nR2;;Norr\n"
    results = parse(text)
    assert all(isinstance(r, ContactRow) for r in results)
    assert [(r.line, r.external_ref, r.phone, r.unit) for r in results] == [  # type: ignore[union-attr]
        (2, "R1", "+46701234567", "Syd, Malmö"),
        (3, "R2", None, "Norr"),
    ]


def test_bom_through_a_byte_stream() -> None:
    data = "external_ref;gender\nR1;Kvinna\n".encode("utf-8-sig")
    stream = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", newline="")
    results = list(parse_contacts(stream, today=TODAY))
    assert results == [ContactRow(line=2, external_ref="R1", gender="kvinna", attributes={})]


def test_excel_sep_line() -> None:
    results = parse("\ufeffsep=;\nexternal_ref;unit\nR1;A,B\n")
    assert lines_and_kinds(results) == [(3, "ok")]
    assert isinstance(results[0], ContactRow) and results[0].unit == "A,B"


def test_quoted_delimiters_and_crlf() -> None:
    text = 'external_ref,unit,attr_note\r\nR1,"Syd, Malmö","sa ""hej"""\r\n'
    [row] = parse(text)
    assert isinstance(row, ContactRow)
    assert row.unit == "Syd, Malmö"
    assert row.attributes == {"note": 'sa "hej"'}


def test_line_numbers_count_physical_lines() -> None:
    text = (
        "external_ref,attr_note\n"  # 1
        'R1,"two\n'  # 2
        'lines"\n'  # 3
        "\n"  # 4 blank, skipped
        "R2,x\n"  # 5
        ",\n"  # 6 empty row, skipped
        'R3,"a\n'  # 7
        "b\n"  # 8
        'c"\n'  # 9
        "R4,y\n"  # 10
    )
    results = parse(text)
    assert lines_and_kinds(results) == [(2, "ok"), (5, "ok"), (7, "ok"), (10, "ok")]
    assert isinstance(results[0], ContactRow) and results[0].attributes == {"note": "two\nlines"}


def test_malformed_csv_is_reported_and_parsing_goes_on() -> None:
    text = 'external_ref,unit\nR1,"Syd"x\nR2,Norr\nR3,a,b\nR4\nR5,"never closed\nR6,x\n'
    results = parse(text)
    assert [str(r) if isinstance(r, RowError) else r.line for r in results] == [
        "line 2: malformed CSV: ',' expected after '\"'",
        3,
        "line 4: expected 2 fields, got 3",
        "line 5: expected 2 fields, got 1",
        "line 6: malformed CSV: unexpected end of data",
    ]


def test_control_characters_are_errors() -> None:
    results = parse('external_ref,unit,\nR1,a\x00b,\nR2,c,\x1b\nR3,"d\te",\n')
    assert lines_and_kinds(results) == [
        (2, "unit contains control characters"),
        (3, "column 3 contains control characters"),
        (4, "ok"),
    ]


def test_duplicates_are_errors_on_the_later_line() -> None:
    text = csv_text(
        [
            ["external_ref", "phone", "telegram_chat_id"],
            ["R1", "070-123 45 67", "5"],
            ["R2", "+46701234567", ""],
            ["R1", "", ""],
            ["R3", "", "005"],
            ["R4", "0701234568", ""],
        ]
    )
    assert lines_and_kinds(parse(text)) == [
        (2, "ok"),
        (3, "duplicate phone (first on line 2)"),
        (4, "duplicate external_ref 'R1' (first on line 2)"),
        (5, "duplicate telegram_chat_id '5' (first on line 2)"),
        (6, "ok"),
    ]


def test_attribute_columns() -> None:
    text = "external_ref,ATTR_Kommundel,attr_tolk_sprak\nR1,Väster,arabiska\nR2,,\n"
    rows = parse(text)
    assert [r.attributes for r in rows if isinstance(r, ContactRow)] == [
        {"kommundel": "Väster", "tolk_sprak": "arabiska"},
        {},
    ]
    assert isinstance(rows[0], ContactRow)
    with pytest.raises(TypeError):
        rows[0].attributes["x"] = "y"  # type: ignore[index]


def test_unnamed_columns_must_stay_empty() -> None:
    text = "external_ref;unit;;\nR1;A;;\nR2;B;x;\n"
    assert lines_and_kinds(parse(text)) == [
        (2, "ok"),
        (3, "column 3 has no name in the header but a value here"),
    ]


HEADER_ERRORS: list[tuple[str, str, int, str]] = [
    ("empty file", "", 1, "the file is empty; it needs a header row"),
    ("typo", "external_ref,phon\n", 1, "unknown column 'phon' (did you mean 'phone'?)"),
    ("unknown", "external_ref,favourite_colour\n", 1, "extra ones must start with attr_"),
    ("twice", "external_ref,Phone,phone\n", 1, "column 'phone' appears twice"),
    (
        "no identifier",
        "language,gender\nsv,k\n",
        1,
        "needs at least one of the columns external_ref, phone, telegram_chat_id",
    ),
    (
        "bad attribute",
        "external_ref,attr_\n",
        1,
        "attribute names after attr_ may only use a-z, 0-9 and _",
    ),
    ("attribute space", "external_ref,attr_tolk språk\n", 1, "attribute names after attr_"),
    ("sep line only", "sep=;\n", 2, "the file has no header row"),
    ("tab separator", "sep=\t\nexternal_ref\n", 1, "unsupported separator '\\t'"),
    ("header quote", 'external_ref,"phone\n', 1, "malformed header"),
]


@pytest.mark.parametrize(
    ("text", "line", "reason"), [pytest.param(*case[1:], id=case[0]) for case in HEADER_ERRORS]
)
def test_header_errors(text: str, line: int, reason: str) -> None:
    results = parse(text)
    assert len(results) == 1
    [error] = results
    assert isinstance(error, RowError)
    assert error.line == line
    assert reason in error.reason


def test_header_only_gives_nothing() -> None:
    assert parse("external_ref,phone\n") == []


def test_non_utf8_bytes_are_an_error_row() -> None:
    data = b"external_ref,unit\nR1,V\xe4ster\n"
    stream = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", newline="")
    [error] = list(parse_contacts(stream, today=TODAY))
    assert isinstance(error, RowError)
    assert "not UTF-8" in error.reason


def test_plain_list_of_lines() -> None:
    results = parse(["phone,gender", "0701234567,k", "0701234568,m"])
    assert [(r.line, r.phone) for r in results] == [  # type: ignore[union-attr]
        (2, "+46701234567"),
        (3, "+46701234568"),
    ]


def test_other_default_region() -> None:
    [row] = parse("phone\n040 1234567\n", default_region="fi")
    assert isinstance(row, ContactRow) and row.phone == "+358401234567"


def test_unknown_region_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown phone region 'QQ'"):
        parse("phone\n0701234567\n", default_region="QQ")


def test_snake_case() -> None:
    assert snake_case("Ekonomiskt bistånd") == "ekonomiskt_bistand"
    assert snake_case("  Äldre--omsorg (LSS) ") == "aldre_omsorg_lss"
    assert snake_case("already_snake") == "already_snake"


def generated(rows: int) -> Iterator[str]:
    yield "external_ref;phone;gender;birth_year;target_group;unit;contact_since;attr_note\n"
    for i in range(rows):
        phone = f"070-{i // 10000:03d} {i % 10000 // 100:02d} {i % 100:02d}"
        yield f"R{i};{phone};kvinna;1980;Ekonomiskt bistånd;Enhet Syd;2024-05-01;x\n"


def test_parsing_is_lazy() -> None:
    endless = itertools.chain(generated(3), itertools.repeat("R;;;;;;;\n"))
    first = list(itertools.islice(parse_contacts(endless, today=TODAY), 3))
    assert [r.line for r in first] == [2, 3, 4]


def test_a_hundred_thousand_rows() -> None:
    count = 0
    for result in parse_contacts(generated(100_000), today=TODAY):
        assert isinstance(result, ContactRow), result
        count += 1
    assert count == 100_000
    assert isinstance(result, ContactRow) and result.phone == "+46700099999"


def reference_e164(text: str, region: str) -> str | None:
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@settings(max_examples=300, deadline=None)
@given(
    region=st.sampled_from(["SE", "FI", "DE", "GB", "NO", "US"]),
    prefix=st.sampled_from(["0", "+46", "+358", "+49", "+44", "+47", "+1", "00", "+460"]),
    digits=st.text("0123456789", min_size=1, max_size=13)
    | st.from_regex(r"7[0-9]{8}", fullmatch=True)
    | st.from_regex(r"[1-9][0-9]{6,10}", fullmatch=True),
)
def test_phone_normalisation_matches_phonenumbers(region: str, prefix: str, digits: str) -> None:
    text = prefix + digits
    [row] = parse(f"phone\n{text}\n", default_region=region)
    expected = reference_e164(text, region)
    if expected is None:
        assert isinstance(row, RowError)
    else:
        assert isinstance(row, ContactRow) and row.phone == expected


@pytest.mark.parametrize("region", ["SE", "FI", "DE", "GB", "US", "NO"])
def test_phone_shortcut_agrees_with_phonenumbers(region: str) -> None:
    rng = random.Random(region)
    cc = str(phonenumbers.country_code_for_region(region))
    normalise = _PhoneNormaliser(region)
    valid = 0
    for _ in range(4000):
        prefix = rng.choice(["0", f"+{cc}", f"+{cc} 0", f"00{cc}", "", "+46"])
        lead = rng.choice(["7", "8", "1", "2", "3", "4", "9", str(rng.randrange(10))])
        rest = "".join(rng.choices("0123456789", k=rng.randrange(4, 11)))
        text = f"{prefix}{lead}{rest}"
        expected = reference_e164(text, region)
        try:
            got: str | None = normalise(text)
        except ValueError:
            got = None
        assert got == expected, text
        valid += expected is not None
    assert valid > 100, "the sample should hold plenty of valid numbers"


@pytest.mark.parametrize("region", ["SE", "FI", "DE", "GB", "US", "NO"])
def test_phone_shortcut_accepts_every_number_type(region: str) -> None:
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    assert metadata is not None
    normalise = _PhoneNormaliser(region)
    examples = [
        desc.example_number
        for desc in (getattr(metadata, name) for name in NUMBER_TYPES)
        if desc is not None and desc.example_number
    ]
    assert len(examples) >= 3
    for example in examples:
        for text in (f"0{example}", f"+{metadata.country_code}{example}", example):
            try:
                got: str | None = normalise(text)
            except ValueError:
                got = None
            assert got == reference_e164(text, region), text


NUMBER_TYPES = [
    "fixed_line",
    "mobile",
    "toll_free",
    "premium_rate",
    "shared_cost",
    "personal_number",
    "voip",
    "pager",
    "uan",
    "voicemail",
]


def test_phone_shortcut_covers_every_swedish_number_type() -> None:
    metadata = phonenumbers.PhoneMetadata.metadata_for_region("SE")
    assert metadata is not None
    normalise = _PhoneNormaliser("SE")
    for name in NUMBER_TYPES:
        desc = getattr(metadata, name)
        if desc is None or not desc.example_number:
            continue
        for text in (f"0{desc.example_number}", f"+46{desc.example_number}"):
            assert normalise._shortcut(text) == reference_e164(text, "SE") is not None, name


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("unit", "U" * 101, "unit is longer than 100 characters"),
        ("external_ref", "R" * 101, "external_ref is longer than 100 characters"),
        ("target_group", "grupp " * 12, "target_group is longer than 60 characters"),
        ("language", "en-" + "x" * 20, "language is longer than 20 characters"),
    ],
)
def test_values_longer_than_their_column_are_refused(column: str, value: str, message: str) -> None:
    header = "external_ref,phone,unit,target_group,language"
    row = {
        "external_ref": "R1",
        "phone": "0701234567",
        "unit": "Norr",
        "target_group": "missbruk",
        "language": "sv",
    } | {column: value}
    text = header + "\n" + ",".join(row[c] for c in header.split(",")) + "\n"
    [result] = parse_contacts(io.StringIO(text), today=date(2026, 3, 2))
    assert isinstance(result, RowError) and message in result.reason
