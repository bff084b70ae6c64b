"""Contacts and the channel addresses they are reached on."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import Table, select, update
from sqlalchemy import insert as insert_stmt
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import dialect_insert
from storage.models import Contact, ContactAddress, utcnow

IMPORT_CHUNK = 5000
"""Rows per INSERT in bulk imports: well under both databases' bound-parameter limits."""
WEBCHAT = "webchat"
"""The channel of personal web chat tokens."""

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
    """One address of an imported contact, with its HMAC lookup key."""

    channel: str
    address: str
    address_key: str


@dataclass(frozen=True, slots=True)
class ContactImport:
    """One row of a contact list, keyed on the organisation's own `external_ref` (else on an
    address, see `upsert_many`)."""

    external_ref: str | None = None
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
    """What an import did: contacts inserted and updated, addresses written."""

    inserted: int
    updated: int
    addresses: int
    personal: int = 0
    """Personal addresses (web chat tokens) made for contacts that had none."""


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


async def webchat_tokens(s: AsyncSession, contact_ids: Collection[int]) -> dict[int, str]:
    """Each contact's personal web chat token (the newest, if several), by contact id: the
    `/chat/<token>` link and the Telegram `/start <token>` payload. Contacts without one are
    left out."""
    tokens: dict[int, str] = {}
    ids = list(contact_ids)
    for start in range(0, len(ids), IMPORT_CHUNK):
        stmt = (
            select(ContactAddress.contact_id, ContactAddress.address)
            .where(
                ContactAddress.contact_id.in_(ids[start : start + IMPORT_CHUNK]),
                ContactAddress.channel == WEBCHAT,
            )
            .order_by(ContactAddress.id)
        )
        for contact_id, token in (await s.execute(stmt)).all():
            tokens[int(contact_id)] = str(token)
    return tokens


async def external_refs(s: AsyncSession, contact_ids: Collection[int]) -> dict[int, str]:
    """The organisation's reference of each of these contacts that has one, by contact id."""
    refs: dict[int, str] = {}
    ids = list(contact_ids)
    for start in range(0, len(ids), IMPORT_CHUNK):
        stmt = select(Contact.id, Contact.external_ref).where(
            Contact.id.in_(ids[start : start + IMPORT_CHUNK]), Contact.external_ref.is_not(None)
        )
        refs.update({int(cid): str(ref) for cid, ref in (await s.execute(stmt)).all()})
    return refs


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


def _dedupe(rows: Sequence[ContactImport]) -> list[ContactImport]:
    """One row per reference (else per first address), the last row winning."""
    unique: dict[tuple[str, ...], ContactImport] = {}
    for index, row in enumerate(rows):
        if row.external_ref:
            key: tuple[str, ...] = ("ref", row.external_ref)
        elif row.addresses:
            key = ("address", row.addresses[0].channel, row.addresses[0].address_key)
        else:
            key = ("row", str(index))
        unique.pop(key, None)
        unique[key] = row
    return list(unique.values())


def _imported_values(row: ContactImport) -> dict[str, Any]:
    values = {name: getattr(row, name) for name in IMPORTED_FIELDS}
    values["attributes"] = dict(row.attributes)
    return values


