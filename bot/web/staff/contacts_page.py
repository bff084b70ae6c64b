"""Page 3, contacts: search and filter (keyset pages, fast at 100,000 contacts), CSV upload with
the CLI's per-line errors and a progress bar, a contact's page (addresses masked, opt-out,
personal link), and an audience's personal links as CSV or as printable letters with QR codes.

Why one module: it is one staff page (one module per page, HACKING.md); its list, upload and links
share the analyst-role checks and the audit entries.

Contacts are personal data: every page here needs the analyst role; links are audit-logged."""

from __future__ import annotations

import asyncio
import io
import secrets
from dataclasses import dataclass, field
from typing import Any

import segno
from aiohttp import BodyPartReader, web
from markupsafe import Markup

from bot.contacts import links as contact_links
from bot.contacts.importer import ImportRefused, ImportReport, import_validated, validate_csv
from bot.web.inputs import db_id
from bot.web.staff import i18n
from bot.web.staff.framework import (
    multipart,
    render,
    require,
    runtime,
    t,
    url,
    user,
)
from flows.expr import ExprError
from storage import repo_audit, repo_contacts, repo_staff_views
from storage.repo_staff_views import ContactFilter

PAGE_SIZE = 50
COUNT_CAP = 10_000
MAX_UPLOAD = 16 * 1024 * 1024
MAX_SHOWN_ERRORS = 200
MAX_JOBS = 50
MAX_LETTERS = 2000


@dataclass
class ImportJob:
    """One upload being imported (kept in this process's memory)."""

    id: str
    owner: str
    source: str
    total: int = 0
    done: int = 0
    state: str = "running"
    """running, done, refused or failed."""
    errors: list[str] = field(default_factory=list)
    whole_file: bool = False
    report: ImportReport | None = None
    task: asyncio.Task[None] | None = None


JOBS_KEY = web.AppKey("staff_import_jobs", dict)


def _jobs(request: web.Request) -> dict[str, ImportJob]:
    jobs: dict[str, ImportJob] = request.config_dict[JOBS_KEY]
    return jobs


def mask(channel: str, address: str) -> str:
    """An address with all but its last two characters hidden."""
    if channel == "webchat":
        return "••••••"
    tail = address[-2:]
    head = address[:3] if channel == "sms" and address.startswith("+") else ""
    return f"{head}{'•' * max(len(address) - len(head) - 2, 3)}{tail}"


def _filter(request: web.Request) -> ContactFilter:
    q = request.query

    def get(name: str) -> str:
        return q.get(name, "").strip()[:100]

    attribute = get("attribute")
    if attribute and not attribute.replace("_", "").isalnum():
        attribute = ""
    return ContactFilter(
        ref=get("ref"),
        unit=get("unit"),
        target_group=get("target_group"),
        language=get("language"),
        opted_out=get("opted_out") if get("opted_out") in ("yes", "no") else "",
        attribute=attribute,
        value=get("value"),
    )


@require("analyst")
async def listing(request: web.Request) -> web.StreamResponse:
    """Search contacts, a page at a time."""
    rt = runtime(request)
    f = _filter(request)
    after = db_id(request.query.get("after", "0")) or 0
    async with rt.db.transaction(read_only=True) as s:
        rows = await repo_staff_views.search_contacts(s, f, after, PAGE_SIZE + 1)
        total = await repo_staff_views.count_contacts(s, f, COUNT_CAP + 1)
        choices = {
            col: await repo_staff_views.distinct_values(s, col)
            for col in repo_staff_views.FILTERABLE
        }
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    query = {name: getattr(f, name) for name in ContactFilter.__slots__ if getattr(f, name)}
    return await render(
        request,
        "contacts/list.html",
        {
            "title": t(request, "nav.contacts"),
            "f": f,
            "rows": rows,
            "total": t(request, "contacts.total_many", n=COUNT_CAP)
            if total > COUNT_CAP
            else t(request, "contacts.total", n=total),
            "choices": choices,
            "next": url("/contacts", **query, after=rows[-1].id) if more and rows else "",
            "first": url("/contacts", **query) if after else "",
        },
    )


