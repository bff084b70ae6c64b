"""Results over HTTP: the staff API, the FLOIP Flow Results API and the public results page."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from openpyxl import load_workbook

from bot.app import create_app
from bot.channels.webchat import WebChatChannel
from bot.clock import FixedClock
from bot.results import feedback
from bot.runtime import RUNTIME, Runtime
from storage import repo_audit
from tests.results_integration.conftest import (
    AUTH,
    START,
    K,
    Person,
    feedback_messages,
    make_campaign,
    people,
    settings_for,
    walk_figures,
)

Client = TestClient[Any, Any]
SECRET = "ring mig på 070-123 45 67, hemligt svar"


@pytest.fixture
async def client(database_url: str, clock: FixedClock) -> AsyncIterator[Client]:
    app = create_app(
        settings_for(database_url),
        clock=clock,
        channels={"webchat": WebChatChannel()},
        background=False,
    )
    test_client: Client = TestClient(TestServer(app))
    await test_client.start_server()
    try:
        yield test_client
    finally:
        await test_client.close()


def runtime_of(client: Client) -> Runtime:
    runtime: Runtime = client.app[RUNTIME]
    return runtime


def answered(n: int, *, secret: bool = False) -> list[Person]:
    out = []
    for i in range(n):
        answers: dict[str, Any] = {"hjalp": "ja", "bemotande": "bra" if i % 2 else "daligt"}
        if secret and i == 0:
            answers["ovrigt"] = SECRET
        out.append(Person(answers=answers, unit="norr" if i < n // 2 else "syd"))
    return out


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/campaigns/1/results"),
        ("GET", "/api/v1/campaigns/1/results?format=csv"),
        ("GET", "/api/v1/surveys/nojdhet/results"),
        ("PUT", "/api/v1/campaigns/1/feedback"),
        ("GET", "/flow-results/packages"),
        ("GET", "/flow-results/packages/x"),
        ("GET", "/flow-results/packages/x/responses"),
    ],
)
async def test_staff_routes_need_a_token(client: Client, method: str, path: str) -> None:
    response = await client.request(method, path)
    assert response.status == 401
    response = await client.request(method, path, headers={"Authorization": "Bearer wrong"})
    assert response.status == 401


async def test_results_json_and_downloads(client: Client) -> None:
    runtime = runtime_of(client)
    campaign_id = await make_campaign(runtime, answered(10, secret=True))
    response = await client.get(
        f"/api/v1/campaigns/{campaign_id}/results?breakdown=unit&lang=en", headers=AUTH
    )
    assert response.status == 200
    data = await response.json()
    assert data["final"] is True
    assert data["results"]["participation"]["completed"] == {"value": 10, "suppressed": False}
    assert data["results"]["breakdowns"][0]["dimension"] == "unit"
    hjalp = next(q for q in data["results"]["questions"] if q["question_id"] == "hjalp")
    assert hjalp["label"] == "Have you been helped?"
    assert SECRET not in await response.text()

    response = await client.get(f"/api/v1/campaigns/{campaign_id}/results?format=csv", headers=AUTH)
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO((await response.read()).decode("utf-8-sig"))))
    assert rows[0][:2] == ["respondent", "question_id"]
    assert len(rows) == 1 + 10 * 2 + 1
    assert any("[telefon]" in cell for row in rows for cell in row)

    response = await client.get(
        f"/api/v1/campaigns/{campaign_id}/results?format=xlsx&breakdown=unit&lang=en", headers=AUTH
    )
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("application/vnd.openxmlformats")
    workbook = load_workbook(io.BytesIO(await response.read()))
    assert workbook.sheetnames == ["Summary", "Unit", "Answers", "About the answers"]

    async with runtime.db.transaction(read_only=True) as s:
        audit = await repo_audit.recent(s, action="results.export")
    assert [(a.details["format"], a.actor.startswith("api:")) for a in audit] == [
        ("xlsx", True),
        ("csv", True),
    ]


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("?format=pdf", 400, "unknown format"),
        ("?breakdown=shoe_size", 400, "unknown breakdown"),
        ("?lang=fi", 400, "has no texts in 'fi'"),
        ("?format=csv&lang=de", 400, "has no texts in 'de'"),
    ],
)
async def test_results_bad_requests(client: Client, query: str, status: int, message: str) -> None:
    campaign_id = await make_campaign(runtime_of(client), answered(5))
    response = await client.get(f"/api/v1/campaigns/{campaign_id}/results{query}", headers=AUTH)
    assert response.status == status
    assert message in (await response.json())["error"]


async def test_open_campaign_downloads_need_partial(client: Client) -> None:
    campaign_id = await make_campaign(runtime_of(client), answered(5), status="running")
    path = f"/api/v1/campaigns/{campaign_id}/results"
    assert (await client.get(path, headers=AUTH)).status == 200
    response = await client.get(f"{path}?format=csv", headers=AUTH)
    assert response.status == 409
    assert (await client.get(f"{path}?format=csv&partial=1", headers=AUTH)).status == 200
    assert (await client.get("/api/v1/campaigns/999/results", headers=AUTH)).status == 404


async def test_put_feedback(client: Client) -> None:
    campaign_id = await make_campaign(runtime_of(client), answered(10))
    path = f"/api/v1/campaigns/{campaign_id}/feedback"
    body = {
        "text": {"sv": "Vi gör om.", "en": "We redo."},
        "without_text": ["ar"],
        "plan_ref": {"sv": "Mål 1", "en": "Goal 1", "ar": "الهدف 1"},
        "hold": True,
        "delay": "2d",
    }
    response = await client.put(path, json=body, headers=AUTH)
    assert response.status == 200
    data = await response.json()
    assert data["feedback_text"] == {"sv": "Vi gör om.", "en": "We redo."}
    assert data["feedback_without_text"] == ["ar"]
    assert data["plan_refs"] == {"sv": "Mål 1", "en": "Goal 1", "ar": "الهدف 1"}
    assert (data["feedback_status"], data["feedback_delay"]) == ("held", "2d")
    assert data["feedback_timing"]["status"] == "held"
    assert data["feedback_timing"]["due"] == (START + timedelta(days=2)).isoformat()
    for bad, message in (
        ({"text": "x"}, "text must be an object"),
        ({"hold": "yes"}, "hold must be true or false"),
        ({"colour": 1}, "unknown field colour"),
        ({"text": {"fi": "x"}}, "no language 'fi'"),
        ({"text": {"en": ""}}, "no feedback text in en"),
        ({"text": {"ar": " ".join(["سنفتح مكاتبنا في المساء يومين في الأسبوع"] * 5)}}, "ar 5"),
        ({"delay": 1e30}, "the delay must be"),
        ({"delay": "soon"}, "not a duration"),
        ({"without_text": "ar"}, "without_text must be a list"),
    ):
        response = await client.put(path, json=bad, headers=AUTH)
        assert response.status == 400, bad
        assert message in (await response.json())["error"], bad
    response = await client.put("/api/v1/campaigns/999/feedback", json={}, headers=AUTH)
    assert response.status == 404


async def test_send_feedback_now_over_the_api(client: Client, clock: FixedClock) -> None:
    runtime = runtime_of(client)
    campaign_id = await make_campaign(runtime, answered(10), feedback_delay=86400)
    path = f"/api/v1/campaigns/{campaign_id}/feedback/send-now"
    response = await client.post(path, headers=AUTH)
    assert response.status == 200
    assert (await response.json())["feedback_timing"]["due"] == clock.now().isoformat()
    await runtime.tasks.run_due()
    assert len(await feedback_messages(runtime, campaign_id)) == 10
    response = await client.post(path, headers=AUTH)
    assert response.status == 409 and "already sent" in (await response.json())["error"]
    assert (
        await client.post("/api/v1/campaigns/999/feedback/send-now", headers=AUTH)
    ).status == 404


async def test_floip_packages_descriptor_and_paged_responses(client: Client) -> None:
    runtime = runtime_of(client)
    campaign_id = await make_campaign(runtime, answered(6, secret=True))
    response = await client.get("/flow-results/packages", headers=AUTH)
    assert response.status == 200
    assert response.content_type == "application/vnd.api+json"
    listing = await response.json()
    assert len(listing["data"]) == 1
    package_id = listing["data"][0]["id"]

    response = await client.get(f"/flow-results/packages/{package_id}", headers=AUTH)
    descriptor = (await response.json())["data"]["attributes"]
    assert descriptor["profile"] == "flow-results-package"
    assert descriptor["flow_results_specification_version"] == "1.0.0-rc1"
    resource = descriptor["resources"][0]
    assert resource["api-data-url"].endswith(f"/flow-results/packages/{package_id}/responses")
    assert set(resource["schema"]["questions"]) == {"hjalp", "bemotande", "ovrigt"}

    url = f"/flow-results/packages/{package_id}/responses"
    seen: list[list[Any]] = []
    params: dict[str, str] = {"page[size]": "5"}
    while True:
        response = await client.get(url, params=params, headers=AUTH)
        assert response.status == 200
        doc = await response.json()
        seen.extend(doc["data"]["attributes"]["responses"])
        next_link = doc["links"]["next"]
        if next_link is None:
            break
        params = {"page[size]": "5", "page[afterCursor]": seen[-1][1]}
    assert len(seen) == 6 * 2 + 1
    assert [r[1] for r in seen] == sorted(r[1] for r in seen)
    assert not any(SECRET in str(r) for r in seen)
    # Back from the last page.
    response = await client.get(
        url, params={"page[size]": "5", "page[beforeCursor]": seen[10][1]}, headers=AUTH
    )
    assert [r[1] for r in (await response.json())["data"]["attributes"]["responses"]] == [
        r[1] for r in seen[5:10]
    ]
    # Timestamps are the day answered; a start after it (exclusive) leaves nothing.
    day = seen[0][0]
    for start, expected in ((None, 13), (day, 0), ("2026-01-01T00:00:00+00:00", 13)):
        query = {"page[size]": "100"}
        if start:
            query["filter[start-timestamp]"] = start
        response = await client.get(url, params=query, headers=AUTH)
        assert len((await response.json())["data"]["attributes"]["responses"]) == expected
    response = await client.get(
        url, params={"filter[end-timestamp]": "2026-01-01T00:00:00+00:00"}, headers=AUTH
    )
    assert (await response.json())["data"]["attributes"]["responses"] == []
    for bad in (
        {"page[size]": "0"},
        {"filter[start-timestamp]": "yesterday"},
        {"filter[start-timestamp]": "2026-01-01T00:00:00"},
        {"page[afterCursor]": "a", "page[beforeCursor]": "b"},
    ):
        assert (await client.get(url, params=bad, headers=AUTH)).status == 400, bad
    assert (await client.get("/flow-results/packages/nope", headers=AUTH)).status == 404
    assert (await client.get("/flow-results/packages/nope/responses", headers=AUTH)).status == 404
    async with runtime.db.transaction(read_only=True) as s:
        assert await repo_audit.recent(s, action="results.floip_responses")
    assert campaign_id


async def test_public_page_for_a_closed_campaign(client: Client) -> None:
    runtime = runtime_of(client)
    campaign_id = await make_campaign(runtime, answered(10, secret=True))
    await feedback.set_feedback(
        runtime,
        campaign_id,
        text={"sv": "Vi förlänger öppettiderna.", "en": "We will open longer."},
        without_text=["ar"],
        plan_ref="Mål 3.2",
        actor="test",
    )
    response = await client.get(f"/results/{campaign_id}")
    assert response.status == 200
    page = await response.text()
    assert '<table class="figures chart"' in page and "<caption" in page
    assert "Vi förlänger öppettiderna." in page and "Mål 3.2" in page
    assert "Har du fått hjälp?" in page
    assert "100 %" in page
    assert SECRET not in page and "hemligt" not in page and "Något mer?" not in page
    english = await (await client.get(f"/results/{campaign_id}?lang=en")).text()
    assert 'lang="en"' in english and "We will open longer." in english
    assert "Have you been helped?" in english


@pytest.mark.parametrize("path", ["/results/999", "/results/abc", "/results/{open}"])
async def test_public_page_404_for_open_or_unknown(client: Client, path: str) -> None:
    open_id = await make_campaign(runtime_of(client), answered(10), status="running")
    response = await client.get(path.format(open=open_id))
    assert response.status == 404
    assert "Resultaten visas när enkäten har avslutats" in await response.text()


async def test_no_output_shows_a_group_below_k(client: Client, clock: FixedClock) -> None:
    """3 answered with k=5: the API, the page and the message show nothing but "too few"."""
    runtime = runtime_of(client)
    persons = [Person(answers={"hjalp": "ja", "bemotande": "bra"}, unit="norr") for _ in range(3)]
    campaign_id = await make_campaign(runtime, [*persons, *people(1, status="closed")])
    response = await client.get(
        f"/api/v1/campaigns/{campaign_id}/results?breakdown=unit,gender", headers=AUTH
    )
    data = await response.json()
    figures = list(walk_figures(data["results"]))
    assert figures
    for figure in figures:
        value = figure["value"]
        assert value is None or value == 0 or (isinstance(value, int) and value >= K), figure
        if isinstance(value, float):
            raise AssertionError(f"a share was published: {figure}")

    page = await (await client.get(f"/results/{campaign_id}")).text()
    assert "För få svarade för att vi ska kunna visa resultat." in page
    assert "<svg" not in page
    for digit in ("3", "4"):
        body_text = page.split("<main", 1)[1]
        assert f">{digit}<" not in body_text

    clock.advance(START.replace(hour=11) - clock.now())
    await runtime.tasks.run_due()
    messages = await feedback_messages(runtime, campaign_id)
    assert len(messages) == 3
    for message in messages:
        body = message.body or ""
        assert "För få svarade" in body
        assert "3" not in body.replace(f"/results/{campaign_id}", "")


async def test_raw_downloads_leave_out_attributes_and_say_so(client: Client) -> None:
    """Issue 10 item 8, over the API: 7 in norr and 1 in syd, so unit stays off the rows."""
    runtime = runtime_of(client)
    persons = [Person(answers={"hjalp": "ja", "bemotande": "bra"}, unit="norr") for _ in range(7)]
    persons.append(Person(answers={"hjalp": "ja", "bemotande": "bra"}, unit="syd"))
    campaign_id = await make_campaign(runtime, persons)
    response = await client.get(
        f"/api/v1/campaigns/{campaign_id}/results?format=csv&lang=en", headers=AUTH
    )
    text = (await response.read()).decode("utf-8-sig")
    first, header = text.splitlines()[:2]
    assert first.startswith("# ") and "left out of the rows: unit" in first
    assert "unit" not in header.split(",") and "syd" not in text

    listing = await (await client.get("/flow-results/packages", headers=AUTH)).json()
    package_id = listing["data"][0]["id"]
    doc = await (
        await client.get(f"/flow-results/packages/{package_id}/responses", headers=AUTH)
    ).json()
    assert doc["meta"]["background_attributes"]["left_out"] == ["unit"]
    assert all("unit" not in row[6] for row in doc["data"]["attributes"]["responses"])


async def test_followup_survey_results_over_the_api(client: Client) -> None:
    """Issue 10 item 10: a follow-up survey's results by survey id and period."""
    from datetime import UTC, datetime

    from storage.models import FollowupRule
    from tests.results_integration.test_followup_feedback import answered_followups

    runtime = runtime_of(client)
    async with runtime.db.transaction() as s:
        rule = FollowupRule(name="r", event_type="insats_ended", survey_id="nojdhet", delay=0)
        s.add(rule)
        await s.flush()
        rule_id = rule.id
    await answered_followups(runtime, 6, datetime(2026, 2, 10, 12, tzinfo=UTC), rule=rule_id)
    await answered_followups(runtime, 2, datetime(2026, 5, 10, 12, tzinfo=UTC), rule=rule_id)

    path = "/api/v1/surveys/nojdhet/results"
    response = await client.get(f"{path}?from=2026-02-01&to=2026-02-28&lang=en", headers=AUTH)
    assert response.status == 200
    data = await response.json()
    assert (data["from"], data["to"], data["followups_sent"]) == ("2026-02-01", "2026-02-28", 6)
    assert (data["origin"], data["origin_label"]) == (
        "followup",
        "Answers to follow-ups sent by the rules",
    )
    public = await (await client.get(f"{path}?origin=public", headers=AUTH)).json()
    assert public["origin"] == "public" and public["followups_sent"] == 0
    assert public["results"]["participation"]["completed"]["value"] == 0
    results = data["results"]
    assert results["participation"]["completed"] == {"value": 6, "suppressed": False}
    hjalp = next(q for q in results["questions"] if q["question_id"] == "hjalp")
    assert hjalp["label"] == "Have you been helped?" and hjalp["share_positive"]["value"] == 1.0
    everyone = await (await client.get(path, headers=AUTH)).json()
    assert everyone["results"]["participation"]["completed"]["value"] == 8
    may = await (await client.get(f"{path}?from=2026-05-01", headers=AUTH)).json()
    assert all(f["value"] in (None, 0) for f in walk_figures(may["results"]["questions"]))
    for query, status in (
        ("?from=2026-02-30", 400),
        ("?from=2026-03-01&to=2026-02-01", 400),
        ("?to=9999-12-31", 400),
        ("?from=²", 400),
        ("?breakdown=shoe", 400),
        ("?lang=fi", 400),
        ("?origin=campaign", 400),
    ):
        response = await client.get(f"{path}{query}", headers=AUTH)
        assert response.status == status, query
        assert "error" in await response.json()
    assert (await client.get("/api/v1/surveys/nope/results", headers=AUTH)).status == 404
    assert (await client.get(path)).status == 401


