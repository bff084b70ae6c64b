"""Page 6, Follow-up rules (/staff/followups): the rules file's rules read-only, the API rules
editable by admins, and the follow-ups each rule has planned. See `rules_view`."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot.followups import CHANNELS, RULES_FILE
from bot.web.inputs import path_text
from bot.web.staff import i18n
from bot.web.staff.figures import local_time
from bot.web.staff.framework import redirect, render, require, runtime, t, user
from bot.web.staff.rules_view import (
    RuleRefused,
    delete_rule,
    form_to_rule,
    rule_form,
    rules_view,
    save_rule,
)
from storage import repo_events

FIELDS = ("name", "event", "filter", "survey", "delay", "window", "fatigue_days", "expires_after")


@require("viewer")
async def index(request: web.Request) -> web.StreamResponse:
    """GET /followups: the follow-up rules with pending and upcoming follow-ups."""
    rt = runtime(request)
    view = await rules_view(rt)
    return await render(
        request,
        "rules.html",
        {
            "title": t(request, "nav.followups"),
            "view": view,
            "rules_file": RULES_FILE.name,
            "can_edit": user(request).can("admin"),
            "upcoming": lambda row: ", ".join(
                local_time(at, rt.settings.schedule.tz) for at in row.upcoming
            ),
        },
    )


async def _form_page(
    request: web.Request,
    values: dict[str, object],
    *,
    name: str | None,
    problems: list[str] | None = None,
    status: int = 200,
) -> web.Response:
    rt = runtime(request)
    surveys = sorted(s.id for s in rt.catalog.surveys)
    return await render(
        request,
        "rule_form.html",
        {
            "title": t(request, "fu.edit_title", name=name) if name else t(request, "fu.new"),
            "values": values,
            "name": name,
            "problems": problems or [],
            "surveys": surveys,
            "channels": CHANNELS,
        },
        status=status,
    )


def _values(form: Any) -> tuple[dict[str, str], list[str]]:
    fields = {key: str(form.get(key, ""))[:2000] for key in (*FIELDS, "enabled")}
    channels = [str(c)[:20] for c in form.getall("channels", [])]
    return fields, channels


@require("admin")
async def new(request: web.Request) -> web.StreamResponse:
    """GET /followups/new: an empty rule form."""
    return await _form_page(request, rule_form(None), name=None)


@require("admin")
async def create(request: web.Request) -> web.StreamResponse:
    """POST /followups: save a new rule, or show the form again with its problems."""
    form = await request.post()
    fields, channels = _values(form)
    try:
        await save_rule(
            runtime(request),
            form_to_rule(fields, channels, name=None),
            name=None,
            actor=user(request).actor,
        )
    except RuleRefused as e:
        shown = {**fields, "channels": channels, "enabled": fields.get("enabled") == "on"}
        return await _form_page(request, shown, name=None, problems=e.problems, status=400)
    raise redirect("/followups", msg="rule_saved")


async def _api_rule(request: web.Request) -> tuple[str, Any] | web.Response:
    name = request.match_info["name"]
    rt = runtime(request)
    rule = None
    if path_text(name) is not None:
        async with rt.db.transaction(read_only=True) as s:
            rule = await repo_events.get_rule(s, name)
    if rule is None:
        return await render(
            request,
            "error.html",
            {
                "status": 404,
                "title": t(request, "fu.not_found_title"),
                "message": t(request, "fu.not_found", name=name[:100]),
            },
            status=404,
        )
    if rule.source == repo_events.SOURCE_FILE:
        return await render(
            request,
            "error.html",
            {
                "status": 409,
                "title": t(request, "fu.file_rule_title"),
                "message": t(request, "fu.file_rule", name=name, file=RULES_FILE.name),
            },
            status=409,
        )
    return name, rule


@require("admin")
async def edit(request: web.Request) -> web.StreamResponse:
    """GET /followups/{name}/edit: the form of an API rule; 404 if none, 409 for a file rule."""
    found = await _api_rule(request)
    if isinstance(found, web.Response):
        return found
    name, rule = found
    return await _form_page(request, rule_form(rule), name=name)


@require("admin")
async def update(request: web.Request) -> web.StreamResponse:
    """POST /followups/{name}: save a changed rule, or show the form again with its problems."""
    found = await _api_rule(request)
    if isinstance(found, web.Response):
        return found
    name, _ = found
    form = await request.post()
    fields, channels = _values(form)
    try:
        await save_rule(
            runtime(request),
            form_to_rule(fields, channels, name=name),
            name=name,
            actor=user(request).actor,
        )
    except RuleRefused as e:
        enabled = fields.get("enabled") == "on"
        shown = {**fields, "name": name, "channels": channels, "enabled": enabled}
        return await _form_page(request, shown, name=name, problems=e.problems, status=400)
    raise redirect("/followups", msg="rule_saved")


@require("admin")
async def remove(request: web.Request) -> web.StreamResponse:
    """POST /followups/{name}/delete: delete an API rule; 409 if it is refused."""
    found = await _api_rule(request)
    if isinstance(found, web.Response):
        return found
    name, _ = found
    try:
        await delete_rule(runtime(request), name, actor=user(request).actor)
    except RuleRefused as e:
        return await render(
            request,
            "error.html",
            {"status": 409, "title": t(request, "error.title"), "message": e.problems[0]},
            status=409,
        )
    raise redirect("/followups", msg="rule_deleted")


def add_routes(app: web.Application) -> None:
    """Add the follow-up rule pages."""
    app.router.add_get("/followups", index)
    app.router.add_get("/followups/new", new)
    app.router.add_post("/followups", create)
    app.router.add_get("/followups/{name}/edit", edit)
    app.router.add_post("/followups/{name}", update)
    app.router.add_post("/followups/{name}/delete", remove)


i18n.add_messages(
    {
        "sv": {
            "fu.intro": (
                "En regel gör en händelse i verksamhetssystemet (t.ex. att en insats avslutats) "
                "till en uppföljande enkät en tid senare, inom ett tidsfönster."
            ),
            "fu.file_rules": "Regler från filen {file}",
            "fu.file_note": "Ändras i filen och läses in när tjänsten startar; här visas de bara.",
            "fu.api_rules": "Regler som ändras här",
            "fu.api_none": "Inga sådana regler ännu.",
            "fu.problems": "Problem i regelfilen",
            "fu.name": "Namn",
            "fu.event": "Händelse",
            "fu.filter": "Villkor",
            "fu.survey": "Enkät",
            "fu.delay": "Fördröjning",
            "fu.window": "Tidsfönster",
            "fu.fatigue_days": "Minst antal dagar mellan enkäter till samma person",
            "fu.expires_after": "Släpps om den inte kunnat skickas inom",
            "fu.channels": "Kanaler, i ordning",
            "fu.enabled": "Påslagen",
            "fu.on": "på",
            "fu.off": "av",
            "fu.upcoming": "Planerade uppföljningar",
            "fu.upcoming_count": "{n} planerade",
            "fu.next": "Nästa: {times}",
            "fu.none_planned": "Inga planerade.",
            "fu.any": "alla",
            "fu.new": "Ny regel",
            "fu.edit": "Ändra",
            "fu.delete": "Ta bort",
            "fu.confirm_delete": "Ta bort regeln? Dess planerade uppföljningar ställs in.",
            "fu.edit_title": "Ändra regeln {name}",
            "fu.hint.delay": "T.ex. 14d (dagar), 36h (timmar).",
            "fu.hint.window": (
                "Lokal tid, t.ex. 10:00-18:00. Tomt: när som helst utom tysta timmar."
            ),
            "fu.hint.filter": "Valfritt, t.ex. target_group == 'missbruk'. Tomt: alla.",
            "fu.refused": "Regeln sparades inte",
            "fu.not_found_title": "Regeln finns inte",
            "fu.not_found": "Det finns ingen uppföljningsregel som heter {name}.",
            "fu.file_rule_title": "Regeln kommer från filen",
            "fu.file_rule": "Regeln {name} kommer från {file} och ändras där, inte här.",
            "flash.rule_saved": "Regeln är sparad.",
            "flash.rule_deleted": "Regeln är borttagen.",
        },
        "en": {
            "fu.intro": (
                "A rule turns an event in the case system (e.g. a service that ended) into a "
                "follow-up survey some time later, inside a time window."
            ),
            "fu.file_rules": "Rules from the file {file}",
            "fu.file_note": (
                "Changed in the file and read when the service starts; shown here only."
            ),
            "fu.api_rules": "Rules changed here",
            "fu.api_none": "No such rules yet.",
            "fu.problems": "Problems in the rules file",
            "fu.name": "Name",
            "fu.event": "Event",
            "fu.filter": "Condition",
            "fu.survey": "Survey",
            "fu.delay": "Delay",
            "fu.window": "Time window",
            "fu.fatigue_days": "Fewest days between surveys to the same person",
            "fu.expires_after": "Dropped if it could not be sent within",
            "fu.channels": "Channels, in order",
            "fu.enabled": "On",
            "fu.on": "on",
            "fu.off": "off",
            "fu.upcoming": "Planned follow-ups",
            "fu.upcoming_count": "{n} planned",
            "fu.next": "Next: {times}",
            "fu.none_planned": "None planned.",
            "fu.any": "all",
            "fu.new": "New rule",
            "fu.edit": "Edit",
            "fu.delete": "Delete",
            "fu.confirm_delete": "Delete the rule? Its planned follow-ups are cancelled.",
            "fu.edit_title": "Edit the rule {name}",
            "fu.hint.delay": "E.g. 14d (days), 36h (hours).",
            "fu.hint.window": "Local time, e.g. 10:00-18:00. Empty: any time outside quiet hours.",
            "fu.hint.filter": "Optional, e.g. target_group == 'missbruk'. Empty: everybody.",
            "fu.refused": "The rule was not saved",
            "fu.not_found_title": "No such rule",
            "fu.not_found": "There is no follow-up rule named {name}.",
            "fu.file_rule_title": "The rule comes from the file",
            "fu.file_rule": "The rule {name} comes from {file} and is changed there, not here.",
            "flash.rule_saved": "The rule is saved.",
            "flash.rule_deleted": "The rule is deleted.",
        },
    }
)
