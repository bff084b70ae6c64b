"""The staff API: POST /api/v1/events and /api/v1/followup-rules over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot import followups
from bot.app import create_app
from bot.channels.webchat import WebChatChannel
from bot.clock import FixedClock
from bot.runtime import RUNTIME, Runtime
from storage import repo_tasks
from tests.followups.conftest import PERSON, TOKEN, event, settings_for

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def client(database_url: str, clock: FixedClock) -> AsyncIterator[TestClient[Any, Any]]:
    app = create_app(
        settings_for(database_url),
        clock=clock,
        channels={"webchat": WebChatChannel()},
        background=False,
        startup=True,
    )
    test_client: TestClient[Any, Any] = TestClient(TestServer(app))
    await test_client.start_server()
    try:
        yield test_client
    finally:
        await test_client.close()


def runtime_of(client: TestClient[Any, Any]) -> Runtime:
    runtime: Runtime = client.app[RUNTIME]
    return runtime


async def post(client: TestClient[Any, Any], body: Any) -> tuple[int, Any]:
    response = await client.post("/api/v1/events", json=body, headers=AUTH)
    return response.status, await response.json()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/events"),
        ("GET", "/api/v1/events/ev-1"),
        ("GET", "/api/v1/followup-rules"),
        ("POST", "/api/v1/followup-rules"),
        ("GET", "/api/v1/followup-rules/x"),
        ("PUT", "/api/v1/followup-rules/x"),
        ("DELETE", "/api/v1/followup-rules/x"),
    ],
)
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-token"}])
async def test_every_route_needs_a_staff_token(
    client: TestClient[Any, Any], method: str, path: str, headers: dict[str, str]
) -> None:
    response = await client.request(method, path, json=event(contact=PERSON), headers=headers)
    assert response.status == 401
    assert "bearer token" in (await response.json())["error"]
    assert await followups.event_report(runtime_of(client), "ev-1") is None


async def test_an_event_is_created_then_unchanged_then_shown(client: TestClient[Any, Any]) -> None:
    body = event(occurred_at="2026-03-02T17:55:00+01:00", contact=PERSON)
    status, data = await post(client, body)
    assert status == 201
    assert (data["result"], data["contact_created"]) == ("created", True)
    [f] = data["followups"]
    assert (f["rule"], f["status"], f["due_at"]) == (
        "uppfoljning-efter-insats",
        "pending",
        "2026-03-16T16:55:00+00:00",
    )
    status, again = await post(client, body)
    assert (status, again["result"], again["followups"]) == (200, "unchanged", data["followups"])

    response = await client.get("/api/v1/events/ev-1", headers=AUTH)
    shown = await response.json()
    assert response.status == 200
    assert (shown["type"], shown["external_ref"], shown["cancelled"]) == (
        "insats_ended",
        "P-1",
        False,
    )
    assert (await client.get("/api/v1/events/nope", headers=AUTH)).status == 404


async def test_a_batch_is_all_or_nothing(client: TestClient[Any, Any]) -> None:
    status, data = await post(
        client, {"events": [event("ev-1", contact=PERSON), event("ev-2", external_ref="P-9")]}
    )
    assert status == 422
    assert data["problems"] == [
        "events[1]: no contact with external_ref 'P-9'; include contact details to create one"
    ]
    assert await followups.event_report(runtime_of(client), "ev-1") is None
    status, data = await post(
        client, {"events": [event("ev-1", contact=PERSON), event("ev-2", external_ref="P-1")]}
    )
    assert status == 201
    assert [r["result"] for r in data["results"]] == ["created", "created"]


async def test_an_unknown_person_without_details_is_422(client: TestClient[Any, Any]) -> None:
    status, data = await post(client, event(external_ref="X-42"))
    assert status == 422
    assert data["problems"] == [
        "no contact with external_ref 'X-42'; include contact details to create one"
    ]


async def test_an_event_id_reused_for_another_person_is_409(client: TestClient[Any, Any]) -> None:
    await post(client, event(contact=PERSON))
    status, data = await post(client, event(external_ref="P-2", contact={"phone": "0701112233"}))
    assert status == 409
    assert "reported for another person" in data["problems"][0]


BAD_BODIES: list[tuple[str, Any, int, list[str]]] = [
    ("a list", [event()], 400, []),
    ("a text", "event", 400, []),
    ("events not a list", {"events": {"a": 1}}, 400, []),
    ("events and more", {"events": [event()], "extra": 1}, 400, []),
    ("no events", {"events": []}, 422, ["events: the list is empty"]),
    (
        "empty object",
        {},
        422,
        ["event_id: required", "type: required", "external_ref: required", "occurred_at: required"],
    ),
    ("bad type", event(type="Insats Ended"), 422, ["type: 'Insats Ended'; an event type is"]),
    ("bad time", event(occurred_at="igår"), 422, ["occurred_at: 'igår' is not an ISO 8601"]),
    ("time a number", event(occurred_at=1700000000), 422, ["occurred_at: 1700000000 is not"]),
    ("attributes a list", event(attributes=[1]), 422, ["attributes: must be an object"]),
    ("attribute name", event(attributes={"a b": 1}), 422, ["attribute name 'a b' may only"]),
    ("nested attribute", event(attributes={"a": {"b": 1}}), 422, ["attributes.a: must be a"]),
    ("cancelled text", event(cancelled="yes"), 422, ["cancelled: must be true or false"]),
    ("unknown key", event(occured_at="x"), 422, ["unknown key 'occured_at' (did you mean"]),
    ("bad phone", event(contact={"phone": "123"}), 422, ["contact.phone: is not a valid phone"]),
    ("unreachable contact", event(contact={"language": "sv"}), 422, ["contact: needs phone"]),
    (
        "bad contact fields",
        event(contact={"phone": "0701234567", "birth_year": 1800, "gender": "?", "x": 1}),
        422,
        ["contact.unknown key 'x'", "contact.gender: '?'", "contact.birth_year: '1800'"],
    ),
    (
        "contact values too long",
        event(contact={"phone": "0701234567", "unit": "x" * 101, "language": "sv-" + "a" * 20}),
        422,
        ["contact.unit: is longer than 100 characters", "contact.language: is longer than 20"],
    ),
    ("contact not object", event(contact="P-1"), 422, ["contact: must be an object"]),
    (
        "one bad in a batch",
        {"events": [event("a", contact=PERSON), event("b", occurred_at="x")]},
        422,
        ["events[1]: occurred_at: 'x' is not an ISO 8601"],
    ),
    (
        "an event_id twice in a batch",
        {"events": [event("a", contact=PERSON), event("a", contact=PERSON)]},
        422,
        ["events[1]: event_id 'a' is also event 1 here"],
    ),
]


@pytest.mark.parametrize(
    ("body", "status", "expected"), [c[1:] for c in BAD_BODIES], ids=[c[0] for c in BAD_BODIES]
)
async def test_bad_bodies_list_every_problem(
    client: TestClient[Any, Any], body: Any, status: int, expected: list[str]
) -> None:
    got, data = await post(client, body)
    assert got == status, data
    assert data["error"]
    problems = data.get("problems", [])
    for text in expected:
        assert any(text in p for p in problems), (text, problems)
    assert await followups.event_report(runtime_of(client), "a") is None


async def test_not_json_is_400_and_wrong_content_type_415(client: TestClient[Any, Any]) -> None:
    response = await client.post(
        "/api/v1/events", data=b"{nope", headers=AUTH | {"Content-Type": "application/json"}
    )
    assert response.status == 400
    response = await client.post(
        "/api/v1/events", data=b"event_id=1", headers=AUTH | {"Content-Type": "text/plain"}
    )
    assert response.status == 415


RULE = {
    "name": "prova-snabbt",
    "event": "prova",
    "survey": "barnenkat",
    "delay": "30s",
    "channels": ["webchat"],
}


async def test_rules_are_loaded_at_startup_and_managed_over_the_api(
    client: TestClient[Any, Any],
) -> None:
    listed = await (await client.get("/api/v1/followup-rules", headers=AUTH)).json()
    assert {(r["name"], r["source"]) for r in listed["rules"]} == {
        ("uppfoljning-efter-insats", "file"),
        ("barnenkat-efter-utredning", "file"),
    }
    response = await client.post("/api/v1/followup-rules", json=RULE, headers=AUTH)
    assert response.status == 201
    created = await response.json()
    assert (created["delay"], created["expires_after"], created["source"]) == ("30s", "7d", "api")
    assert (await client.post("/api/v1/followup-rules", json=RULE, headers=AUTH)).status == 409

    changed = RULE | {"delay": "2m", "window": "10-18"}
    response = await client.put("/api/v1/followup-rules/prova-snabbt", json=changed, headers=AUTH)
    assert response.status == 200
    assert (await response.json())["window"] == "10:00-18:00"
    shown = await (await client.get("/api/v1/followup-rules/prova-snabbt", headers=AUTH)).json()
    assert shown["delay"] == "2m"

    status, data = await post(client, event(type="prova", contact=PERSON))
    assert status == 201
    [f] = data["followups"]
    response = await client.delete("/api/v1/followup-rules/prova-snabbt", headers=AUTH)
    assert response.status == 204
    async with runtime_of(client).db.transaction(read_only=True) as s:
        task = await repo_tasks.get_by_key(s, followups.task_key(f["id"]))
    assert task is not None and task.status == "cancelled"
    assert (await client.get("/api/v1/followup-rules/prova-snabbt", headers=AUTH)).status == 404
    assert (await client.delete("/api/v1/followup-rules/prova-snabbt", headers=AUTH)).status == 404


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
async def test_file_rules_are_changed_in_the_file(
    client: TestClient[Any, Any], method: str
) -> None:
    response = await client.request(
        method,
        "/api/v1/followup-rules/uppfoljning-efter-insats",
        json=RULE | {"name": "uppfoljning-efter-insats"},
        headers=AUTH,
    )
    assert response.status == 409
    assert "flows/followups.toml" in (await response.json())["error"]


@pytest.mark.parametrize(
    ("path", "body", "expected"),
    [
        ("/api/v1/followup-rules", RULE | {"survey": "okand"}, "survey: unknown survey 'okand'"),
        ("/api/v1/followup-rules", RULE | {"delay": "soon"}, "delay: 'soon' is not a duration"),
        ("/api/v1/followup-rules", RULE | {"filter": "age >"}, "filter: "),
        ("/api/v1/followup-rules/other", RULE, "name: 'prova-snabbt' differs"),
        (
            "/api/v1/followup-rules",
            {k: v for k, v in RULE.items() if k != "name"},
            "name: required",
        ),
    ],
)
async def test_bad_rules_are_422(
    client: TestClient[Any, Any], path: str, body: dict[str, Any], expected: str
) -> None:
    method = client.put if path.endswith("other") else client.post
    response = await method(path, json=body, headers=AUTH)
    assert response.status == 422
    problems = (await response.json())["problems"]
    assert any(expected in p for p in problems), problems


async def test_get_event_says_why_no_follow_up_was_planned(client: TestClient[Any, Any]) -> None:
    child = {"phone": "0701234567", "target_group": "Barn"}
    status, data = await post(client, event(contact=child))
    assert status == 201
    [f] = data["followups"]
    assert (f["rule"], f["status"]) == ("uppfoljning-efter-insats", "not_planned")
    assert "filter the event did not match" in f["reason"]
    status, _ = await post(client, event("ev-2", type="okand", external_ref="P-1"))
    assert status == 201
    shown = await (await client.get("/api/v1/events/ev-2", headers=AUTH)).json()
    assert (shown["followups"], shown["note"]) == ([], "no follow-up rule for event type 'okand'")
