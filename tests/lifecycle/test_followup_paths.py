"""`[followups] paths`: the deployment's own rules files, loaded at startup; the shipped file is
only the example used when none are configured."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot import features, followups
from bot.channels.webchat import WebChatChannel
from bot.clock import FixedClock
from bot.config import SHIPPED_FOLLOWUPS, ConfigError, load_settings
from bot.features import open_runtime
from storage import repo_events
from tests.followups.conftest import START
from tests.lifecycle.scenario import RULES, SURVEYS

BASE = {
    "BRUKARDIALOG__PRIVACY__PSEUDONYM_KEY": "test-pseudonym-key-0123456789abcdef",
    "BRUKARDIALOG__PRIVACY__ADDRESS_KEY": "ab" * 32,
    "BRUKARDIALOG__SURVEYS__PATHS": str(SURVEYS),
}

MORE = """
[[rules]]
name = "barn"
event = "utredning_closed"
survey = "uppfoljning"
delay = "3d"
"""


async def loaded_rules(database_url: str, **env: str) -> dict[str, tuple[bool, str]]:
    settings = load_settings(None, BASE | {"BRUKARDIALOG__DATABASE__URL": database_url} | env)
    async with open_runtime(
        settings, clock=FixedClock(START), channels={"webchat": WebChatChannel()}
    ) as runtime:
        await features.start(runtime)
        async with runtime.db.transaction(read_only=True) as s:
            rules = await repo_events.list_rules(s)
    return {r.name: (r.enabled, r.survey_id) for r in rules}


async def test_the_configured_files_are_loaded_at_startup(
    database_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "a.toml").write_text((RULES / "regler.toml").read_text(), encoding="utf-8")
    (folder / "b.toml").write_text(MORE, encoding="utf-8")
    assert await loaded_rules(database_url, BRUKARDIALOG__FOLLOWUPS__PATHS=str(folder)) == {
        "uppfoljning-efter-insats": (True, "uppfoljning"),
        "barn": (True, "uppfoljning"),
    }
    # A rule that left the files is disabled at the next start.
    (folder / "b.toml").unlink()
    single = str(folder / "a.toml")
    assert await loaded_rules(database_url, BRUKARDIALOG__FOLLOWUPS__PATHS=single) == {
        "uppfoljning-efter-insats": (True, "uppfoljning"),
        "barn": (False, "uppfoljning"),
    }


def test_without_paths_the_shipped_example_is_used() -> None:
    settings = load_settings(None, BASE)
    assert settings.followups.paths == ()
    assert settings.followups.resolved_paths == (SHIPPED_FOLLOWUPS,)
    rules = followups.read_rules_files(
        settings.followups.resolved_paths, known_surveys=None, quiet=None
    )
    assert {r.name for r in rules.rules} == {
        "uppfoljning-efter-insats",
        "barnenkat-efter-utredning",
    }


def test_problems_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text(MORE, encoding="utf-8")
    (tmp_path / "b.toml").write_text(MORE, encoding="utf-8")
    empty = tmp_path / "empty"
    empty.mkdir()
    result = followups.read_rules_files(
        [tmp_path, empty], known_surveys={"uppfoljning"}, quiet=None
    )
    assert [r.name for r in result.rules] == ["barn"]
    assert result.problems == (
        f"{empty}: no *.toml rules files in this folder",
        f"{tmp_path / 'b.toml'}: rule 'barn': name: the name is used in {tmp_path / 'a.toml'}",
    )
    with pytest.raises(ConfigError, match=re.escape("followups.paths: '/no/such' does not exist")):
        load_settings(None, BASE | {"BRUKARDIALOG__FOLLOWUPS__PATHS": "/no/such"})


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("MESSAGE_TEXT_DAYS", "-1", "retention.message_text_days must be 0 (keep for good)"),
        ("BATCH_SIZE", "0", "retention.batch_size must be from 1 to 10000"),
        ("RUN_AT", "25:00", 'retention.run_at must be a local time like "03:30"'),
        ("AUDIT_LOG_DAYS", "ten", "retention.audit_log_days must be an integer"),
    ],
)
def test_bad_retention_settings_are_refused(key: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings(None, BASE | {f"BRUKARDIALOG__RETENTION__{key}": value})


def test_retention_defaults() -> None:
    r = load_settings(None, BASE).retention
    assert (
        r.message_text_days,
        r.inbound_message_days,
        r.outbound_message_days,
        r.inactive_contact_days,
        r.case_event_days,
        r.audit_log_days,
    ) == (90, 365, 365, 1095, 730, 1825)
