"""Migration 0004 moves a database of the first version to sealed addresses and released answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from bot.privacy import Pseudonymizer
from storage.migrate import upgrade
from storage.sealing import PREFIX, Sealer
from tests.conftest import call_in_thread

SEALER = Sealer(bytes(range(32)))
KEYER = Pseudonymizer(b"migration-test-key-0123456789").address_key
PHONE = "+46701234567"


def _old_database(tmp_path: Path) -> str:
    """A database at 0003 with what the first version stored: clear addresses, and a running
    anonymous conversation whose answers were written as they came."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    call_in_thread(upgrade, url, "0003")
    engine = create_engine(url)
    with engine.begin() as conn:
        now = "2026-03-02 10:00:00.000000"
        conn.execute(
            text(
                "INSERT INTO contacts (id, attributes, created_at, updated_at) "
                "VALUES (1, '{}', :now, :now)"
            ),
            {"now": now},
        )
        conn.execute(
            text(
                "INSERT INTO contact_addresses (contact_id, channel, address, address_key, "
                "created_at) VALUES (1, 'sms', :phone, 'key', :now)"
            ),
            {"phone": PHONE, "now": now},
        )
        conn.execute(
            text(
                "INSERT INTO messages (direction, channel, address, body, payload, kind, status, "
                "attempts, not_before, created_at, contact_id) VALUES ('out', 'sms', :phone, "
                "'hej', '{}', 'reply', 'sent', 1, :now, :now, 1)"
            ),
            {"phone": PHONE, "now": now},
        )
        conn.execute(
            text(
                "INSERT INTO survey_versions (id, survey_id, version, checksum, definition, "
                "source, loaded_at) VALUES (1, 's', 1, 'c', '{}', '', :now)"
            ),
            {"now": now},
        )
        attributes = json.dumps({"gender": "kvinna", "language": "sv"})
        conn.execute(
            text(
                "INSERT INTO respondents (id, survey_id, survey_version_id, attributes, channel, "
                "status, started_on, completed) VALUES ('r1', 's', 1, :a, 'sms', 'active', "
                "'2026-03-02', 0)"
            ),
            {"a": attributes},
        )
        conn.execute(
            text(
                "INSERT INTO answers (respondent_id, question_id, value, skipped, answered_on) "
                "VALUES ('r1', 'q1', '\"ja\"', 0, '2026-03-02')"
            )
        )
        state = json.dumps({"answers": {"q1": "ja"}, "history": ["q1"]})
        conn.execute(
            text(
                "INSERT INTO conversations (id, contact_id, respondent_id, survey_version_id, "
                "survey_id, channel, status, state, started_at, updated_at, expires_at) VALUES "
                "('c1', 1, 'r1', 1, 's', 'sms', 'active', :state, :now, :now, :now)"
            ),
            {"state": state, "now": now},
        )
    engine.dispose()
    return url


def test_an_old_database_needs_the_keys_to_move_on(tmp_path: Path) -> None:
    url = _old_database(tmp_path)
    with pytest.raises(RuntimeError, match="addresses in clear"):
        call_in_thread(upgrade, url)


def test_addresses_are_sealed_and_running_answers_move_into_the_state(tmp_path: Path) -> None:
    url = _old_database(tmp_path)
    call_in_thread(upgrade, url, sealer=SEALER, keyer=KEYER)
    engine = create_engine(url)
    with engine.connect() as conn:
        [address] = conn.execute(text("SELECT address FROM contact_addresses")).scalars()
        [(sealed, key)] = conn.execute(text("SELECT address, address_key FROM messages")).all()
        conversation = conn.execute(
            text("SELECT respondent_id, attributes, origin FROM conversations")
        ).one()
        respondents = conn.execute(text("SELECT count(*) FROM respondents")).scalar()
        answers = conn.execute(text("SELECT count(*) FROM answers")).scalar()
    engine.dispose()
    assert address.startswith(PREFIX) and SEALER.open(address) == PHONE
    assert SEALER.open(sealed) == PHONE and key == KEYER("sms", PHONE)
    assert conversation[0] is None and json.loads(conversation[1])["gender"] == "kvinna"
    assert conversation[2] == "public"
    assert (respondents, answers) == (0, 0), "the answers wait in the state for release"