async def test_public_page_in_every_language_arabic_right_to_left(client: Client) -> None:
    """Issue 10 item 9: the page exists in every language of the survey; labels are page text
    (readable at any width), and nothing inline would trip a strict CSP."""
    runtime = runtime_of(client)
    campaign_id = await make_campaign(runtime, answered(10))
    await feedback.set_feedback(
        runtime,
        campaign_id,
        text={"sv": "Vi öppnar på kvällar.", "en": "We open in the evenings.", "ar": "سنفتح مساءً."},
        plan_ref={"sv": "Mål 3.2", "en": "Goal 3.2", "ar": "الهدف 3.2"},
        actor="test",
    )
    pages = {}
    for lang in ("sv", "en", "ar"):
        response = await client.get(f"/results/{campaign_id}?lang={lang}")
        assert response.status == 200
        pages[lang] = await response.text()
    ar = pages["ar"]
    assert ar.startswith('<!doctype html><html lang="ar" dir="rtl">')
    assert "النتائج: ما رأيك؟" in ar and "المشاركة" in ar and "ما سنفعله" in ar
    assert "هل حصلت على المساعدة؟" in ar and '<th scope="row">نعم</th>' in ar
    assert "<p>سنفتح مساءً.</p>" in ar and "مرتبط بـ: الهدف 3.2" in ar
    assert "Har du fått hjälp?" not in ar and "Deltagande" not in ar
    assert 'hreflang="sv" lang="sv" dir="ltr">Svenska</a>' in ar
    assert 'hreflang="en" lang="en" dir="ltr">English</a>' in ar
    assert '<html lang="sv" dir="ltr">' in pages["sv"] and '<th scope="row">Ja</th>' in pages["sv"]
    assert '<html lang="en" dir="ltr">' in pages["en"] and "Goal 3.2" in pages["en"]
    for lang, page in pages.items():
        assert " style=" not in page and "<style" not in page and "<script" not in page, lang
        assert "<text" not in page, f"{lang}: chart text inside an SVG scales with the width"
        assert '<rect class="fill" width="100.0" height="10"/>' in page  # 10 of 10 said yes
    # A language the survey does not have: the survey's own first language.
    other = await (await client.get(f"/results/{campaign_id}?lang=fi")).text()
    assert '<html lang="sv" dir="ltr">' in other


async def test_public_page_shows_a_hidden_share_without_a_bar(
    database_url: str, clock: FixedClock
) -> None:
    app = create_app(
        settings_for(database_url, suppression="cells"),
        clock=clock,
        channels={"webchat": WebChatChannel()},
        background=False,
    )
    async with TestClient(TestServer(app)) as cells:
        persons = [Person(answers={"hjalp": "ja", "bemotande": "bra"}) for _ in range(7)]
        persons.append(Person(answers={"hjalp": "nej", "bemotande": "bra"}))
        campaign_id = await make_campaign(cells.app[RUNTIME], persons)
        page = await (await cells.get(f"/results/{campaign_id}")).text()
    assert '<span class="value">visas inte</span>' in page
    assert '<rect class="fill" width="0.0" height="10"/>' in page
    assert "Vi visar aldrig en siffra som bygger på färre än 5 personer" in page
