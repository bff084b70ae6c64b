"""The one formula escaping that every spreadsheet and CSV cell we write goes through.

A cell whose text starts with = + - @, a tab or a carriage return is run as a formula by Excel,
LibreOffice or Google Sheets (OWASP "CSV injection"), and in an XLSX written with openpyxl a
text starting with = *is* stored as a formula. Any text can reach a cell: answers, but also unit
names and target groups from a contact list, which end up as group labels and sheet headers. So
the writers (`export_csv`, `export_xlsx`) pass every cell through `safe_cell`, never just the
ones that look risky: numbers stay numbers (so does text that is just a number, like "-3"),
and any other text gets a leading ' when it would start a formula, which spreadsheets show as
text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

__all__ = ["FORMULA_START", "safe_cell", "safe_row"]

FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER: Final = re.compile(r"[+-]?\d+(?:[.,]\d+)?")


def safe_cell(value: object) -> object:
    """`value` as a cell that a spreadsheet shows and never evaluates."""
    if (
        isinstance(value, str)
        and value.startswith(FORMULA_START)
        and not _PLAIN_NUMBER.fullmatch(value)
    ):
        return "'" + value
    return value


def safe_row(values: Iterable[object]) -> list[object]:
    """Every cell of a row through `safe_cell`."""
    return [safe_cell(value) for value in values]
