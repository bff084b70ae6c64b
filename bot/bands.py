"""The bands contacts and answers are grouped by: length of contact and age.

One definition, used when a respondent's attributes are copied, by campaign audiences and by
results breakdowns, so the groups always match."""

from __future__ import annotations

from datetime import date


def contact_length_band(since: date, on: date) -> str:
    """The band of a contact that started on `since`, as of `on` (a future start counts as new)."""
    months = (on.year - since.year) * 12 + (on.month - since.month) - (on.day < since.day)
    if months < 6:
        return "<6m"
    if months < 12:
        return "6-12m"
    if months < 36:
        return "1-3y"
    return ">3y"


def age_band(age: int) -> str:
    """The age group results are broken down by."""
    for limit, band in ((13, "6-12"), (18, "13-17"), (25, "18-24"), (45, "25-44"), (65, "45-64")):
        if age < limit:
            return band
    return "65+"


def contact_length_of(since: date | None, on: date) -> str | None:
    """The contact-length band on `on` for a contact known `since`; None if that date is unknown."""
    return None if since is None else contact_length_band(since, on)


def age_group_of(birth_year: int | None, on: date) -> str | None:
    """The age band on `on` for someone born in `birth_year`; None if the year is unknown."""
    return None if birth_year is None else age_band(on.year - birth_year)