@require("analyst")
async def contact(request: web.Request) -> web.StreamResponse:
    """One contact: attributes, masked addresses, opt-out and the personal link."""
    rt = runtime(request)
    contact_id = db_id(request.match_info["id"])
    if contact_id is None:
        raise web.HTTPNotFound()
    async with rt.db.transaction(read_only=True) as s:
        found = await repo_contacts.get(s, contact_id)
        if found is None:
            raise web.HTTPNotFound()
        addresses = await repo_contacts.addresses(s, contact_id)
    link = await contact_links.contact_link(rt, found.external_ref) if found.external_ref else None
    if link is not None:
        await _audit(request, "contacts.link", f"contact:{contact_id}")
    return await render(
        request,
        "contacts/detail.html",
        {
            "title": found.external_ref or t(request, "contacts.no_ref", id=contact_id),
            "c": found,
            "addresses": [(a.channel, mask(a.channel, a.address)) for a in addresses],
            "link": link,
            "opted_out": found.opted_out_at,
        },
    )


async def _audit(request: web.Request, action: str, target: str, **details: Any) -> None:
    rt = runtime(request)
    async with rt.db.transaction() as s:
        await repo_audit.log(s, user(request).actor, action, target, details, at=rt.clock.now())


# -- upload ----------------------------------------------------------------------------------


@require("analyst")
async def upload_form(request: web.Request) -> web.StreamResponse:
    """The CSV upload form."""
    return await render(request, "contacts/upload.html", {"title": t(request, "contacts.upload")})


async def _read_upload(request: web.Request) -> tuple[bytes, str, bool]:
    reader = multipart(request)
    data = b""
    name = "upload.csv"
    skip = False
    while True:
        part = await reader.next()
        if part is None:
            break
        if not isinstance(part, BodyPartReader):
            continue
        if part.name == "skip_invalid":
            skip = (await part.read_chunk(1024))[:10].strip() in (b"1", b"on", b"yes")
        elif part.name == "file":
            name = (part.filename or name)[-100:]
            chunks = []
            size = 0
            while chunk := await part.read_chunk(64 * 1024):
                size += len(chunk)
                if size > MAX_UPLOAD:
                    raise web.HTTPRequestEntityTooLarge(max_size=MAX_UPLOAD, actual_size=size)
                chunks.append(chunk)
            data = b"".join(chunks)
    return data, name, skip


@require("analyst")
async def upload(request: web.Request) -> web.StreamResponse:
    """Validate the file as the CLI does and import it in the background (or show why not)."""
    rt = runtime(request)
    data, name, skip = await _read_upload(request)
    job = ImportJob(secrets.token_urlsafe(12), user(request).name, name)
    jobs = _jobs(request)
    while len(jobs) >= MAX_JOBS:
        jobs.pop(next(iter(jobs)))
    jobs[job.id] = job
    today = rt.clock.now().astimezone(rt.settings.schedule.tz).date()

    def validate() -> Any:
        stream = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", newline="")
        return validate_csv(stream, today=today)

    if not data:
        job.state, job.whole_file = "refused", True
        job.errors = [t(request, "contacts.empty_file")]
    else:
        validated = await asyncio.to_thread(validate)
        job.total = len(validated.rows)
        job.errors = [str(e) for e in validated.errors]
        job.whole_file = validated.unreadable
        if validated.errors and (validated.unreadable or not skip):
            job.state = "refused"
        else:
            job.task = asyncio.create_task(_run(request, job, validated, skip))
    target = url(f"/contacts/imports/{job.id}")
    if "application/json" in request.headers.get("Accept", ""):
        return web.json_response({"next": target})
    raise web.HTTPSeeOther(target)


