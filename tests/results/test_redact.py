from __future__ import annotations

import pytest

from bot.results.redact import mask_pii

MASKED = [
    # phone numbers
    ("Ring 070-123 45 67", "Ring [telefon]"),
    ("0701234567", "[telefon]"),
    ("tel 0706 12 34 56.", "tel [telefon]."),
    ("+46 70 123 45 67", "[telefon]"),
    ("+46701234567", "[telefon]"),
    ("+46 (0)70-123 45 67", "[telefon]"),
    ("0046 70 123 45 67", "[telefon]"),
    ("08-123 456 78", "[telefon]"),
    ("08-12 34 56", "[telefon]"),
    ("031-123 45 67", "[telefon]"),
    ("+1 555 123 4567", "[telefon]"),
    ("nr 46 70 123 45 67", "nr [telefon]"),
    # e-mail
    ("mejla anna.svensson@malmo.se!", "mejla [e-post]!"),
    ("A+B@example.co.uk", "[e-post]"),
    # personnummer and samordningsnummer
    ("850515-1234", "[personnummer]"),
    ("19850515-1234", "[personnummer]"),
    ("850515+1234", "[personnummer]"),
    ("8505151234", "[personnummer]"),
    ("198505151234", "[personnummer]"),
    ("850575-1234", "[personnummer]"),
    ("mitt pnr är 200001019876 ok", "mitt pnr är [personnummer] ok"),
    # several in one text
    (
        "Jag heter Anna, 850515-1234, ring 070-1234567 eller anna@x.se",
        "Jag heter Anna, [personnummer], ring [telefon] eller [e-post]",
    ),
]

KEPT = [
    "Jag har haft kontakt sedan 2019.",
    "Det kostade 1500 kr.",
    "Försörjningsstöd 12 500 000 kr totalt",
    "Mötet var 2024-05-01 kl 14.00",
    "01-05-2024",
    "Öppet 08.30-17.00",
    "mellan 2019-2023",
    "åren 2019 2020 2021",
    "20240501",
    "rum 1234, plan 3",
    "3 barn, 2 hundar",
    "100 %",
]


@pytest.mark.parametrize(("text", "expected"), MASKED)
def test_masks(text: str, expected: str) -> None:
    assert mask_pii(text) == expected


@pytest.mark.parametrize("text", KEPT)
def test_keeps_what_is_not_personal_data(text: str) -> None:
    assert mask_pii(text) == text
