"""Pages 6-8 over HTTP: follow-up rules (admins edit API rules; file rules stay read-only),
surveys with a try-out that stores nothing, and the audit log filtered and paged."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bot import followups
from storage import repo_audit, repo_events
from storage.models import Conversation, FollowupRule, Message, Respondent
from tests.results_integration.conftest import START
from tests.web.staff.helpers import Client, add_user, runtime_of, sign_in

RULE = {
    "name": "efter-besok",
    "event": "besok_avslutat",
    "survey": "nojdhet",
    "filter": "",
    "delay": "3d",
    "window": "10:00-18:00",
    "fatigue_days": "30",
    "expires_after": "7d",
    "channels": "sms",
    "enabled": "on",
}


async def _as(client: Client, role: str) -> str:
    await add_user(client, role, role)
    return await sign_in(client, role)


async def _file_rule(client: Client) -> None:
    """A rule as the rules file loads it (the file's own rules name surveys this test service
    does not serve, so they only show as problems)."""
    rt = runtime_of(client)
    await followups.load_rules(rt)
    values = repo_events.RuleValues(
        name="fil-regel", event_type="insats_ended", survey_id="nojdhet", delay=86400
    )
    async with rt.db.transaction() as s:
        await repo_events.save_rule(s, values, source=repo_events.SOURCE_FILE, now=START)


async def _rule(client: Client, name: str) -> FollowupRule | None:
    async with runtime_of(client).db.transaction(read_only=True) as s:
        return await repo_events.get_rule(s, name)


async def test_admin_creates_edits_and_deletes_an_api_rule(client: Client) -> None:
    token = await _as(client, "admin")
    await _file_rule(client)
    page = await (await client.get("/staff/followups")).text()
    assert "fil-regel" in page  # the file rule, shown
    assert "/followups/fil-regel/edit" not in page  # but not editable
    assert "Problem i regelfilen" in page  # the test service lacks the file rule's survey
    form = await client.get("/staff/followups/new")
    assert form.status == 200 and 'name="event"' in await form.text()
    created = await client.post(
        "/staff/followups", data={**RULE, "csrf_token": token}, allow_redirects=False
    )
    assert created.status == 303, await created.text()
    rule = await _rule(client, "efter-besok")
    assert rule is not None and rule.source == "api" and rule.channels == ["sms"]
    listed = await (await client.get("/staff/followups")).text()
    assert "/staff/followups/efter-besok/edit" in listed
    edit = await client.get("/staff/followups/efter-besok/edit")
    assert 'value="3d"' in await edit.text()
    updated = await client.post(
        "/staff/followups/efter-besok",
        data={**RULE, "delay": "5d", "csrf_token": token},
        allow_redirects=False,
    )
    assert updated.status == 303
    rule = await _rule(client, "efter-besok")
    assert rule is not None and rule.delay == 5 * 86400
    deleted = await client.post(
        "/staff/followups/efter-besok/delete", data={"csrf_token": token}, allow_redirects=False
    )
    assert deleted.status == 303 and await _rule(client, "efter-besok") is None
    async with runtime_of(client).db.transaction(read_only=True) as s:
        actions = [(e.actor, e.action) for e in await repo_audit.recent(s)]
    assert ("staff:admin", "followup_rule.create") in actions
    assert ("staff:admin", "followup_rule.delete") in actions


async def test_bad_rule_input_is_shown_on_the_form(client: Client) -> None:
    token = await _as(client, "admin")
    await _file_rule(client)
    response = await client.post(
        "/staff/followups",
        data={**RULE, "delay": "soon", "window": "25:00-26:00", "csrf_token": token},
    )
    text = await response.text()
    assert response.status == 400 and "delay:" in text and "window:" in text
    assert 'value="soon"' in text  # what was typed stays
    assert await _rule(client, "efter-besok") is None
    empty = await client.post("/staff/followups", data={"csrf_token": token})
    etext = await empty.text()
    assert empty.status == 400
    for key in ("name", "event", "delay"):
        assert f"{key}: required" in etext
    file_rule = await client.get("/staff/followups/fil-regel/edit")
    assert file_rule.status == 409 and "followups.toml" in await file_rule.text()
    file_delete = await client.post("/staff/followups/fil-regel/delete", data={"csrf_token": token})
    assert file_delete.status == 409 and await _rule(client, "fil-regel") is not None
    missing = await client.post("/staff/followups/nope/delete", data={"csrf_token": token})
    assert missing.status == 404 and "nope" in await missing.text()


@pytest.mark.parametrize("role", ["viewer", "analyst"])
async def test_only_admins_edit_rules(client: Client, role: str) -> None:
    token = await _as(client, role)
    page = await client.get("/staff/followups")
    assert page.status == 200 and "/staff/followups/new" not in await page.text()
    assert (await client.get("/staff/followups/new")).status == 403
    refused = await client.post("/staff/followups", data={**RULE, "csrf_token": token})
    assert refused.status == 403
    assert await _rule(client, "efter-besok") is None


async def test_rule_post_without_csrf_is_refused(client: Client) -> None:
    await _as(client, "admin")
    assert (await client.post("/staff/followups", data=RULE)).status == 403
    assert await _rule(client, "efter-besok") is None


async def _stored(client: Client) -> tuple[int, ...]:
    async with runtime_of(client).db.transaction(read_only=True) as s:
        return tuple(
            [
                int(await s.scalar(select(func.count()).select_from(m)) or 0)
                for m in (Conversation, Respondent, Message)
            ]
        )


async def test_survey_try_out_runs_the_engine_and_stores_nothing(client: Client) -> None:
    token = await _as(client, "viewer")
    index = await (await client.get("/staff/surveys")).text()
    assert "/staff/surveys/nojdhet" in index and "Inga problem" in index
    before = await _stored(client)
    started = await client.post(
        "/staff/surveys/nojdhet/try", data={"csrf_token": token, "lang": "en"}
    )
    html = await started.text()
    assert started.status == 200 and "Have you been helped?" in html
    trial = re.search(r'name="token" value="([^"]+)"', html)
    assert trial
    answered = await client.post(
        "/staff/surveys/nojdhet/try",
        data={"csrf_token": token, "token": trial[1], "payload": "choice:ja"},
    )
    text = await answered.text()
    assert "How were you treated?" in text
    assert await _stored(client) == before
    stale = await client.post(
        "/staff/surveys/nojdhet/try", data={"csrf_token": token, "token": "x.y", "text": "ja"}
    )
    assert stale.status == 400 and "out of date" in await stale.text()
    bad_lang = await client.post(
        "/staff/surveys/nojdhet/try", data={"csrf_token": token, "lang": "de"}
    )
    assert bad_lang.status == 400 and "no language" in await bad_lang.text()
    missing = await client.get("/staff/surveys/nope")
    assert missing.status == 404 and "nope" in await missing.text()
    no_csrf = await client.post("/staff/surveys/nojdhet/try", data={"lang": "en"})
    assert no_csrf.status == 403


async def test_audit_log_is_filtered_and_paged(client: Client) -> None:
    await _as(client, "viewer")
    async with runtime_of(client).db.transaction() as s:
        for i in range(55):
            await repo_audit.log(
                s,
                "staff:anna" if i % 2 else "cli:root",
                "campaign.create",
                f"campaign:{i}",
                at=START - timedelta(hours=i),
            )
    first = await (await client.get("/staff/audit")).text()
    assert "campaign:0" in first and "Äldre" in first
    second = await (await client.get("/staff/audit?page=2")).text()
    assert "campaign:54" in second and "Nyare" in second
    anna = await (await client.get("/staff/audit?actor=staff:anna")).text()
    assert "campaign:1<" in anna and "campaign:2<" not in anna
    day = await (await client.get("/staff/audit?from=2026-03-01&to=2026-03-01")).text()
    assert "campaign:12<" in day and "campaign:11<" not in day
    bad = await client.get("/staff/audit?from=igår")
    text = await bad.text()
    assert bad.status == 400 and "gick inte att använda" in text and "Traceback" not in text