async def _run(request: web.Request, job: ImportJob, validated: Any, skip: bool) -> None:
    rt = runtime(request)

    def progress(done: int, total: int) -> None:
        job.done, job.total = done, total

    try:
        job.report = await import_validated(
            rt.db,
            rt.service.pseudonymizer,
            validated,
            skip_invalid=skip,
            actor=f"staff:{job.owner}",
            source=job.source,
            progress=progress,
            chunk_size=500,
        )
        job.state = "done"
    except ImportRefused:
        job.state = "refused"
    except Exception:
        job.state = "failed"
        raise


def _job(request: web.Request) -> ImportJob:
    job = _jobs(request).get(request.match_info["job"])
    if job is None or job.owner != user(request).name:
        raise web.HTTPNotFound()
    return job


def _job_json(request: web.Request, job: ImportJob) -> dict[str, Any]:
    report = job.report
    return {
        "state": job.state,
        "done": job.state != "running",
        "rows_done": job.done,
        "total": job.total,
        "summary": t(
            request,
            "contacts.import_done",
            inserted=report.inserted,
            updated=report.updated,
            skipped=len(report.skipped),
        )
        if report
        else "",
        "next": url(f"/contacts/imports/{job.id}") if job.state != "running" else "",
    }


@require("analyst")
async def job_page(request: web.Request) -> web.StreamResponse:
    """An upload's progress, then what it did or why nothing was imported."""
    job = _job(request)
    return await render(
        request,
        "contacts/job.html",
        {
            "title": t(request, "contacts.import_title", name=job.source),
            "job": job,
            "j": _job_json(request, job),
            "errors": job.errors[:MAX_SHOWN_ERRORS],
            "more_errors": max(len(job.errors) - MAX_SHOWN_ERRORS, 0),
        },
    )


@require("analyst")
async def job_json(request: web.Request) -> web.StreamResponse:
    """An upload's progress."""
    return web.json_response(_job_json(request, _job(request)))


# -- links and letters -----------------------------------------------------------------------


async def _links(request: web.Request) -> tuple[str, contact_links.LinkList | None, str]:
    audience = request.query.get("audience", "").strip()[:2000]
    try:
        result = await contact_links.audience_links(
            runtime(request), audience or None, actor=user(request).actor
        )
    except ExprError as e:
        return (
            audience,
            None,
            t(request, "campaigns.audience_error", column=e.column, error=e.message),
        )
    return audience, result, ""


@require("analyst")
async def links_form(request: web.Request) -> web.StreamResponse:
    """Choose an audience for its personal links."""
    return await render(
        request,
        "contacts/links.html",
        {
            "title": t(request, "contacts.links"),
            "audience": request.query.get("audience", ""),
            "public_url_set": runtime(request).settings.server.public_url_set,
        },
    )


async def _links_refused(request: web.Request, audience: str, error: str) -> web.StreamResponse:
    """The links form again, with why the audience was refused (422)."""
    return await render(
        request,
        "contacts/links.html",
        {
            "title": t(request, "contacts.links"),
            "audience": audience,
            "error": error,
            "public_url_set": runtime(request).settings.server.public_url_set,
        },
        status=422,
    )


@require("analyst")
async def links_csv(request: web.Request) -> web.StreamResponse:
    """The audience's personal links as a CSV file (Excel opens it: UTF-8 with a BOM)."""
    audience, result, error = await _links(request)
    if result is None:
        return await _links_refused(request, audience, error)
    out = io.StringIO()
    contact_links.write_csv(result.links, out)
    return web.Response(
        body=("\ufeff" + out.getvalue()).encode("utf-8"),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": 'attachment; filename="personal-links.csv"'},
    )


def qr_svg(link: str, label: str) -> Markup:
    """The link as an inline SVG QR code."""
    svg = segno.make(link, error="m").svg_inline(scale=4, omitsize=True)
    return Markup(svg.replace("<svg ", f'<svg role="img" aria-label="{Markup.escape(label)}" ', 1))


