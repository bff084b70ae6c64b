"""The feedback page over HTTP: the saved message per language, the live preview endpoint,
saving through the domain's checks, hold/release/send now, roles and CSRF."""

from __future__ import annotations

import pytest

from bot.results import feedback
from storage import repo_results
from tests.results_integration.conftest import make_campaign, people
from tests.web.staff.helpers import Client, add_user, csrf_of, runtime_of, sign_in


async def _setup(client: Client, role: str, **kwargs: object) -> tuple[int, str]:
    await add_user(client, role, role)
    token = await sign_in(client, role)
    campaign = await make_campaign(runtime_of(client), people(10), **kwargs)  # type: ignore[arg-type]
    return campaign, token


def _form(token: str, **values: str) -> dict[str, str]:
    data = {"csrf_token": token, "text_sv": "", "text_en": "", "text_ar": "", "delay": "1h"}
    data.update(values)
    return data


async def _stored(client: Client, campaign: int) -> dict[str, str]:
    async with runtime_of(client).db.transaction(read_only=True) as s:
        found = await repo_results.campaign(s, campaign)
    assert found is not None
    return dict(found.feedback_text or {})


async def test_analyst_writes_texts_and_sees_the_exact_message(client: Client) -> None:
    campaign, token = await _setup(client, "analyst")
    page = await client.get(f"/staff/campaigns/{campaign}/feedback")
    html = await page.text()
    assert page.status == 200 and "10 personer svarade" in html and "SMS-delar" in html
    preview = await client.get(
        f"/staff/campaigns/{campaign}/feedback/preview.json",
        params={"text_sv": "Vi kortar väntetiden.", "text_en": "We cut waiting."},
    )
    data = await preview.json()
    by_lang = {item["lang"]: item for item in data["languages"]}
    assert "Det här gör vi: Vi kortar väntetiden." in by_lang["sv"]["message"]
    assert by_lang["sv"]["fits"] and by_lang["sv"]["segments"]["encoding"] == "GSM-7"
    assert by_lang["ar"]["segments"]["encoding"] == "UCS-2"
    assert await _stored(client, campaign) == {}  # a preview stores nothing
    saved = await client.post(
        f"/staff/campaigns/{campaign}/feedback",
        data=_form(
            token, text_sv="Vi kortar väntetiden.", text_en="We cut waiting.", without_ar="on"
        ),
        allow_redirects=False,
    )
    assert saved.status == 303, await saved.text()
    assert await _stored(client, campaign) == {
        "sv": "Vi kortar väntetiden.",
        "en": "We cut waiting.",
    }
    after = await (await client.get(saved.headers["Location"])).text()
    assert "Återkopplingen är sparad." in after and "Det här gör vi: Vi kortar väntetiden." in after


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ({}, "Skriv en text på"),
        ({"text_sv": "x", "text_en": "y", "text_ar": "z", "delay": "soon"}, "delay"),
        (
            {"text_sv": "Vi ska bli bättre. " * 30, "without_en": "on", "without_ar": "on"},
            "more than 3 SMS segments",
        ),
    ],
)
async def test_bad_feedback_is_refused_on_the_page(
    client: Client, values: dict[str, str], says: str
) -> None:
    campaign, token = await _setup(client, "analyst")
    response = await client.post(
        f"/staff/campaigns/{campaign}/feedback", data=_form(token, **values)
    )
    assert response.status == 400
    text = await response.text()
    assert says in text and "Traceback" not in text
    assert await _stored(client, campaign) == {}
    # What was written is still in the form.
    if values.get("text_sv"):
        assert values["text_sv"].strip()[:10] in text


async def test_stale_form_without_a_language_changes_nothing(client: Client) -> None:
    campaign, token = await _setup(client, "analyst")
    response = await client.post(
        f"/staff/campaigns/{campaign}/feedback",
        data={"csrf_token": token, "text_sv": "Hej", "delay": "1h"},
    )
    assert response.status == 400 and "inaktuellt" in await response.text()
    assert await _stored(client, campaign) == {}


async def test_hold_release_and_send_now(client: Client) -> None:
    campaign, token = await _setup(client, "analyst")
    base = f"/staff/campaigns/{campaign}/feedback"
    held = await client.post(f"{base}/hold", data={"csrf_token": token}, allow_redirects=False)
    assert held.status == 303
    assert "pausad" in await (await client.get(base)).text()
    refused = await client.post(f"{base}/send-now", data={"csrf_token": token})
    assert refused.status == 409 and "held" in await refused.text()
    await client.post(f"{base}/release", data={"csrf_token": token})
    sent = await client.post(f"{base}/send-now", data={"csrf_token": token}, allow_redirects=False)
    assert sent.status == 303
    async with runtime_of(client).db.transaction(read_only=True) as s:
        found = await repo_results.campaign(s, campaign)
    assert found is not None and found.feedback_status == feedback.PENDING


async def test_send_now_refused_while_running(client: Client) -> None:
    campaign, token = await _setup(client, "admin", status="running")
    page = await (await client.get(f"/staff/campaigns/{campaign}/feedback")).text()
    assert "send-now" not in page
    refused = await client.post(
        f"/staff/campaigns/{campaign}/feedback/send-now", data={"csrf_token": token}
    )
    assert refused.status == 409 and "once it has closed" in await refused.text()


async def test_viewer_reads_but_cannot_write(client: Client) -> None:
    campaign, token = await _setup(client, "viewer")
    page = await client.get(f"/staff/campaigns/{campaign}/feedback")
    html = await page.text()
    assert page.status == 200 and "readonly" in html and "/feedback/hold" not in html
    for path, data in (
        (f"/staff/campaigns/{campaign}/feedback", _form(token, text_sv="x")),
        (f"/staff/campaigns/{campaign}/feedback/hold", {"csrf_token": token}),
        (f"/staff/campaigns/{campaign}/feedback/send-now", {"csrf_token": token}),
    ):
        assert (await client.post(path, data=data)).status == 403, path
    assert (await client.get(f"/staff/campaigns/{campaign}/feedback/preview.json")).status == 403
    assert await _stored(client, campaign) == {}


async def test_no_csrf_no_change(client: Client) -> None:
    campaign, token = await _setup(client, "admin")
    data = _form(token, text_sv="a", text_en="b", text_ar="c")
    del data["csrf_token"]
    response = await client.post(f"/staff/campaigns/{campaign}/feedback", data=data)
    assert response.status == 403
    held = await client.post(f"/staff/campaigns/{campaign}/feedback/hold")
    assert held.status == 403
    assert await _stored(client, campaign) == {}
    async with runtime_of(client).db.transaction(read_only=True) as s:
        found = await repo_results.campaign(s, campaign)
    assert found is not None and found.feedback_status == "pending"


async def test_missing_campaign_and_bad_language(client: Client) -> None:
    _, token = await _setup(client, "analyst")
    page = await client.get("/staff/campaigns/999/feedback")
    assert page.status == 404 and "ingen kampanj med nummer 999" in await page.text()
    saved = await client.post("/staff/campaigns/999/feedback", data=_form(token, text_sv="x"))
    assert saved.status == 404
    bad = await client.get("/staff/campaigns/1/feedback/preview.json", params={"text_de": "x"})
    assert bad.status == 400 and "no language 'de'" in (await bad.json())["error"]
    index = await client.get("/staff/feedback")
    assert index.status == 200 and csrf_of(await index.text())
