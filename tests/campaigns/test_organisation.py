"""[organisation] name and results_url fill the shipped surveys' {organisation} and {results_url}:
another organisation changes two config lines, and every SMS still fits in three segments."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot import campaigns
from bot.campaigns import CampaignRequest, invitation_text
from bot.catalog import SurveyCatalog
from bot.channels.base import Channel
from bot.channels.webchat import WebChatChannel
from bot.clock import FixedClock
from bot.config import SHIPPED_SURVEYS, OrganisationSettings, SurveySettings
from bot.features import open_runtime
from bot.survey_files import load_paths
from flows.engine import help_message, question_message
from flows.loader import MAX_SMS_SEGMENTS
from flows.model import Survey
from flows.render import render_text
from flows.segments import segment_info
from tests.campaigns.helpers import START, csv_text, import_csv, messages, settings_for

LUND = OrganisationSettings(name="Lunds kommun", results_url="lund.se/brukarundersokning")

REALISTIC = [
    OrganisationSettings("Malmö stad", "malmo.se"),
    OrganisationSettings("Göteborgs Stad", "goteborg.se/brukarundersokning"),
    OrganisationSettings("Malung-Sälens kommun", "malung-salen.se/resultat"),
    OrganisationSettings("Upplands Väsby kommun", "upplandsvasby.se/brukarundersokning"),
]
"""Long names and addresses of real Swedish municipalities."""


def texts(survey: Survey) -> Iterator[str]:
    """Every text of a survey a person can be sent."""
    for field in ("title", "intro", "thanks", "sender", "invitation", "results_use"):
        yield from (getattr(survey, field) or {}).values()
    for question in survey.questions:
        yield from question.text.values()
        for choice in question.choices:
            yield from choice.text.values()


async def test_the_catalog_fills_in_the_configured_organisation(database_url: str) -> None:
    settings = dataclasses.replace(
        settings_for(database_url),
        surveys=SurveySettings(paths=(SHIPPED_SURVEYS,)),
        organisation=LUND,
    )
    async with open_runtime(settings, channels={}) as runtime:
        surveys = runtime.catalog.surveys
        assert len(surveys) == 4
        for survey in surveys:
            assert set(survey.sender.values()) == {"Lunds kommun"}
            assert all("lund.se/brukarundersokning" in t for t in survey.results_use.values())
            assert not any("{" in t or "Malmö" in t for t in texts(survey)), survey.id
        entry = runtime.catalog.latest("ifo-brukarundersokning")
        assert entry is not None
        assert entry.survey.intro["en"].startswith("Hi! Lunds kommun would like to know")
        # A version read back from the database (a conversation begun before a restart) too.
        async with runtime.db.transaction(read_only=True) as s:
            again = await SurveyCatalog(LUND.placeholders()).version(s, entry.version_id)
        assert again.intro == entry.survey.intro


async def test_an_invitation_names_the_configured_organisation(database_url: str) -> None:
    settings = dataclasses.replace(
        settings_for(database_url),
        surveys=SurveySettings(paths=(SHIPPED_SURVEYS,)),
        organisation=LUND,
    )
    webchat: dict[str, Channel] = {"webchat": WebChatChannel()}
    async with open_runtime(settings, clock=FixedClock(START), channels=webchat) as runtime:
        campaigns.register(runtime)
        await import_csv(runtime, csv_text())
        campaign = await campaigns.create_campaign(
            runtime,
            CampaignRequest(
                "ifo-brukarundersokning", "unit == 'Norr'", "2026-03-20", channels=("webchat",)
            ),
            actor="test",
        )
        await runtime.tasks.run_due()
        await runtime.tasks.run_due()
        sent = await messages(runtime, campaign.id, "invitation")
    assert sent and all("Malmö" not in (m.body or "") for m in sent)
    assert any((m.body or "").startswith("Hej! Lunds kommun vill gärna höra") for m in sent)


@pytest.mark.parametrize("organisation", REALISTIC, ids=lambda o: o.name)
def test_every_shipped_sms_fits_in_three_segments(organisation: OrganisationSettings) -> None:
    result = load_paths([SHIPPED_SURVEYS], placeholders=organisation.placeholders())
    assert [str(p) for p in result.problems] == []
    assert len(result.surveys) == 4
    for survey in result.surveys:
        for lang in survey.languages:
            sent = {
                "intro": f"{survey.intro[lang]}\n\n{(survey.results_use or {})[lang]}",
                "invitation": invitation_text(survey, lang),
                "help": help_message(survey, lang).text,
                "thanks": survey.thanks[lang],
                **{q.id: render_text(question_message(survey, q, lang)) for q in survey.questions},
            }
            for what, body in sent.items():
                info = segment_info(body)
                assert info.segments <= MAX_SMS_SEGMENTS, (survey.id, lang, what, info)


def test_a_config_of_two_lines_changes_the_organisation(tmp_path: Path) -> None:
    from tests.bot.test_cli import run

    (tmp_path / "lund.toml").write_text(
        '[organisation]\nname = "Lunds kommun"\nresults_url = "lund.se/enkat"\n', encoding="utf-8"
    )
    tried = run("--config", "lund.toml", "flows", "try", "barnenkat", "--lang", "en", cwd=tmp_path)
    assert tried.returncode == 0, tried.stderr
    assert "You can see the results on lund.se/enkat." in tried.stdout
    checked = run("--config", "lund.toml", "flows", "check", cwd=tmp_path)
    assert checked.stdout == "ok: 4 surveys\n"
