from __future__ import annotations

from datetime import date

from bot.privacy import Pseudonymizer
from storage import repo_contacts
from storage.db import Database
from storage.repo_contacts import AddressImport, ContactImport
from tests.storage.conftest import NOW


async def test_addresses_find_contacts(db: Database, pseudonymizer: Pseudonymizer) -> None:
    key = pseudonymizer.address_key("sms", "+46701234567")
    async with db.transaction() as s:
        contact = await repo_contacts.create(s, language="sv", gender="f")
        first = await repo_contacts.add_address(s, contact.id, "sms", "+46701234567", key)
        again = await repo_contacts.add_address(s, contact.id, "sms", "+46701234567", key)
        await repo_contacts.add_address(s, contact.id, "telegram", "5551", "tg-key")
    assert first.id == again.id, "adding the same address twice is a no-op"
    async with db.transaction() as s:
        found = await repo_contacts.find_by_address(s, "sms", key)
        wrong_channel = await repo_contacts.find_by_address(s, "telegram", key)
        addresses = await repo_contacts.addresses(s, contact.id)
        telegram = await repo_contacts.address_on(s, contact.id, "telegram")
    assert found is not None and found.id == contact.id and found.language == "sv"
    assert wrong_channel is None
    assert [(a.channel, a.address) for a in addresses] == [
        ("sms", "+46701234567"),
        ("telegram", "5551"),
    ]
    assert telegram is not None and telegram.address_key == "tg-key"


async def test_an_address_moves_to_the_contact_linked_last(db: Database) -> None:
    async with db.transaction() as s:
        old = await repo_contacts.create(s)
        new = await repo_contacts.create(s)
        await repo_contacts.add_address(s, old.id, "telegram", "77", "k77")
        moved = await repo_contacts.add_address(s, new.id, "telegram", "77", "k77")
        owner = await repo_contacts.find_by_address(s, "telegram", "k77")
        left = await repo_contacts.addresses(s, old.id)
    assert moved.contact_id == new.id
    assert owner is not None and owner.id == new.id
    assert left == []


async def test_opt_out_and_back_in(db: Database) -> None:
    async with db.transaction() as s:
        a = await repo_contacts.create(s)
        b = await repo_contacts.create(s)
        c = await repo_contacts.create(s)
        await repo_contacts.set_opted_out(s, a.id, NOW)
        await repo_contacts.set_opted_out(s, b.id, NOW)
    async with db.transaction() as s:
        await repo_contacts.set_opted_out(s, b.id, None)
        opted_out = await repo_contacts.opted_out_among(s, {a.id, b.id, c.id, 999})
        none = await repo_contacts.opted_out_among(s, set())
        reread = await repo_contacts.get(s, a.id, for_update=True)
    assert opted_out == {a.id}
    assert none == set()
    assert reread is not None and reread.opted_out_at == NOW


async def test_upsert_many_inserts_updates_and_links_in_chunks(db: Database) -> None:
    rows = [
        ContactImport(
            external_ref=f"P{i:03d}",
            gender="f" if i % 2 else "m",
            birth_year=1990 + i % 20,
            target_group="ekonomiskt bistånd",
            unit="Norr",
            contact_since=date(2024, 1, 1),
            attributes={"row": i},
            addresses=(AddressImport("sms", f"+467000{i:05d}", f"key{i}"),),
        )
        for i in range(25)
    ]
    async with db.transaction() as s:
        result = await repo_contacts.upsert_many(s, rows, chunk_size=10)
    assert (result.inserted, result.updated, result.addresses) == (25, 0, 25)

    async with db.transaction() as s:
        p003 = await repo_contacts.get_by_external_ref(s, "P003")
        assert p003 is not None
        await repo_contacts.set_opted_out(s, p003.id, NOW)

    changed = [
        ContactImport(
            external_ref="P003",
            unit="Söder",
            attributes={"row": "new"},
            addresses=(AddressImport("sms", "+46700000004", "key4"),),
        ),
        ContactImport(external_ref="P100", language="ar"),
        ContactImport(external_ref="P100", language="en"),
    ]
    async with db.transaction() as s:
        result = await repo_contacts.upsert_many(s, changed, chunk_size=10)
    assert (result.inserted, result.updated, result.addresses) == (1, 1, 1)
    async with db.transaction() as s:
        p003 = await repo_contacts.get_by_external_ref(s, "P003")
        p100 = await repo_contacts.get_by_external_ref(s, "P100")
        owner_of_key4 = await repo_contacts.find_by_address(s, "sms", "key4")
        p000 = await repo_contacts.get_by_external_ref(s, "P000")
    assert p003 is not None and p100 is not None and p000 is not None
    assert (p003.unit, p003.attributes, p003.gender) == ("Söder", {"row": "new"}, None)
    assert p003.opted_out_at == NOW, "an import never undoes an opt-out"
    assert p100.language == "en", "the last row of a repeated reference wins"
    assert owner_of_key4 is not None and owner_of_key4.id == p003.id
    assert (p000.birth_year, p000.contact_since, p000.attributes) == (
        1990,
        date(2024, 1, 1),
        {"row": 0},
    )


async def test_upsert_many_handles_a_large_import(db: Database) -> None:
    rows = [
        ContactImport(external_ref=f"R{i}", addresses=(AddressImport("sms", f"+46{i}", f"h{i}"),))
        for i in range(5000)
    ]
    async with db.transaction() as s:
        result = await repo_contacts.upsert_many(s, rows)
    assert (result.inserted, result.addresses) == (5000, 5000)
    async with db.transaction() as s:
        last = await repo_contacts.find_by_address(s, "sms", "h4999")
    assert last is not None and last.external_ref == "R4999"