@require("analyst")
async def letters(request: web.Request) -> web.StreamResponse:
    """One printable A4 letter per person: the short link and its QR code (print CSS)."""
    audience, result, error = await _links(request)
    if result is None:
        return await _links_refused(request, audience, error)
    rt = runtime(request)
    people = result.links[:MAX_LETTERS]
    return await render(
        request,
        "contacts/letters.html",
        {
            "title": t(request, "contacts.letters"),
            "audience": audience,
            "people": [
                (
                    link,
                    qr_svg(link.webchat_link, t(request, "letters.qr")),
                    i18n.pick_language(link.language),
                )
                for link in people
            ],
            "tl": i18n.translate,
            "cut": len(result.links) - len(people),
            "organisation": rt.settings.organisation.name,
        },
    )


async def _cancel_jobs(app: web.Application) -> None:
    for job in app[JOBS_KEY].values():
        if job.task is not None and not job.task.done():
            job.task.cancel()


def add_routes(app: web.Application) -> None:
    """The contact pages."""
    app[JOBS_KEY] = {}
    app.on_shutdown.append(_cancel_jobs)
    app.router.add_get("/contacts", listing)
    app.router.add_get("/contacts/upload", upload_form)
    app.router.add_post("/contacts/upload", upload)
    app.router.add_get("/contacts/imports/{job}.json", job_json)
    app.router.add_get("/contacts/imports/{job}", job_page)
    app.router.add_get("/contacts/links", links_form)
    app.router.add_get("/contacts/links.csv", links_csv)
    app.router.add_get("/contacts/letters", letters)
    app.router.add_get("/contacts/{id}", contact)