async def upsert_many(
    s: AsyncSession,
    rows: Sequence[ContactImport],
    *,
    chunk_size: int = IMPORT_CHUNK,
    match_channels: Sequence[str] = ("sms", "telegram"),
    personal: Callable[[], AddressImport] | None = None,
) -> ImportResult:
    """Insert or update contacts, and link their addresses, in chunks.

    A row is matched on `external_ref`; failing that, on its first address on one of
    `match_channels` (for a row with a reference: only a contact with none yet, e.g. someone who
    wrote in before being imported, which then gets the row's reference). The import is the
    authority: listed fields are overwritten and an address listed for a row moves to that
    contact. A row listed twice counts once, its last row winning. `personal` makes the address
    (e.g. a web chat token) for each imported contact that has none on its channel yet."""
    unique = _dedupe(rows)
    inserted = updated = linked = made = 0
    contacts = Contact.__table__
    addresses_table = ContactAddress.__table__
    for chunk in _chunks(unique, chunk_size):
        now = utcnow()
        refs = [row.external_ref for row in chunk if row.external_ref]
        by_ref: dict[str, int] = {}
        if refs:
            found = await s.execute(
                select(Contact.external_ref, Contact.id).where(Contact.external_ref.in_(refs))
            )
            by_ref = {ref: cid for ref, cid in found.all() if ref is not None}
        owners = await _address_owners(
            s,
            {
                (a.channel, a.address_key)
                for row in chunk
                if not (row.external_ref and row.external_ref in by_ref)
                for a in row.addresses
                if a.channel in match_channels
            },
        )

        by_ref_rows: list[ContactImport] = []
        by_id_rows: list[tuple[int, ContactImport]] = []
        new_rows: list[ContactImport] = []
        claimed: set[int] = set()
        for row in chunk:
            if row.external_ref and row.external_ref in by_ref:
                by_ref_rows.append(row)
                continue
            # A row with a reference only takes over a contact that has none.
            owner = next(
                (
                    owners[(a.channel, a.address_key)][0]
                    for channel in match_channels
                    for a in row.addresses
                    if a.channel == channel
                    and (a.channel, a.address_key) in owners
                    and (row.external_ref is None or owners[(a.channel, a.address_key)][1] is None)
                ),
                None,
            )
            if owner is not None and owner not in claimed:
                claimed.add(owner)
                by_id_rows.append((owner, row))
            elif row.external_ref:
                by_ref_rows.append(row)
            else:
                new_rows.append(row)

        ids: dict[int, int] = {}  # id(row) -> contact id
        if by_ref_rows:
            insert = dialect_insert(s, contacts)
            stmt = insert.on_conflict_do_update(
                index_elements=[contacts.c.external_ref],
                set_={
                    **{name: insert.excluded[name] for name in IMPORTED_FIELDS},
                    "updated_at": now,
                },
            ).returning(contacts.c.id, contacts.c.external_ref)
            values = [
                {
                    "external_ref": row.external_ref,
                    **_imported_values(row),
                    "created_at": now,
                    "updated_at": now,
                }
                for row in by_ref_rows
            ]
            returned = {ref: cid for cid, ref in (await s.execute(stmt, values)).all()}
            for row in by_ref_rows:
                ids[id(row)] = returned[row.external_ref]
                if row.external_ref in by_ref:
                    updated += 1
                else:
                    inserted += 1
        if by_id_rows:
            await s.execute(
                update(Contact).execution_options(synchronize_session=False),
                [
                    {
                        "id": cid,
                        **_imported_values(row),
                        **({"external_ref": row.external_ref} if row.external_ref else {}),
                        "updated_at": now,
                    }
                    for cid, row in by_id_rows
                ],
            )
            for cid, row in by_id_rows:
                ids[id(row)] = cid
            updated += len(by_id_rows)
        if new_rows:
            stmt = insert_stmt(cast(Table, contacts)).returning(
                contacts.c.id, sort_by_parameter_order=True
            )
            values = [
                {**_imported_values(row), "created_at": now, "updated_at": now} for row in new_rows
            ]
            new_ids = list((await s.execute(stmt, values)).scalars())
            for row, cid in zip(new_rows, new_ids, strict=True):
                ids[id(row)] = cid
            inserted += len(new_rows)

        address_rows: dict[tuple[str, str], dict[str, Any]] = {}
        for row in chunk:
            for a in row.addresses:
                address_rows[(a.channel, a.address_key)] = {
                    "contact_id": ids[id(row)],
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
        if personal is not None:
            made += await _add_personal(s, set(ids.values()), personal, now)
    return ImportResult(inserted=inserted, updated=updated, addresses=linked, personal=made)


async def _address_owners(
    s: AsyncSession, wanted: set[tuple[str, str]]
) -> dict[tuple[str, str], tuple[int, str | None]]:
    """(channel, address_key) -> (id, external_ref) of the contact owning it."""
    owners: dict[tuple[str, str], tuple[int, str | None]] = {}
    # One query per channel, so the (channel, address_key) unique index is used.
    for channel in sorted({channel for channel, _ in wanted}):
        keys = [key for ch, key in wanted if ch == channel]
        stmt = (
            select(ContactAddress.address_key, Contact.id, Contact.external_ref)
            .join(Contact, Contact.id == ContactAddress.contact_id)
            .where(ContactAddress.channel == channel, ContactAddress.address_key.in_(keys))
        )
        for key, cid, ref in (await s.execute(stmt)).all():
            owners[(channel, key)] = (cid, ref)
    return owners


async def _add_personal(
    s: AsyncSession, contact_ids: set[int], make: Callable[[], AddressImport], now: datetime
) -> int:
    """Give each contact without an address on `make`'s channel a new one from `make`."""
    if not contact_ids:
        return 0
    sample = make()
    # Filtered on contact_id only: with the channel in the WHERE clause SQLite prefers the
    # (channel, address_key) index and scans every address on that channel.
    rows = await s.execute(
        select(ContactAddress.contact_id, ContactAddress.channel).where(
            ContactAddress.contact_id.in_(contact_ids)
        )
    )
    have = {cid for cid, channel in rows.all() if channel == sample.channel}
    missing = sorted(contact_ids - have)
    if not missing:
        return 0
    made = [sample, *(make() for _ in missing[1:])]
    await s.execute(
        insert_stmt(cast(Table, ContactAddress.__table__)),
        [
            {
                "contact_id": cid,
                "channel": a.channel,
                "address": a.address,
                "address_key": a.address_key,
                "created_at": now,
            }
            for cid, a in zip(missing, made, strict=True)
        ],
    )
    return len(missing)
