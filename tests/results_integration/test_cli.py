"""`brukardialog results show|export` and `brukardialog feedback ...` from the command line."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from openpyxl import load_workbook

import bot.cli
from bot.clock import FixedClock
from storage import repo_audit
from tests.conftest import run_in_thread
from tests.results_integration.conftest import (
    START,
    Person,
    make_campaign,
    people,
    results_runtime,
    settings_for,
)

Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Cli:
    settings = settings_for(database_url)
    monkeypatch.delenv("BRUKARDIALOG_CONFIG", raising=False)
    monkeypatch.setenv("BRUKARDIALOG__DATABASE__URL", database_url)
    monkeypatch.setenv("BRUKARDIALOG__PRIVACY__PSEUDONYM_KEY", settings.privacy.pseudonym_key)
    monkeypatch.setenv("BRUKARDIALOG__PRIVACY__ADDRESS_KEY", settings.privacy.address_key)
    monkeypatch.setenv("BRUKARDIALOG__SURVEYS__PATHS", str(settings.surveys.paths[0]))
    monkeypatch.setenv("BRUKARDIALOG__SERVER__PUBLIC_URL", "https://enkat.example.se")

    def run(*argv: str) -> tuple[int, str, str]:
        code = bot.cli.main(list(argv))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def campaigns(database_url: str) -> tuple[int, int, int]:
    """An earlier closed campaign, a closed one and an open one."""

    async def make() -> tuple[int, int, int]:
        async with results_runtime(database_url, FixedClock(START)) as runtime:
            before = [
                Person(answers={"hjalp": "ja" if i < 5 else "nej", "bemotande": "bra"})
                for i in range(10)
            ]
            earlier = await make_campaign(
                runtime, before, closed_at=START.replace(year=2025), name="Hösten 2025"
            )
            now = [
                Person(
                    answers={"hjalp": "ja", "bemotande": "bra", "ovrigt": "ring 0701234567"},
                    unit="norr" if i < 5 else "syd",
                )
                for i in range(10)
            ]
            closed = await make_campaign(runtime, [*now, *people(2, status="closed")])
            running = await make_campaign(runtime, people(5), status="running")
            return earlier, closed, running

    return run_in_thread(make)


def test_show_prints_tables_with_change_and_footnote(cli: Cli, database_url: str) -> None:
    earlier, closed, _ = campaigns(database_url)
    code, out, err = cli("results", "show", str(closed), "--breakdown", "unit")
    assert code == 0, err
    assert "Svarsfrekvens" in out and "83 %" in out  # 10 of 12
    assert "Har du fått hjälp?" in out
    assert f"Förändring mot kampanj {earlier}" in out
    assert "50 % -> 100 % (+50)" in out
    assert "== Enhet ==" in out
    assert "k = 5" in out
    assert "0701234567" not in out
    code, out, _ = cli("results", "show", str(closed), "--lang", "en")
    assert code == 0 and "Response rate" in out and "Have you been helped?" in out
    assert f"Change since campaign {earlier}" in out


def test_show_marks_withheld_cells(cli: Cli, database_url: str) -> None:
    async def make() -> int:
        async with results_runtime(database_url, FixedClock(START)) as runtime:
            persons = [Person(answers={"hjalp": "ja"}) for _ in range(7)]
            persons.append(Person(answers={"hjalp": "nej"}))
            return await make_campaign(runtime, persons)

    campaign_id = run_in_thread(make)
    code, out, _ = cli("results", "show", str(campaign_id))
    assert code == 0
    assert "–" in out and "– = visas inte" in out


def test_export_formats(cli: Cli, database_url: str, tmp_path: Path) -> None:
    _, closed, _ = campaigns(database_url)
    code, out, err = cli(
        "results", "export", str(closed), "--format", "csv", "--out", str(tmp_path / "a.csv")
    )
    assert code == 0, err
    assert "10 respondents" in out
    with (tmp_path / "a.csv").open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0][0] == "respondent" and len(rows) == 1 + 10 * 3
    assert any("[telefon]" in row[3] for row in rows[1:])

    code, _, err = cli(
        "results",
        "export",
        str(closed),
        "--format",
        "xlsx",
        "--out",
        str(tmp_path / "a.xlsx"),
        "--breakdown",
        "unit",
    )
    assert code == 0, err
    workbook = load_workbook(tmp_path / "a.xlsx")
    assert workbook.sheetnames == ["Sammanfattning", "Enhet", "Svar", "Om svaren"]
    assert workbook["Svar"].max_row == 1 + 10 * 3

    folder = tmp_path / "package"
    code, _, err = cli(
        "results", "export", str(closed), "--format", "flow-results", "--out", str(folder)
    )
    assert code == 0, err
    descriptor = json.loads((folder / "datapackage.json").read_text(encoding="utf-8"))
    assert descriptor["profile"] == "flow-results-package"
    assert descriptor["flow_results_specification_version"] == "1.0.0-rc1"
    assert descriptor["id"] and descriptor["created"] and descriptor["modified"]
    (resource,) = descriptor["resources"]
    assert [f["name"] for f in resource["schema"]["fields"]][:2] == ["timestamp", "row_id"]
    assert set(resource["schema"]["questions"]) == {"hjalp", "bemotande", "ovrigt"}
    responses = json.loads((folder / resource["path"]).read_text(encoding="utf-8"))
    assert len(responses) == 30

    async def audited() -> list[tuple[str, str]]:
        async with (
            results_runtime(database_url, FixedClock(START)) as runtime,
            runtime.db.transaction(read_only=True) as s,
        ):
            entries = await repo_audit.recent(s, action="results.export")
        return [(e.details["format"], e.actor) for e in entries]

    entries = run_in_thread(audited)
    assert [fmt for fmt, _ in entries] == ["flow-results", "xlsx", "csv"]
    assert all(actor.startswith("cli") for _, actor in entries)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("results", "show", "999"), "no campaign with id 999"),
        (("results", "export", "999", "--format", "csv", "--out", "{tmp}/x.csv"), "no campaign"),
        (
            ("results", "export", "{closed}", "--format", "pdf", "--out", "{tmp}/x.pdf"),
            "unknown format 'pdf'",
        ),
        (
            ("results", "export", "{closed}", "--format", "csv", "--out", "{tmp}/no/such/x.csv"),
            "does not exist",
        ),
        (("results", "export", "{closed}", "--format", "csv", "--out", "{tmp}"), "is a folder"),
        (
            ("results", "export", "{running}", "--format", "csv", "--out", "{tmp}/x.csv"),
            "final when it closes",
        ),
        (("results", "show", "{closed}", "--breakdown", "shoe"), "unknown breakdown shoe"),
        (("feedback", "set", "{closed}", "--text", "fi=Hei"), "no language 'fi'"),
        (("feedback", "set", "{closed}", "--text", "Hej"), "--text takes LANG=TEXT"),
        (("feedback", "set", "{closed}", "--text", "sv=a", "--text", "sv=b"), "sv is given twice"),
        (("feedback", "set", "{closed}", "--text", "sv=Vi gör om."), "no feedback text in en, ar"),
        (("feedback", "set", "{closed}", "--delay", "soon"), "delay: 'soon' is not a duration"),
        (("feedback", "set", "{closed}", "--plan-ref", "sv=Mål 3"), "no plan reference in en, ar"),
        (("feedback", "set", "{closed}", "--file", "{tmp}/none.toml"), "cannot read"),
        (("feedback", "set", "{closed}"), "give --text LANG=TEXT"),
        (("feedback", "send-now", "{running}"), "feedback can go out once it has closed"),
        (("feedback", "hold", "999"), "no campaign with id 999"),
    ],
)
def test_bad_input(
    cli: Cli, database_url: str, tmp_path: Path, argv: tuple[str, ...], message: str
) -> None:
    _, closed, running = campaigns(database_url)
    args = [a.format(tmp=tmp_path, closed=closed, running=running) for a in argv]
    code, out, err = cli(*args)
    assert code == 1, (out, err)
    assert err.startswith("error: ") and message in err, err
    assert not (tmp_path / "x.csv").exists()


def test_unwritable_path(cli: Cli, database_url: str, tmp_path: Path) -> None:
    _, closed, _ = campaigns(database_url)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    import os

    if os.access(locked, os.W_OK):
        pytest.skip("running as a user who can write anywhere")
    code, _, err = cli(
        "results", "export", str(closed), "--format", "csv", "--out", str(locked / "x.csv")
    )
    assert code == 1 and "permission denied" in err


def test_partial_export_of_an_open_campaign(cli: Cli, database_url: str, tmp_path: Path) -> None:
    _, _, running = campaigns(database_url)
    code, out, err = cli(
        "results",
        "export",
        str(running),
        "--format",
        "csv",
        "--out",
        str(tmp_path / "p.csv"),
        "--partial",
    )
    assert code == 0, err
    assert "preliminary" in out


def test_feedback_commands(cli: Cli, database_url: str) -> None:
    _, closed, _ = campaigns(database_url)
    code, out, err = cli(
        "feedback",
        "set",
        str(closed),
        "--text",
        "sv=Vi ringer tillbaka inom en dag.",
        "--without-text",
        "en,ar",
        "--plan-ref",
        "Mål 3.2",
    )
    assert code == 0, err
    assert "feedback text in sv; without text: en, ar; plan reference in: ar, en, sv" in out
    code, out, _ = cli("feedback", "preview", str(closed))
    assert code == 0
    assert "--- sv: 10 recipients, SMS" in out
    assert "Det här gör vi: Vi ringer tillbaka inom en dag. (Mål 3.2)" in out
    assert f"https://enkat.example.se/results/{closed}" in out
    assert "--- en: 0 recipients" in out and "--- ar: 0 recipients" in out
    assert '(sent without a "what we will do" text, as chosen)' in out
    assert cli("feedback", "hold", str(closed))[1].strip().endswith("feedback held")
    assert cli("feedback", "release", str(closed))[1].strip().endswith("feedback pending")


# -- issue 10 item 7: labels in the chosen language, names, no self-breakdown, fair change -----


def test_show_in_arabic_with_names_and_no_background_question_by_itself(
    cli: Cli, database_url: str
) -> None:
    async def make() -> int:
        async with results_runtime(database_url, FixedClock(START)) as runtime:
            persons = [
                Person(
                    answers={"kon": "kvinna" if i < 5 else "man", "hjalp": "ja"},
                    target_group="ekonomiskt_bistand" if i % 2 else "missbruk",
                )
                for i in range(10)
            ]
            return await make_campaign(runtime, persons, survey_id="bakgrund")

    campaign_id = run_in_thread(make)
    code, out, err = cli(
        "results", "show", str(campaign_id), "--lang", "ar", "--breakdown", "gender,target_group"
    )
    assert code == 0, err
    assert "المشاركة" in out and "نسبة الاستجابة" in out  # headings in Arabic
    assert "هل حصلت على المساعدة؟" in out and "Har du fått hjälp?" not in out
    assert "== الجنس ==" in out and "== الفئة المستهدفة ==" in out
    assert "المساعدة المالية" in out  # ekonomiskt_bistand by its name
    assert "ekonomiskt_bistand" not in out and "Participation" not in out
    # The gender question is not broken down by gender (it would be 100 % in each group).
    gender_section = out.split("== الجنس ==")[1].split("==")[0]
    assert "ما جنسك؟" not in gender_section and "هل حصلت على المساعدة؟" in gender_section
    code, out, _ = cli("results", "show", str(campaign_id), "--breakdown", "target_group")
    assert code == 0 and "Ekonomiskt bistånd" in out and "Missbruk och beroende" in out


@pytest.mark.parametrize(
    ("lang", "message"),
    [("fi", "has no texts in 'fi' (it has sv, en, ar)"), ("sv-x-lattlast", "has no texts")],
)
def test_show_in_a_language_it_cannot(cli: Cli, database_url: str, lang: str, message: str) -> None:
    _, closed, _ = campaigns(database_url)
    code, _, err = cli("results", "show", str(closed), "--lang", lang)
    assert code == 1 and message in err, err


def test_change_only_against_a_previous_campaign_with_k_answers(
    cli: Cli, database_url: str
) -> None:
    async def make() -> tuple[int, int, int, int]:
        async with results_runtime(database_url, FixedClock(START)) as runtime:
            old = [Person(answers={"hjalp": "nej", "bemotande": "bra"}) for _ in range(6)]
            oldest = await make_campaign(
                runtime, old, closed_at=START.replace(year=2024), name="Våren 2024"
            )
            few = [Person(answers={"hjalp": "ja", "bemotande": "bra"}) for _ in range(3)]
            small = await make_campaign(
                runtime, few, closed_at=START.replace(year=2025), name="Våren 2025"
            )
            current = await make_campaign(runtime, people(8))
            # Another survey whose only earlier campaign had three answers.
            tiny = [Person(answers={"hjalp": "ja"}) for _ in range(3)]
            await make_campaign(
                runtime, tiny, closed_at=START.replace(year=2025), survey_id="bakgrund"
            )
            alone = await make_campaign(runtime, people(8), survey_id="bakgrund")
            return oldest, small, current, alone

    oldest, small, current, alone = run_in_thread(make)
    code, out, err = cli("results", "show", str(current), "--lang", "en")
    assert code == 0, err
    # Against the one before it with 6 answers, not the last one, which had 3.
    assert f"Change since campaign {oldest}" in out and f"campaign {small}" not in out
    assert "0 % -> 100 % (+100)" in out
    code, out, _ = cli("results", "show", str(alone), "--lang", "en")
    assert "Change since" not in out
    assert "No earlier closed campaign of the same survey with at least 5 answers" in out


# -- issue 10 item 10: follow-up surveys have results too ------------------------------------


def followups(database_url: str) -> None:
    from datetime import UTC, datetime

    from storage.models import FollowupRule
    from tests.results_integration.test_followup_feedback import answered_followups

    async def make() -> None:
        async with results_runtime(database_url, FixedClock(START)) as runtime:
            async with runtime.db.transaction() as s:
                rule = FollowupRule(
                    name="r", event_type="insats_ended", survey_id="nojdhet", delay=0
                )
                s.add(rule)
                await s.flush()
                rule_id = rule.id
            feb, may = datetime(2026, 2, 10, 12, tzinfo=UTC), datetime(2026, 5, 10, 12, tzinfo=UTC)
            await answered_followups(runtime, 6, feb, rule=rule_id)
            await answered_followups(runtime, 2, may, rule=rule_id)

    run_in_thread(make)


def test_show_a_followup_survey_in_a_period(cli: Cli, database_url: str) -> None:
    followups(database_url)
    code, out, err = cli(
        "results", "show", "--survey", "nojdhet", "--from", "2026-02-01", "--to", "2026-02-28"
    )
    assert code == 0, err
    assert "enkät nojdhet v1, svar 2026-02-01 till 2026-02-28" in out
    assert re.search(r"Uppföljningar skickade +6\n", out) and re.search(r"Slutförda +6\n", out)
    assert "Har du fått hjälp?" in out and "100 %" in out
    code, out, err = cli("results", "show", "--survey", "nojdhet", "--lang", "en")
    assert code == 0, err
    assert re.search(r"Completed +8\n", out)
    # Two in May alone are too few to show.
    code, out, _ = cli("results", "show", "--survey", "nojdhet", "--from", "2026-05-01")
    assert re.search(r"Slutförda +–\n", out) and "100 %" not in out


def public_answers(database_url: str, n: int, value: str) -> None:
    """n people who started the survey from the web chat list (a public start) in February."""
    import uuid
    from datetime import date

    from storage.models import Answer, Respondent

    async def make() -> None:
        async with results_runtime(database_url, FixedClock(START)) as runtime:
            entry = runtime.catalog.latest("nojdhet")
            assert entry is not None
            async with runtime.db.transaction() as s:
                for _ in range(n):
                    rid = str(uuid.uuid4())
                    s.add(
                        Respondent(
                            id=rid,
                            survey_id="nojdhet",
                            survey_version_id=entry.version_id,
                            campaign_id=None,
                            attributes={},
                            channel="webchat",
                            status="completed",
                            started_on=date(2026, 2, 12),
                            completed=True,
                            origin="public",
                        )
                    )
                    await s.flush()
                    s.add(
                        Answer(
                            respondent_id=rid,
                            question_id="hjalp",
                            value=value,
                            skipped=False,
                            answered_on=date(2026, 2, 12),
                        )
                    )

    run_in_thread(make)


def test_public_answers_are_kept_apart_from_follow_ups_and_labelled(
    cli: Cli, database_url: str
) -> None:
    followups(database_url)  # six "ja" to follow-ups in February
    public_answers(database_url, 7, "nej")  # seven "nej" from public starts in February
    feb = ("--from", "2026-02-01", "--to", "2026-02-28")
    code, out, err = cli("results", "show", "--survey", "nojdhet", *feb, "--lang", "en")
    assert code == 0, err
    assert "Answers to follow-ups sent by the rules" in out
    assert re.search(r"Completed +6\n", out) and "100 %" in out  # no public "nej" mixed in
    code, out, err = cli(
        "results", "show", "--survey", "nojdhet", *feb, "--origin", "public", "--lang", "en"
    )
    assert code == 0, err
    assert "Answers from open starts" in out and "Follow-ups sent" not in out
    assert re.search(r"Completed +7\n", out)
    code, _, err = cli("results", "show", "1", "--origin", "public")
    assert code == 1 and "--origin go with --survey" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--survey", "nope"), "no survey with id 'nope'"),
        (("--survey", "nojdhet", "--from", "2026-02-30"), "--from: '2026-02-30' is not a date"),
        (("--survey", "nojdhet", "--from", "2026-03-01", "--to", "2026-02-01"), "after --to"),
        (("--survey", "nojdhet", "--to", "9999-12-31"), "--to 9999-12-31 is out of range"),
        (("--survey", "nojdhet", "--from", "0001-01-01"), "--from 0001-01-01 is out of range"),
        (("1", "--survey", "nojdhet"), "give a campaign id, or --survey"),
        ((), "give a campaign id, or --survey"),
        (("1", "--from", "2026-01-01"), "--from, --to and --origin go with --survey"),
    ],
)
def test_show_followup_bad_input(
    cli: Cli, database_url: str, argv: tuple[str, ...], message: str
) -> None:
    code, _, err = cli("results", "show", *argv)
    assert code == 1 and message in err, err


# -- issue 10 items 11 and 12 from the command line ------------------------------------------


def test_feedback_per_language_from_options_and_a_file(
    cli: Cli, database_url: str, tmp_path: Path
) -> None:
    _, closed, _ = campaigns(database_url)
    code, out, err = cli(
        "feedback",
        "set",
        str(closed),
        "--text",
        "sv=Vi öppnar på kvällar.",
        "--text",
        "en=We open in the evenings.",
        "--text",
        "ar=سنفتح مساءً.",
        "--plan-ref",
        "sv=Mål 3.2",
        "--plan-ref",
        "en=Goal 3.2",
        "--plan-ref",
        "ar=الهدف 3.2",
    )
    assert code == 0, err
    assert "feedback text in ar, en, sv; without text: -" in out
    assert re.search(r"SMS segments now: sv \d, en \d, ar \d \(at most 3\)", out)
    code, out, _ = cli("feedback", "preview", str(closed))
    assert "ما سنفعله: سنفتح مساءً. (الهدف 3.2)" in out
    assert "What we will do: We open in the evenings. (Goal 3.2)" in out

    toml = tmp_path / "feedback.toml"
    toml.write_text(
        'without_text = ["ar"]\nplan_ref = "Mål 4"\ndelay = "2d"\n'
        '[text]\nsv = "Vi ringer upp samma dag."\nen = "We call back the same day."\n',
        encoding="utf-8",
    )
    code, out, err = cli("feedback", "set", str(closed), "--file", str(toml))
    assert code == 0, err
    assert "feedback text in en, sv; without text: ar; plan reference in: ar, en, sv" in out
    code, out, _ = cli("feedback", "preview", str(closed))
    assert "Det här gör vi: Vi ringer upp samma dag. (Mål 4)" in out
    assert "ما سنفعله" not in out

    for body, message in (
        ("text = 3\n", "text must be a table"),
        ("[txt]\nsv = 'x'\n", "unknown key txt"),
        ("text = [\n", "feedback.toml"),
    ):
        toml.write_text(body, encoding="utf-8")
        code, _, err = cli("feedback", "set", str(closed), "--file", str(toml))
        assert code == 1 and message in err, (body, err)


WHEN = r"\d{4}-\d\d-\d\d \d\d:\d\d Europe/Stockholm"
"""The command line runs on the real clock; the times themselves are checked in test_feedback."""


def test_feedback_timing_send_now_and_delay(cli: Cli, database_url: str) -> None:
    _, closed, running = campaigns(database_url)
    code, out, _ = cli("feedback", "preview", str(closed))
    assert re.search(f"\nfeedback pending: goes out {WHEN}", out), out
    code, out, _ = cli("campaigns", "show", str(closed))
    assert code == 0 and re.search(f"\nfeedback +pending: goes out {WHEN}", out), out
    code, out, _ = cli("campaigns", "show", str(running))
    assert re.search(r"\nfeedback +pending: goes out 1h after the campaign closes", out), out

    code, out, err = cli("feedback", "set", str(closed), "--delay", "3d")
    assert code == 0, err
    assert re.search(f"feedback pending: goes out {WHEN}", out), out
    code, out, err = cli("feedback", "send-now", str(closed))
    assert code == 0, err
    assert f"campaign {closed}: feedback pending: goes out" in out
    assert "sends it at its next poll" in out
    code, out, _ = cli("feedback", "hold", str(closed))
    code, out, _ = cli("campaigns", "show", str(closed))
    assert re.search(r"\nfeedback +held: goes out when released", out)
    code, _, err = cli("feedback", "send-now", str(closed))
    assert code == 1 and "release it first" in err
