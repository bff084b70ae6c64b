"""The web chat end to end: pick a survey, answer it in the browser's API, privacy after the end."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from storage.models import Conversation, Message, Respondent
from tests.bot.harness import PUBLIC_URL, Harness, running, settings_for
from tests.security.logcheck import no_personal_data_in_logs  # noqa: F401  (autouse)


@pytest.fixture
async def harness(database_url: str) -> AsyncIterator[Harness]:
    """The shipped surveys as they are: only the consultation is public."""
    async with running(settings_for(database_url, public_surveys=False)) as h:
        yield h


PUBLIC = "brukardialog-konsultation"


async def form_token(h: Harness, lang: str = "sv") -> str:
    """Open the /chat page as a browser would (its cookie stays in the client's jar)."""
    page = await (await h.client.get("/chat", params={"lang": lang})).text()
    match = re.search(r'name="form" value="([^"]+)"', page)
    assert match, page
    return match[1]


async def start_chat(h: Harness, survey: str = "uppfoljning-insats", lang: str = "sv") -> str:
    """A web chat conversation: a public survey started from the /chat page, any other as its
    personal link would (the page offers only public surveys)."""
    if not h.runtime.catalog.latest(survey).survey.public:  # type: ignore[union-attr]
        return (await h.runtime.service.start_webchat(survey, lang)).token
    data = {"survey": survey, "lang": lang, "form": await form_token(h, lang)}
    response = await h.client.post("/chat/start", data=data, allow_redirects=False)
    assert response.status == 303, await response.text()
    location = response.headers["Location"]
    assert location.startswith("/chat/")
    return location.removeprefix("/chat/")


async def say(
    h: Harness, token: str, text: str, *, client_id: str, payload: str | None = None
) -> list[dict[str, Any]]:
    body: dict[str, Any] = {"id": client_id, "text": text}
    if payload:
        body["payload"] = payload
    response = await h.client.post(f"/chat/{token}/messages", json=body)
    assert response.status == 202, await response.text()
    return await replies(h, token)


async def history(h: Harness, token: str, after: int = 0) -> list[dict[str, Any]]:
    """Both sides of the chat, as the page polls it."""
    await h.deliver()
    response = await h.client.get(f"/chat/{token}/messages", params={"after": str(after)})
    assert response.status == 200
    data = await response.json()
    return list(data["messages"])


async def replies(h: Harness, token: str, after: int = 0) -> list[dict[str, Any]]:
    return [m for m in await history(h, token, after) if m["who"] == "bot"]


async def test_index_offers_only_public_surveys_in_the_chosen_language(database_url: str) -> None:
    async with running(settings_for(database_url, public_surveys=False)) as harness:
        response = await harness.client.get("/chat", params={"lang": "en"})
        page = await response.text()
        assert response.status == 200
        assert 'lang="en"' in page
        assert f'value="{PUBLIC}"' in page
        for survey in ("ifo-brukarundersokning", "barnenkat", "uppfoljning-insats"):
            assert survey not in page
        arabic = await (await harness.client.get("/chat", params={"lang": "ar"})).text()
        assert 'dir="rtl"' in arabic


async def test_a_survey_is_completed_in_the_web_chat(harness: Harness) -> None:
    token = await start_chat(harness)
    page = await harness.client.get(f"/chat/{token}")
    assert page.status == 200
    assert "chat.js" in await page.text()

    first = await replies(harness, token)
    assert first[-1]["kind"] == "question"
    assert [b["payload"] for b in first[-1]["buttons"]] == [
        "choice:yes",
        "choice:partly",
        "choice:no",
    ]
    last = first[-1]["id"]

    await say(harness, token, "Delvis", client_id="a1", payload="choice:partly")
    await say(harness, token, "Det tog för lång tid", client_id="a2")
    await say(harness, token, "elva", client_id="a3")  # not a number: a friendly re-prompt
    messages = await replies(harness, token, after=last)
    assert any(m["kind"] == "reprompt" for m in messages)
    await say(harness, token, "7", client_id="a4")
    await say(harness, token, "🙂", client_id="a5")
    final = await say(harness, token, "1", client_id="a6")

    assert final[-1]["kind"] == "thanks"
    assert await harness.answers() == {
        "helped": "partly",
        "improve": "Det tog för lång tid",
        "score": 7,
        "mood": 4,
        "again": "yes",
    }
    # Anonymous: once released, nothing links the answers to the contact; the conversation
    # and its messages are gone, and the respondent is dated to the day of release.
    async with harness.runtime.db.transaction(read_only=True) as s:
        respondent = (await s.scalars(select(Respondent))).one()
        conversations = list(await s.scalars(select(Conversation)))
        inbound = list(await s.scalars(select(Message).where(Message.direction == "in")))
    assert respondent.contact_id is None and respondent.completed
    assert respondent.origin == "public" and respondent.started_on == harness.clock.now().date()
    assert conversations == [] and all(
        (m.body, m.contact_id, m.conversation_id, m.address_key) == (None, None, None, None)
        for m in inbound
    ), "what was said is gone; the provider ids stay, so a redelivery is still a duplicate"


async def test_a_resent_message_is_kept_once(harness: Harness) -> None:
    token = await start_chat(harness)
    await say(harness, token, "Ja", client_id="same")
    before = await harness.count(Message)
    await say(harness, token, "Ja", client_id="same")
    assert await harness.count(Message) == before
    assert await harness.running_answers() == {"helped": "yes"}


async def test_stop_ends_the_conversation_and_nothing_more_is_sent(harness: Harness) -> None:
    token = await start_chat(harness, lang="en")
    messages = await say(harness, token, "STOP", client_id="s1")
    assert messages[-1]["kind"] == "opt_out"
    count = len(messages)
    after_stop = await say(harness, token, "hello?", client_id="s2")
    assert len(after_stop) == count


async def test_arabic_messages_are_right_to_left(harness: Harness) -> None:
    token = await start_chat(harness, lang="ar")
    messages = await replies(harness, token)
    assert messages and all(m["dir"] == "rtl" and m["lang"] == "ar" for m in messages)


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"{not json", "application/json", 400),
        (json.dumps({"text": "hej"}).encode(), "application/json", 400),
        (json.dumps({"id": "x", "text": 5}).encode(), "application/json", 400),
        (json.dumps({"id": "x" * 100, "text": "hej"}).encode(), "application/json", 400),
        (b"id=1&text=hej", "application/x-www-form-urlencoded", 415),
        (json.dumps({"id": "x", "text": "a" * 5000}).encode(), "application/json", 413),
    ],
)
async def test_bad_chat_posts_get_a_clear_error(
    harness: Harness, body: bytes, content_type: str, status: int
) -> None:
    token = await start_chat(harness)
    before = await harness.count(Message)
    response = await harness.client.post(
        f"/chat/{token}/messages", data=body, headers={"Content-Type": content_type}
    )
    assert response.status == status
    assert "error" in await response.json()
    assert await harness.count(Message) == before


