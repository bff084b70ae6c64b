"""The data behind the staff pages 4-8: results arranged with nothing below k, feedback
drafts previewed with their SMS cost, follow-up rules, survey try-outs that store nothing, and
the audit log filtered and paged. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bot import followups
from bot.clock import FixedClock
from bot.results.service import CampaignNotFound, ResultsError
from bot.runtime import Runtime
from bot.web.staff import audit_view, feedback_view, rules_view, surveys_view
from bot.web.staff.results_view import results_view
from storage import repo_audit
from storage.models import Answer, AuditEntry, Conversation, Message, Respondent
from tests.results_integration.conftest import START, Person, make_campaign, people
from tests.web.staff.pages_support import staff_runtime

HIDDEN = "hidden (fewer than 5)"


def t(key: str, **fields: object) -> str:
    """A stand-in translation: the key and its fields, so tests see what was asked for."""
    if key == "results.hidden":
        return f"hidden (fewer than {fields['k']})"
    return f"{key}{fields}" if fields else key


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


@pytest.fixture
async def runtime(database_url: str, clock: FixedClock) -> AsyncIterator[Runtime]:
    async with staff_runtime(database_url, clock) as rt:
        yield rt


async def _two_campaigns(runtime: Runtime) -> tuple[int, int]:
    old = await make_campaign(
        runtime,
        people(6, answers={"hjalp": "nej", "bemotande": "bra"})
        + people(4, answers={"hjalp": "ja", "bemotande": "bra"}),
        name="Hösten 2025",
        closed_at=START - timedelta(days=100),
        created_at=START - timedelta(days=120),
    )
    new = await make_campaign(
        runtime,
        people(8, gender="kvinna", answers={"hjalp": "ja", "bemotande": "bra", "ovrigt": "Bra!"})
        + people(2, gender="man", answers={"hjalp": "nej", "bemotande": "daligt"})
        + people(2, answers={"hjalp": "ja", "bemotande": "bra"})
        + people(
            1, answers={"hjalp": "ja", "bemotande": "bra", "ovrigt": "Ring mig på 070-123 45 67"}
        )
        + [Person(status="closed")],
    )
    return old, new


async def test_results_view_charts_tables_change_and_hidden_groups(runtime: Runtime) -> None:
    old, new = await _two_campaigns(runtime)
    view = await results_view(runtime, new, t, lang="en", breakdowns=("gender",))
    assert view.lang == "en" and view.final and view.previous is not None
    assert view.previous.id == old
    help_q = next(q for q in view.questions if q.id == "hjalp")
    assert help_q.n == "13" and not help_q.hidden
    assert [(c.label, c.count, c.share) for c in help_q.rows] == [
        ("Yes", "11", "85 %"),
        ("No", "2", "15 %"),
    ]
    assert help_q.chart is not None and "<title" in help_q.chart and "Yes: 85 %" in help_q.chart
    # 4 in 10 said yes before, 11 in 13 now.
    assert help_q.change is not None
    assert "before': '40 %'" in help_q.change.share_positive
    assert "points': '+45'" in help_q.change.share_positive
    # The open question has no figures; its answers are not read without asking.
    assert "ovrigt" not in [q.id for q in view.questions]
    assert view.open == ()
    (gender,) = view.breakdown_views
    assert gender.dimension == "gender"
    rows = {r.label: r for r in gender.questions[0].rows}
    # 8 women are shown; 2 men and 3 not stated are below k: hidden, never a number (together
    # they are 5, so the women need not be hidden to protect them).
    assert rows["Woman"].n == "8"
    hidden_groups = [r for r in gender.questions[0].rows if r.n == HIDDEN]
    assert len(hidden_groups) == 2
    assert all(r.share_positive == HIDDEN for r in hidden_groups)
    chart = str(gender.questions[0].chart)
    assert HIDDEN in chart
    participation = {row.label: row.value for row in view.participation}
    assert participation["results.participation.completed"] == "13"
    assert participation["results.participation.invited"] == "14"


async def test_open_answers_are_masked_and_logged(runtime: Runtime) -> None:
    _, new = await _two_campaigns(runtime)
    view = await results_view(runtime, new, t, lang="sv", open_texts=True, actor="staff:anna")
    ((question, answers),) = view.open
    assert question == "Något mer?"
    assert "070-123 45 67" not in " ".join(answers)
    assert len(answers) == 9
    async with runtime.db.transaction(read_only=True) as s:
        (entry,) = await repo_audit.recent(s, action="results.open_answers")
    assert entry.actor == "staff:anna" and entry.target == f"campaign:{new}"


async def test_results_view_too_few_and_bad_input(runtime: Runtime) -> None:
    few = await make_campaign(runtime, people(3))
    view = await results_view(runtime, few, t, lang=None)
    assert view.too_few
    assert all(q.hidden and q.chart is None for q in view.questions if q.type != "open")
    assert all(q.n == HIDDEN for q in view.questions)
    with pytest.raises(CampaignNotFound):
        await results_view(runtime, 999, t, lang=None)
    with pytest.raises(ResultsError, match="no texts in 'de'"):
        await results_view(runtime, few, t, lang="de")


async def test_draft_preview_counts_segments_like_set_feedback(runtime: Runtime) -> None:
    campaign = await make_campaign(runtime, people(10))
    drafts = await feedback_view.draft_preview(
        runtime, campaign, {"sv": "Vi kortar väntetiden.", "en": "We cut waiting times."}, {}
    )
    by_lang = {d.lang: d for d in drafts}
    assert set(by_lang) == {"sv", "en", "ar"}
    assert "Det här gör vi: Vi kortar väntetiden." in by_lang["sv"].message
    assert "What we will do: We cut waiting times." in by_lang["en"].message
    assert by_lang["sv"].fits and by_lang["sv"].segments.encoding == "GSM-7"
    assert by_lang["ar"].segments.encoding == "UCS-2"
    # A text that would take more than three segments is flagged before anyone saves it, and
    # saving it is refused by the domain code for the same reason.
    long = "Vi ska göra mycket bättre. " * 20
    (sv,) = [
        d
        for d in await feedback_view.draft_preview(runtime, campaign, {"sv": long}, {})
        if d.lang == "sv"
    ]
    assert not sv.fits and sv.longest.segments > 3
    from bot.results import feedback

    with pytest.raises(ResultsError, match="more than 3 SMS segments"):
        await feedback.set_feedback(
            runtime, campaign, text={"sv": long}, without_text=["en", "ar"], actor="t"
        )
    with pytest.raises(ResultsError, match="no language 'de'"):
        await feedback_view.draft_preview(runtime, campaign, {"de": "x"}, {})


async def test_feedback_view_shows_stored_preview_and_timing(runtime: Runtime) -> None:
    campaign = await make_campaign(runtime, people(10))
    view = await feedback_view.feedback_view(runtime, campaign)
    assert view.editable and view.timing.status == "pending"
    assert {p.lang for p in view.previews} == {"sv", "en", "ar"}
    assert sum(p.recipients for p in view.previews) == 10


async def test_rules_view_lists_rules_with_upcoming_and_saves_api_rules(runtime: Runtime) -> None:
    await followups.load_rules(runtime)
    view = await rules_view.rules_view(runtime)
    file_rules = [r for r in view.rules if r.from_file]
    assert file_rules and all(r.pending == 0 for r in file_rules)
    data = rules_view.form_to_rule(
        {
            "name": "efter-besok",
            "event": "besok_avslutat",
            "survey": "nojdhet",
            "delay": "3d",
            "window": "10:00-18:00",
            "fatigue_days": "30",
            "expires_after": "7d",
            "enabled": "on",
        },
        ["sms"],
        name=None,
    )
    rule = await rules_view.save_rule(runtime, data, name=None, actor="staff:admin")
    assert rule.source == "api" and rule.delay == 3 * 86400
    with pytest.raises(rules_view.RuleRefused, match="exists"):
        await rules_view.save_rule(runtime, data, name=None, actor="staff:admin")
    bad = dict(data, delay="soon", survey="okand")
    with pytest.raises(rules_view.RuleRefused) as refused:
        await rules_view.save_rule(runtime, bad, name=None, actor="staff:admin")
    assert any(p.startswith("delay:") for p in refused.value.problems)
    assert any(p.startswith("survey:") for p in refused.value.problems)
    with pytest.raises(rules_view.RuleRefused, match="rules file"):
        await rules_view.save_rule(
            runtime,
            dict(data, name=file_rules[0].rule.name),
            name=file_rules[0].rule.name,
            actor="staff:admin",
        )
    await rules_view.save_rule(
        runtime, dict(data, delay="5d"), name="efter-besok", actor="staff:admin"
    )
    assert await rules_view.delete_rule(runtime, "efter-besok", actor="staff:admin") == 0
    with pytest.raises(rules_view.RuleRefused, match="no follow-up rule"):
        await rules_view.delete_rule(runtime, "efter-besok", actor="staff:admin")
    async with runtime.db.transaction(read_only=True) as s:
        actions = [e.action for e in await repo_audit.recent(s) if e.actor == "staff:admin"]
    assert actions == ["followup_rule.delete", "followup_rule.update", "followup_rule.create"]


async def _stored_rows(runtime: Runtime) -> tuple[int, ...]:
    async with runtime.db.transaction(read_only=True) as s:
        return tuple(
            [
                int(await s.scalar(select(func.count()).select_from(model)) or 0)
                for model in (Conversation, Respondent, Answer, Message)
            ]
        )


async def test_trial_runs_the_engine_and_stores_nothing(runtime: Runtime) -> None:
    entry = runtime.catalog.latest("nojdhet")
    assert entry is not None
    survey = entry.survey
    before = await _stored_rows(runtime)
    now = runtime.clock.now()
    run = surveys_view.trial_start(survey, "en", now)
    assert run.lines[0].who == "bot" and "A few questions." in run.lines[0].text
    assert ("choice:ja", "Yes") in run.buttons
    run = surveys_view.trial_answer(survey, run.token, payload="choice:ja", now=now)
    assert run.lines[-2].who == "me" and run.lines[-2].text == "Yes"
    run = surveys_view.trial_answer(survey, run.token, text="1", now=now)
    run = surveys_view.trial_answer(survey, run.token, text="Nothing", now=now)
    assert run.finished and run.status == "completed"
    assert dict(run.answers) == {"hjalp": '"ja"', "bemotande": '"bra"', "ovrigt": '"Nothing"'}
    assert await _stored_rows(runtime) == before
    with pytest.raises(surveys_view.TrialError, match="ended"):
        surveys_view.trial_answer(survey, run.token, text="more", now=now)


@pytest.mark.parametrize(
    "token", ["", "garbage", "e30.00", "e30=.deadbeef", "x" * 50 + "." + "0" * 64]
)
def test_trial_refuses_changed_or_stale_tokens(token: str) -> None:
    from bot.survey_files import load_survey_file
    from tests.results_integration.conftest import SURVEYS

    survey = load_survey_file(SURVEYS / "nojdhet.toml")
    with pytest.raises(surveys_view.TrialError):
        surveys_view.trial_answer(survey, token, text="ja", now=START)


def test_trial_refuses_tampering_and_other_surveys() -> None:
    from bot.survey_files import load_survey_file
    from tests.results_integration.conftest import SURVEYS

    survey = load_survey_file(SURVEYS / "nojdhet.toml")
    other = load_survey_file(SURVEYS / "bakgrund.toml")
    run = surveys_view.trial_start(survey, "sv", START)
    body, _, sig = run.token.rpartition(".")
    with pytest.raises(surveys_view.TrialError):
        surveys_view.trial_answer(survey, f"{body}A.{sig}", text="ja", now=START)
    with pytest.raises(surveys_view.TrialError, match="changed"):
        surveys_view.trial_answer(other, run.token, text="ja", now=START)
    with pytest.raises(surveys_view.TrialError, match="no language"):
        surveys_view.trial_start(survey, "de", START)
    with pytest.raises(surveys_view.TrialError, match="button"):
        surveys_view.trial_answer(survey, run.token, payload="choice:nope", now=START)


async def test_surveys_and_file_problems(runtime: Runtime) -> None:
    rows = surveys_view.survey_rows(runtime, "en")
    ids = [r.survey.id for r in rows]
    assert "nojdhet" in ids and "ifo-brukarundersokning" in ids
    assert next(r for r in rows if r.survey.id == "nojdhet").title == "What do you think?"
    assert surveys_view.file_problems(runtime) == []


async def test_audit_page_filters_and_pages(runtime: Runtime) -> None:
    async with runtime.db.transaction() as s:
        for i in range(60):
            await repo_audit.log(
                s,
                "staff:anna" if i % 2 else "cli:root",
                "campaign.create" if i % 3 else "results.export",
                f"campaign:{i}",
                at=START - timedelta(hours=i),
            )
    first = await audit_view.audit_page(runtime, audit_view.parse_filter({}))
    assert len(first.entries) == audit_view.PAGE_SIZE and first.has_next
    assert first.entries[0].target == "campaign:0"
    second = await audit_view.audit_page(runtime, audit_view.parse_filter({"page": "2"}))
    assert len(second.entries) == 10 and not second.has_next
    assert set(first.actors) == {"staff:anna", "cli:root"}
    anna = await audit_view.audit_page(
        runtime, audit_view.parse_filter({"actor": "staff:anna", "action": "results."})
    )
    assert anna.entries and all(
        e.actor == "staff:anna" and e.action == "results.export" for e in anna.entries
    )
    # START is 11:00 in Stockholm on 2 March: entries 0-11 (11:00 back to 00:00) are that day.
    day = await audit_view.audit_page(
        runtime, audit_view.parse_filter({"from": "2026-03-02", "to": "2026-03-02"})
    )
    assert len(day.entries) == 12
    for bad, field in (
        ({"from": "yesterday"}, "from"),
        ({"from": "2026-03-03", "to": "2026-03-01"}, "from"),
        ({"page": "0"}, "page"),
        ({"page": "x"}, "page"),
    ):
        with pytest.raises(audit_view.BadFilter) as refused:
            audit_view.parse_filter(bad)
        assert refused.value.field == field
    async with runtime.db.transaction(read_only=True) as s:
        assert await s.scalar(select(func.count()).select_from(AuditEntry)) == 60
