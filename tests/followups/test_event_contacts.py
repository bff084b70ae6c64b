"""Contact details in a case event follow the same rules as a contact list."""

from __future__ import annotations

from datetime import date

import pytest

from bot.contacts.csvfile import ContactRow, ContactValidator
from bot.followups.events import CONTACT_KEYS, ContactDetails, parse_contact

TODAY = date(2026, 3, 2)
FIELDS = [name for name in CONTACT_KEYS if name != "attributes"]

RECORDS = [
    {"phone": "070-123 45 67", "gender": "Kvinnlig", "language": "EN_gb"},
    {"phone": "+46701234567", "birth_year": 1980, "target_group": "Ekonomiskt bistånd"},
    {"telegram_chat_id": "-100123", "unit": " Norr ", "contact_since": "2024-05-01"},
    {"phone": "0701234567", "gender": "x", "target_group": "Barn & unga"},
]
BAD = [
    {"phone": "123"},
    {"phone": "0701234567", "gender": "?"},
    {"phone": "0701234567", "birth_year": "1800"},
    {"phone": "0701234567", "contact_since": "2027-01-01"},
    {"phone": "0701234567", "contact_since": "20240501"},
    {"phone": "0701234567", "language": "svenska!"},
    {"phone": "0701234567", "target_group": "!!!"},
    {"telegram_chat_id": "abc"},
]


@pytest.mark.parametrize("record", RECORDS)
def test_an_event_contact_is_normalised_like_a_contact_list_row(record: dict[str, object]) -> None:
    from_event = parse_contact(record, today=TODAY)
    from_list = ContactValidator(today=TODAY).record(1, record)
    assert isinstance(from_event, ContactDetails) and isinstance(from_list, ContactRow)
    for name in FIELDS:
        assert getattr(from_event, name) == getattr(from_list, name), name


@pytest.mark.parametrize("record", BAD)
def test_what_a_contact_list_refuses_an_event_refuses_too(record: dict[str, object]) -> None:
    problems = parse_contact(record, today=TODAY)
    refused = ContactValidator(today=TODAY).record(1, record)
    assert isinstance(problems, list) and not isinstance(refused, ContactRow)
    # The same rule speaks in both: the event prefixes the field with "contact.".
    field = next(k for k in record if k in refused.reason)
    assert any(p.startswith(f"contact.{field}: ") for p in problems)
    assert any(p.split(": ", 1)[1] in refused.reason for p in problems), (problems, refused)