async def test_unknown_links_and_surveys(harness: Harness) -> None:
    assert (await harness.client.get("/chat/" + "x" * 24)).status == 404
    response = await harness.client.post(
        "/chat/" + "x" * 24 + "/messages", json={"id": "a", "text": "hej"}
    )
    assert response.status == 404
    token = await form_token(harness)
    bad = await harness.client.post(
        "/chat/start", data={"survey": "nope", "form": token}, allow_redirects=False
    )
    assert bad.status == 404


async def test_healthz(harness: Harness) -> None:
    response = await harness.client.get("/healthz")
    assert response.status == 200
    assert (await response.json()) == {"database": "ok"}


async def test_a_reloaded_page_shows_both_sides_and_the_chosen_language(harness: Harness) -> None:
    token = await start_chat(harness, lang="ar")
    await say(harness, token, "نعم", client_id="c1")
    whole = await history(harness, token)
    mine = [m for m in whole if m["who"] == "me"]
    assert mine == [{"id": mine[0]["id"], "who": "me", "client_id": "c1", "text": "نعم"}]
    assert [m["id"] for m in whole] == sorted(m["id"] for m in whole)
    page = await harness.client.get(f"/chat/{token}", headers={"Accept-Language": "en-GB"})
    assert 'lang="ar" dir="rtl"' in await page.text()


