"""Importing contact lists (CSV file or the staff API's JSON) into the contacts table.

Validation comes first and covers every row: a list with bad rows is refused whole, listing each
bad row, unless the caller asks to skip them. Valid rows are then written in chunks, one short
transaction each, so a long import never holds SQLite's write lock for long; the upsert is
idempotent, so an import that was interrupted can simply be run again.

Every imported contact is reachable by SMS (phone), Telegram (chat id) and a personal web chat
token made here (`/chat/<token>`, and the Telegram deep link `/start <token>`)."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date

from bot.contacts.csvfile import ContactRow, ContactValidator, RowError, parse_contacts
from bot.privacy import Pseudonymizer
from storage import repo_audit, repo_contacts
from storage.db import Database
from storage.repo_contacts import IMPORT_CHUNK, AddressImport, ContactImport

WEBCHAT = "webchat"

Progress = Callable[[int, int], None]
"""Called with (rows written, rows to write) after each chunk."""


@dataclass(frozen=True, slots=True)
class Validated:
    """A contact list after validation: the good rows and every bad one."""

    rows: tuple[ContactRow, ...]
    errors: tuple[RowError, ...]

    @property
    def unreadable(self) -> bool:
        """Whether the file itself is wrong (header, encoding): nothing of it may be imported."""
        return any(e.whole_file for e in self.errors)


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What an import did; `skipped` lists the bad rows left out (with skip_invalid)."""

    inserted: int
    updated: int
    skipped: tuple[RowError, ...] = ()

    @property
    def imported(self) -> int:
        """Rows written (inserted or updated)."""
        return self.inserted + self.updated


class ImportRefused(Exception):
    """The list has bad rows and skipping them was not asked for: nothing was imported."""

    def __init__(self, errors: Sequence[RowError]) -> None:
        self.errors = tuple(errors)
        super().__init__(f"{len(self.errors)} invalid rows; nothing was imported")

    @property
    def whole_file(self) -> bool:
        """Refused for the file itself (a wrong header, not UTF-8), whatever skip_invalid says."""
        return any(e.whole_file for e in self.errors)


def validate_csv(lines: Iterable[str], *, today: date, default_region: str = "SE") -> Validated:
    """Parse and validate a whole CSV file."""
    rows: list[ContactRow] = []
    errors: list[RowError] = []
    for item in parse_contacts(lines, default_region=default_region, today=today):
        (errors if isinstance(item, RowError) else rows).append(item)  # type: ignore[arg-type]
    return Validated(tuple(rows), tuple(errors))


def validate_records(
    records: Iterable[object], *, today: date, default_region: str = "SE"
) -> Validated:
    """Validate the staff API's JSON contacts; errors carry the record's 0-based index."""
    validator = ContactValidator(default_region=default_region, today=today)
    rows: list[ContactRow] = []
    errors: list[RowError] = []
    for index, record in enumerate(records):
        item = validator.record(index, record)
        if isinstance(item, RowError):
            errors.append(item)
        else:
            rows.append(item)
    return Validated(tuple(rows), tuple(errors))


def to_import(row: ContactRow, pseudonymizer: Pseudonymizer) -> ContactImport:
    """A validated row as the repository's import value, with its addresses' keyed hashes."""
    addresses = []
    if row.phone:
        addresses.append(
            AddressImport("sms", row.phone, pseudonymizer.address_key("sms", row.phone))
        )
    if row.telegram_chat_id:
        chat = row.telegram_chat_id
        addresses.append(
            AddressImport("telegram", chat, pseudonymizer.address_key("telegram", chat))
        )
    return ContactImport(
        external_ref=row.external_ref,
        language=row.language,
        gender=row.gender,
        birth_year=row.birth_year,
        target_group=row.target_group,
        unit=row.unit,
        contact_since=row.contact_since,
        attributes=dict(row.attributes),
        addresses=tuple(addresses),
    )


def personal_token_maker(pseudonymizer: Pseudonymizer) -> Callable[[], AddressImport]:
    """Makes a fresh personal web chat token address."""

    def make() -> AddressImport:
        token = secrets.token_urlsafe(18)
        return AddressImport(WEBCHAT, token, pseudonymizer.address_key(WEBCHAT, token))

    return make


async def import_validated(
    db: Database,
    pseudonymizer: Pseudonymizer,
    validated: Validated,
    *,
    skip_invalid: bool,
    actor: str,
    source: str,
    progress: Progress | None = None,
    chunk_size: int = IMPORT_CHUNK,
) -> ImportReport:
    """Write the valid rows; raises ImportRefused if there are bad rows and not `skip_invalid`,
    or if the file itself is wrong (then `skip_invalid` does not apply)."""
    if validated.errors and (validated.unreadable or not skip_invalid):
        raise ImportRefused(validated.errors)
    rows = validated.rows
    make_token = personal_token_maker(pseudonymizer)
    inserted = updated = 0
    total = len(rows)
    for start in range(0, total, chunk_size):
        chunk = [to_import(row, pseudonymizer) for row in rows[start : start + chunk_size]]
        async with db.transaction() as s:
            result = await repo_contacts.upsert_many(
                s, chunk, chunk_size=chunk_size, personal=make_token
            )
        inserted += result.inserted
        updated += result.updated
        if progress is not None:
            progress(min(start + chunk_size, total), total)
    async with db.transaction() as s:
        await repo_audit.log(
            s,
            actor,
            "contacts.import",
            source,
            {"inserted": inserted, "updated": updated, "skipped": len(validated.errors)},
        )
    return ImportReport(inserted, updated, validated.errors if skip_invalid else ())
