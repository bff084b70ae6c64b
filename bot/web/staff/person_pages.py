"""A person's rights from a contact's page: download everything held about them (JSON), and
erase them after a confirmation that says what will go. Both are admin work (the export holds
their addresses in clear) and both are audit-logged by `bot.lifecycle`, under the ref's
pseudonym, never the ref itself."""

from __future__ import annotations

import json

from aiohttp import web

from bot import lifecycle
from bot.web.inputs import db_id
from bot.web.staff import i18n
from bot.web.staff.framework import redirect, render, require, runtime, t, user
from storage import repo_contacts
from storage.models import Contact


async def _contact(request: web.Request) -> tuple[Contact, str]:
    """The contact of the path and its external_ref (export and erasure go by it)."""
    contact_id = db_id(request.match_info["id"])
    if contact_id is None:
        raise web.HTTPNotFound()
    async with runtime(request).db.transaction(read_only=True) as s:
        found = await repo_contacts.get(s, contact_id)
    if found is None:
        raise web.HTTPNotFound()
    if not found.external_ref:
        raise redirect(f"/contacts/{found.id}", msg="person_no_ref")
    return found, found.external_ref


@require("admin")
async def export(request: web.Request) -> web.StreamResponse:
    """Everything held about the contact, as a JSON download (their own data, readable)."""
    found, ref = await _contact(request)
    try:
        data = await lifecycle.export_person(runtime(request), ref, actor=user(request).actor)
    except lifecycle.PersonNotFound:
        raise web.HTTPNotFound() from None
    body = json.dumps(data, ensure_ascii=False, indent=2, default=str)
    return web.Response(
        text=body,
        content_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="person-{found.id}.json"'},
    )


@require("admin")
async def confirm_erase(request: web.Request) -> web.StreamResponse:
    """What erasing the contact removes, and the button that does it."""
    found, ref = await _contact(request)
    try:
        counts = await lifecycle.person_summary(runtime(request), ref)
    except lifecycle.PersonNotFound:
        raise redirect("/contacts", msg="person_gone") from None
    return await render(
        request,
        "contacts/erase.html",
        {
            "title": t(request, "person.erase_title"),
            "c": found,
            "counts": [(t(request, f"person.kind.{kind}"), n) for kind, n in counts.items() if n],
        },
    )


@require("admin")
async def erase(request: web.Request) -> web.StreamResponse:
    """Erase the contact (released anonymous answers stay), then back to the list."""
    _, ref = await _contact(request)
    try:
        await lifecycle.erase_person(runtime(request), ref, actor=user(request).actor)
    except lifecycle.PersonNotFound:
        raise redirect("/contacts", msg="person_gone") from None
    raise redirect("/contacts", msg="person_erased")


def add_routes(app: web.Application) -> None:
    """The export and erase routes under a contact."""
    app.router.add_get("/contacts/{id}/export.json", export)
    app.router.add_get("/contacts/{id}/erase", confirm_erase)
    app.router.add_post("/contacts/{id}/erase", erase)


i18n.add_messages(
    {
        "sv": {
            "person.rights": "Personens rättigheter",
            "person.rights_hint": (
                "Registerutdrag och radering enligt GDPR. Båda loggas. Anonyma svar går inte att "
                "koppla till någon och finns varken i utdraget eller raderas."
            ),
            "person.export": "Ladda ner registerutdrag (JSON)",
            "person.erase": "Radera personen",
            "person.erase_title": "Radera personen?",
            "person.erase_explain": (
                "Kontakten, adresser, samtal, meddelanden, inbjudningar, uppföljningar, "
                "händelser och svar på enkäter som inte är anonyma tas bort. Det går inte att "
                "ångra. Anonyma svar som redan är frisläppta finns kvar, utan koppling till "
                "någon."
            ),
            "person.erase_counts": "Det här tas bort:",
            "person.erase_nothing": "Inget mer än kontakten själv.",
            "person.erase_button": "Radera för gott",
            "person.kind.addresses": "adresser",
            "person.kind.invitations": "inbjudningar",
            "person.kind.participations": "deltaganden",
            "person.kind.conversations": "samtal",
            "person.kind.messages": "meddelanden",
            "person.kind.case_events": "händelser från verksamhetssystemet",
            "person.kind.followups": "uppföljningar",
            "person.kind.answers": "svar (på enkäter som inte är anonyma)",
            "flash.person_erased": "Personen är raderad.",
            "flash.person_gone": "Personen fanns inte längre (redan raderad?).",
            "flash.person_no_ref": (
                "Kontakten saknar referens (external_ref): utdrag och radering görs med referensen."
            ),
        },
        "en": {
            "person.rights": "The person's rights",
            "person.rights_hint": (
                "Access and erasure under the GDPR. Both are logged. Anonymous answers cannot be "
                "linked to anyone, so they are neither in the export nor erased."
            ),
            "person.export": "Download everything held (JSON)",
            "person.erase": "Erase this person",
            "person.erase_title": "Erase this person?",
            "person.erase_explain": (
                "The contact, addresses, conversations, messages, invitations, follow-ups, case "
                "events and answers to surveys that are not anonymous are removed. This cannot "
                "be undone. Anonymous answers already released stay, linked to no one."
            ),
            "person.erase_counts": "This is removed:",
            "person.erase_nothing": "Nothing but the contact itself.",
            "person.erase_button": "Erase for good",
            "person.kind.addresses": "addresses",
            "person.kind.invitations": "invitations",
            "person.kind.participations": "participations",
            "person.kind.conversations": "conversations",
            "person.kind.messages": "messages",
            "person.kind.case_events": "case events",
            "person.kind.followups": "follow-ups",
            "person.kind.answers": "answers (to surveys that are not anonymous)",
            "flash.person_erased": "The person is erased.",
            "flash.person_gone": "The person was no longer there (erased already?).",
            "flash.person_no_ref": (
                "The contact has no reference (external_ref): export and erasure go by the "
                "reference."
            ),
        },
    }
)