async def test_the_chat_stays_right_to_left_after_the_conversation_closed(
    harness: Harness,
) -> None:
    token = await start_chat(harness, lang="ar")
    await say(harness, token, "نعم", client_id="r1", payload="choice:yes")
    await say(harness, token, "7", client_id="r2")
    await say(harness, token, "🙂", client_id="r3", payload="scale:4")
    final = await say(harness, token, "نعم", client_id="r4", payload="choice:yes")
    assert final[-1]["kind"] == "thanks"
    # The finished anonymous conversation's messages are cleared; a reload still reads them
    # in the person's language and direction.
    reloaded = await replies(harness, token)
    assert reloaded and all((m["lang"], m["dir"]) == ("ar", "rtl") for m in reloaded)


# --- open doors with limits (issue 12.4) ---


async def conversations(h: Harness) -> int:
    return await h.count(Conversation)


@pytest.mark.parametrize("survey", ["barnenkat", "ifo-brukarundersokning", "uppfoljning-insats"])
async def test_only_public_surveys_can_be_started_from_the_page(
    harness: Harness, survey: str
) -> None:
    token = await form_token(harness)
    response = await harness.client.post(
        "/chat/start", data={"survey": survey, "form": token}, allow_redirects=False
    )
    assert response.status == 404
    assert "Den enkäten finns inte här." in await response.text()
    assert await conversations(harness) == 0


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("other site's origin", 403),
        ("no form token", 403),
        ("a token without its cookie", 403),
        ("another token than the cookie", 403),
        ("not a form", 403),
        ("origin null, as with no-referrer", 303),
        ("our own origin", 303),
    ],
)
async def test_cross_site_posts_cannot_start_a_conversation(
    harness: Harness, case: str, status: int
) -> None:
    token = await form_token(harness)
    data: dict[str, str] = {"survey": PUBLIC, "lang": "sv", "form": token}
    headers: dict[str, str] = {}
    if case == "other site's origin":
        headers["Origin"] = "https://evil.example"
    elif case == "no form token":
        del data["form"]
    elif case == "a token without its cookie":
        harness.client.session.cookie_jar.clear()
    elif case == "another token than the cookie":
        data["form"] = "A" * 32
    elif case == "origin null, as with no-referrer":
        headers["Origin"] = "null"
    elif case == "our own origin":
        headers["Origin"] = PUBLIC_URL
    if case == "not a form":
        response = await harness.client.post(
            "/chat/start", json=data, headers=headers, allow_redirects=False
        )
    else:
        response = await harness.client.post(
            "/chat/start", data=data, headers=headers, allow_redirects=False
        )
    assert response.status == status, await response.text()
    assert await conversations(harness) == (1 if status == 303 else 0)


async def test_starts_are_limited_per_client_address(database_url: str) -> None:
    extra = {
        "BRUKARDIALOG__WEB__START_LIMIT": "3",
        "BRUKARDIALOG__WEB__START_WINDOW": "60",
        "BRUKARDIALOG__WEB__TRUST_FORWARDED_FOR": "true",
    }
    async with running(settings_for(database_url, extra=extra)) as h:
        token = await form_token(h, "en")

        async def start(address: str) -> Any:
            return await h.client.post(
                "/chat/start",
                data={"survey": PUBLIC, "lang": "en", "form": token},
                headers={"X-Forwarded-For": f"203.0.113.9, {address}"},
                allow_redirects=False,
            )

        for _ in range(3):
            assert (await start("198.51.100.7")).status == 303
        refused = await start("198.51.100.7")
        assert refused.status == 429
        assert 0 < int(refused.headers["Retry-After"]) <= 60
        assert "try again later" in await refused.text()
        assert (await start("198.51.100.8")).status == 303, "another address has its own window"
        assert await h.count(Conversation) == 4
        h.clock.advance(timedelta(seconds=61))
        assert (await start("198.51.100.7")).status == 303


async def test_a_message_delivered_again_after_release_is_still_a_duplicate(
    harness: Harness,
) -> None:
    token = await start_chat(harness)
    for n, answer in enumerate(("1", "7", "4", "1"), start=1):
        await say(harness, token, answer, client_id=f"r{n}")
    assert await harness.release() == 1
    before = await harness.count(Message)
    response = await harness.client.post(f"/chat/{token}/messages", json={"id": "r1", "text": "1"})
    assert response.status == 202
    assert await harness.count(Message) == before, "no new turn, no menu in reply"