i18n.add_messages(
    {
        "sv": {
            "contacts.total": "{n} kontakter matchar.",
            "contacts.total_many": "Fler än {n} kontakter matchar.",
            "contacts.filter": "Sök och filtrera",
            "contacts.ref": "Referens börjar med",
            "contacts.unit": "Enhet",
            "contacts.target_group": "Målgrupp",
            "contacts.language": "Språk",
            "contacts.opted_out": "Avanmäld",
            "contacts.any": "alla",
            "contacts.attribute": "Egen egenskap",
            "contacts.value": "har värdet",
            "contacts.none": "Inga kontakter matchar.",
            "contacts.no_ref": "Kontakt {id} (utan referens)",
            "contacts.upload": "Ladda upp kontakter (CSV)",
            "contacts.file": "CSV-fil",
            "contacts.file_hint": (
                "Samma kolumner som kommandot brukardialog contacts import: external_ref, "
                "phone, telegram_chat_id, language, gender, birth_year, target_group, unit, "
                "contact_since och egna kolumner som börjar med attr_."
            ),
            "contacts.skip_invalid": "Importera de giltiga raderna och lista resten",
            "contacts.upload_submit": "Ladda upp",
            "contacts.upload_failed": "Uppladdningen misslyckades; försök igen.",
            "contacts.empty_file": "Filen är tom eller saknas.",
            "contacts.import_title": "Import av {name}",
            "contacts.importing": "Importerar {done} av {total} rader …",
            "contacts.import_done": (
                "Klart: {inserted} nya, {updated} uppdaterade, "
                "{skipped} ogiltiga rader hoppades över."
            ),
            "contacts.refused": "Inget importerades. Rätta raderna nedan och ladda upp filen igen:",
            "contacts.refused_file": (
                "Filen kunde inte läsas som en kontaktlista; inget importerades:"
            ),
            "contacts.skipped": "Ogiltiga rader som hoppades över:",
            "contacts.more_errors": "… och {n} fler.",
            "contacts.failed": (
                "Importen avbröts av ett oväntat fel; kör den igen (den är säker att upprepa)."
            ),
            "contacts.addresses": "Adresser (maskerade)",
            "contacts.link": "Personlig länk",
            "contacts.no_link": "Ingen personlig länk (kontakten saknar referens eller länk).",
            "contacts.opted_out_at": "Avanmäld {when}",
            "contacts.not_opted_out": "Inte avanmäld",
            "contacts.links": "Personliga länkar",
            "contacts.links_hint": (
                "Tomt: alla. Avanmälda lämnas utanför. En länk låter den som har den svara som "
                "personen, så hantera filen och breven varsamt; uttaget loggas."
            ),
            "contacts.links_csv": "Hämta som CSV",
            "contacts.letters": "Brev att skriva ut",
            "contacts.letters_button": "Visa brev att skriva ut",
            "contacts.public_url": (
                "server.public_url är inte satt: länkarna pekar på den här datorn."
            ),
            "letters.print": "Skriv ut",
            "letters.count": "{n} brev, ett A4 per person.",
            "letters.cut": "Bara de första 2000 visas; {n} till finns. Dela upp målgruppen.",
            "letters.greeting": "Hej!",
            "letters.body": (
                "{organisation} vill gärna höra vad du tycker. Svara på några korta frågor "
                "genom att skanna QR-koden med mobilen eller skriva in länken i en webbläsare."
            ),
            "letters.private": "Länken är personlig. Dina svar sparas utan ditt namn.",
            "letters.qr": "QR-kod med länken",
            "letters.none": "Ingen i målgruppen har en personlig länk.",
        },
        "en": {
            "contacts.total": "{n} contacts match.",
            "contacts.total_many": "More than {n} contacts match.",
            "contacts.filter": "Search and filter",
            "contacts.ref": "Reference starts with",
            "contacts.unit": "Unit",
            "contacts.target_group": "Target group",
            "contacts.language": "Language",
            "contacts.opted_out": "Opted out",
            "contacts.any": "any",
            "contacts.attribute": "Own attribute",
            "contacts.value": "has the value",
            "contacts.none": "No contacts match.",
            "contacts.no_ref": "Contact {id} (no reference)",
            "contacts.upload": "Upload contacts (CSV)",
            "contacts.file": "CSV file",
            "contacts.file_hint": (
                "The columns of the command brukardialog contacts import: external_ref, phone, "
                "telegram_chat_id, language, gender, birth_year, target_group, unit, "
                "contact_since and own columns starting with attr_."
            ),
            "contacts.skip_invalid": "Import the valid rows and list the rest",
            "contacts.upload_submit": "Upload",
            "contacts.upload_failed": "The upload failed; try again.",
            "contacts.empty_file": "The file is empty or missing.",
            "contacts.import_title": "Import of {name}",
            "contacts.importing": "Importing {done} of {total} rows …",
            "contacts.import_done": (
                "Done: {inserted} new, {updated} updated, {skipped} invalid rows skipped."
            ),
            "contacts.refused": (
                "Nothing was imported. Fix the rows below and upload the file again:"
            ),
            "contacts.refused_file": (
                "The file cannot be read as a contact list; nothing was imported:"
            ),
            "contacts.skipped": "Invalid rows that were skipped:",
            "contacts.more_errors": "… and {n} more.",
            "contacts.failed": (
                "The import stopped on an unexpected error; run it again (it is safe to repeat)."
            ),
            "contacts.addresses": "Addresses (masked)",
            "contacts.link": "Personal link",
            "contacts.no_link": "No personal link (the contact has no reference or link).",
            "contacts.opted_out_at": "Opted out {when}",
            "contacts.not_opted_out": "Not opted out",
            "contacts.links": "Personal links",
            "contacts.links_hint": (
                "Empty: everyone. Opted-out people are left out. A link lets whoever holds it "
                "answer as that person, so handle the file and letters with care; this is logged."
            ),
            "contacts.links_csv": "Download as CSV",
            "contacts.letters": "Letters to print",
            "contacts.letters_button": "Show letters to print",
            "contacts.public_url": (
                "server.public_url is not set: the links point at this machine."
            ),
            "letters.print": "Print",
            "letters.count": "{n} letters, one A4 page per person.",
            "letters.cut": "Only the first 2000 are shown; {n} more exist. Split the audience.",
            "letters.greeting": "Hello!",
            "letters.body": (
                "{organisation} would like to hear what you think. Answer a few short questions "
                "by scanning the QR code with your phone or typing the link into a browser."
            ),
            "letters.private": "The link is personal. Your answers are saved without your name.",
            "letters.qr": "QR code with the link",
            "letters.none": "Nobody in the audience has a personal link.",
        },
    }
)
