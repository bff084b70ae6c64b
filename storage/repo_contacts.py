"""Contacts and the channel addresses they are reached on."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import dialect_insert
from storage.models import Contact, ContactAddress, utcnow

IMPORT_CHUNK = 1000
"""Rows per INSERT in bulk imports: well under both databases' bound-parameter limits."""

IMPORTED_FIELDS = (
    "language",
    "gender",
    "birth_year",
    "age_group",
    "target_group",
    "unit",
    "contact_since",
    "attributes",
)
"""Contact columns an import sets. Never `opted_out_at`: a re-import must not undo an opt-out."""


@dataclass(frozen=True, slots=True)
class AddressImport:
    channel: str
    address: str
    address_key: str


@dataclass(frozen=True, slots=True)
class ContactImport:
    """One row of a contact list, keyed on the organisation's own `external_ref`."""

    external_ref: str
    language: str | None = None
    gender: str | None = None
    birth_year: int | None = None
    age_group: str | None = None
    target_group: str | None = None
    unit: str | None = None
    contact_since: date | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)
    addresses: tuple[AddressImport, ...] = ()


@dataclass(frozen=True, slots=True)
class ImportResult:
    inserted: int
    updated: int
    addresses: int


async def find_by_address(s: AsyncSession, channel: str, address_key: str) -> Contact | None:
    """The contact reached at this address on this channel."""
    stmt = (
        select(Contact)
        .join(ContactAddress, ContactAddress.contact_id == Contact.id)
        .where(ContactAddress.channel == channel, ContactAddress.address_key == address_key)
    )
    return (await s.scalars(stmt)).first()


async def get(s: AsyncSession, contact_id: int, *, for_update: bool = False) -> Contact | None:
    """A contact by id; `for_update` locks its row (PostgreSQL) until the transaction ends."""
    if not for_update:
        return await s.get(Contact, contact_id)
    stmt = (
        select(Contact)
        .where(Contact.id == contact_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return (await s.scalars(stmt)).first()


async def get_by_external_ref(s: AsyncSession, external_ref: str) -> Contact | None:
    """A contact by the organisation's own reference."""
    return (await s.scalars(select(Contact).where(Contact.external_ref == external_ref))).first()


async def create(s: AsyncSession, **attrs: Any) -> Contact:
    """A new contact, flushed so it has an id."""
    contact = Contact(**attrs)
    s.add(contact)
    await s.flush()
    return contact


async def add_address(
    s: AsyncSession, contact_id: int, channel: str, address: str, address_key: str
) -> ContactAddress:
    """Link an address to a contact. Idempotent; an address linked to someone else moves to this
    contact (a number or chat belongs to whoever was linked to it last)."""
    now = utcnow()
    stmt = (
        dialect_insert(s, ContactAddress)
        .values(
            contact_id=contact_id,
            channel=channel,
            address=address,
            address_key=address_key,
            created_at=now,
        )
        .on_conflict_do_update(
            index_elements=[ContactAddress.channel, ContactAddress.address_key],
            set_={"contact_id": contact_id, "address": address},
        )
        .returning(ContactAddress)
        .execution_options(populate_existing=True)
    )
    row: ContactAddress = (await s.scalars(stmt)).one()
    return row


async def addresses(s: AsyncSession, contact_id: int) -> list[ContactAddress]:
    """Every address of a contact, oldest first."""
    stmt = (
        select(ContactAddress)
        .where(ContactAddress.contact_id == contact_id)
        .order_by(ContactAddress.id)
    )
    return list(await s.scalars(stmt))


async def address_on(s: AsyncSession, contact_id: int, channel: str) -> ContactAddress | None:
    """The contact's newest address on one channel."""
    stmt = (
        select(ContactAddress)
        .where(ContactAddress.contact_id == contact_id, ContactAddress.channel == channel)
        .order_by(ContactAddress.id.desc())
        .limit(1)
    )
    return (await s.scalars(stmt)).first()


async def set_opted_out(s: AsyncSession, contact_id: int, at: datetime | None) -> None:
    """Record an opt-out (`at`) or an opt-in again (None)."""
    await s.execute(
        update(Contact)
        .where(Contact.id == contact_id)
        .values(opted_out_at=at, updated_at=utcnow())
        .execution_options(synchronize_session="fetch")
    )


async def opted_out_among(s: AsyncSession, contact_ids: Collection[int]) -> set[int]:
    """Which of these contacts have opted out."""
    found: set[int] = set()
    ids = list(contact_ids)
    for start in range(0, len(ids), IMPORT_CHUNK):
        chunk = ids[start : start + IMPORT_CHUNK]
        stmt = select(Contact.id).where(Contact.id.in_(chunk), Contact.opted_out_at.is_not(None))
        found.update(await s.scalars(stmt))
    return found


def _chunks(rows: Sequence[ContactImport], size: int) -> Iterator[Sequence[ContactImport]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


async def upsert_many(
    s: AsyncSession, rows: Sequence[ContactImport], *, chunk_size: int = IMPORT_CHUNK
) -> ImportResult:
    """Insert or update contacts by `external_ref`, and link their addresses, in chunks.

    The import is the authority: listed fields are overwritten and an address listed for a row
    moves to that contact. A reference listed twice counts once, its last row winning."""
    by_ref = {row.external_ref: row for row in rows}
    unique = list(by_ref.values())
    inserted = updated = linked = 0
    contacts = Contact.__table__
    addresses_table = ContactAddress.__table__
    for chunk in _chunks(unique, chunk_size):
        now = utcnow()
        refs = [row.external_ref for row in chunk]
        existing = set(
            await s.scalars(select(Contact.external_ref).where(Contact.external_ref.in_(refs)))
        )
        values = [
            {
                "external_ref": row.external_ref,
                **{name: getattr(row, name) for name in IMPORTED_FIELDS},
                "attributes": dict(row.attributes),
                "created_at": now,
                "updated_at": now,
            }
            for row in chunk
        ]
        insert = dialect_insert(s, contacts)
        stmt = insert.on_conflict_do_update(
            index_elements=[contacts.c.external_ref],
            set_={
                **{name: insert.excluded[name] for name in IMPORTED_FIELDS},
                "updated_at": now,
            },
        ).returning(contacts.c.id, contacts.c.external_ref)
        ids = {ref: cid for cid, ref in (await s.execute(stmt, values)).all()}
        updated += len(existing)
        inserted += len(chunk) - len(existing)

        address_rows: dict[tuple[str, str], dict[str, Any]] = {}
        for row in chunk:
            for a in row.addresses:
                address_rows[(a.channel, a.address_key)] = {
                    "contact_id": ids[row.external_ref],
                    "channel": a.channel,
                    "address": a.address,
                    "address_key": a.address_key,
                    "created_at": now,
                }
        if address_rows:
            insert = dialect_insert(s, addresses_table)
            await s.execute(
                insert.on_conflict_do_update(
                    index_elements=[addresses_table.c.channel, addresses_table.c.address_key],
                    set_={
                        "contact_id": insert.excluded.contact_id,
                        "address": insert.excluded.address,
                    },
                ),
                list(address_rows.values()),
            )
            linked += len(address_rows)
    return ImportResult(inserted=inserted, updated=updated, addresses=linked)
