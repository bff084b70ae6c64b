"""`brukardialog events import|show|rules list|rules check`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import bot.cli
from tests.followups.conftest import settings_for

Cli = Callable[..., tuple[int, str, str]]
HEADER = "event_id;type;external_ref;occurred_at;cancelled;attributes;attr_age;phone;birth_year\n"


@pytest.fixture
def cli(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Cli:
    settings = settings_for(database_url)
    monkeypatch.delenv("BRUKARDIALOG_CONFIG", raising=False)
    monkeypatch.setenv("BRUKARDIALOG__DATABASE__URL", database_url)
    monkeypatch.setenv("BRUKARDIALOG__PRIVACY__PSEUDONYM_KEY", settings.privacy.pseudonym_key)
    monkeypatch.setenv("BRUKARDIALOG__PRIVACY__ADDRESS_KEY", settings.privacy.address_key)
    monkeypatch.setenv("BRUKARDIALOG__SCHEDULE__QUIET_HOURS", "20:00-09:00")

    def run(*argv: str) -> tuple[int, str, str]:
        code = bot.cli.main(list(argv))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "events.csv"
    path.write_text("\ufeff" + text, encoding="utf-8")
    return path


def test_import_then_show(cli: Cli, tmp_path: Path) -> None:
    run = cli
    path = write(
        tmp_path,
        HEADER
        + "ev-1;insats_ended;P-1;2026-03-02T17:55:00+01:00;;"
        + '"{""insats"": ""boende""}";;0701234567;1980\n'
        + "ev-2;utredning_closed;P-2;2026-03-02 12:00;nej;;12;0701234568;\n"
        + "\n"
        + "ev-3;insats_ended;P-1;2026-03-03T09:00:00+01:00;ja;;;;\n",
    )
    code, out, err = run("events", "import", str(path))
    assert (code, err) == (0, "")
    assert out == "imported 3 events (3 created); 2 follow-ups pending\n"

    code, out, _err = run("events", "show", "ev-2")
    assert code == 0
    assert out.splitlines() == [
        "event ev-2 (utredning_closed) for external_ref P-2",
        "  occurred 2026-03-02 12:00 Europe/Stockholm",
        "  barnenkat-efter-utredning -> barnenkat: pending, due 2026-03-05 15:00",
    ]
    code, out, _err = run("events", "show", "ev-3")
    assert out.splitlines()[1:] == [
        "  occurred 2026-03-03 09:00 Europe/Stockholm",
        "  cancelled",
        "  no follow-ups",
    ]

    code, out, _err = run("events", "import", str(path))
    assert out == "imported 3 events (3 unchanged); 2 follow-ups pending\n"


def test_bad_rows_refuse_the_whole_file(cli: Cli, tmp_path: Path) -> None:
    run = cli
    path = write(
        tmp_path,
        HEADER
        + "ev-1;insats_ended;P-1;2026-03-02T17:55:00+01:00;;;;0701234567;1980\n"
        + "ev-2;insats ended;P-2;igår;kanske;{;;0701234568;\n"
        + "ev-3;insats_ended;;2026-03-02T17:55:00+01:00;;;;123;\n"
        + "ev-1;insats_ended;P-1;2026-03-02T17:55:00+01:00;;;;;\n"
        + "ev-4;insats_ended;P-4\n",
    )
    code, out, err = run("events", "import", str(path))
    assert (code, out) == (1, "")
    lines = err.splitlines()
    assert lines[0] == f"error: {path}: nothing imported, fix these rows and import again:"
    assert lines[1].startswith("  line 3: cancelled: 'kanske' is not true or false; attributes:")
    assert "type: 'insats ended'" in lines[1] and "occurred_at: 'igår'" in lines[1]
    assert lines[2] == (
        "  line 4: external_ref: required; contact.phone: is not a valid phone number (region SE)"
    )
    assert lines[3] == "  line 6: expected 9 fields, got 3"
    assert lines[4] == "  line 5: duplicate event_id 'ev-1' (first on line 2)"
    assert run("events", "show", "ev-1")[2] == "error: no event with event_id 'ev-1'\n"


def test_an_unknown_person_refuses_the_file_by_line(cli: Cli, tmp_path: Path) -> None:
    run = cli
    path = write(
        tmp_path,
        HEADER
        + "ev-1;insats_ended;P-1;2026-03-02T17:55:00+01:00;;;;0701234567;\n"
        + "ev-2;insats_ended;P-2;2026-03-02T17:55:00+01:00;;;;;\n",
    )
    code, _out, err = run("events", "import", str(path))
    assert code == 1
    assert err.splitlines()[1:] == [
        "  line 3: no contact with external_ref 'P-2'; include contact details to create one"
    ]
    assert run("events", "show", "ev-1")[0] == 1


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("event_id,type,external_ref\n", "line 1: missing column(s) occurred_at"),
        ("event_id,typ,external_ref,occurred_at\n", "line 1: unknown column 'typ'"),
        ("", "line 1: the file is empty"),
        ("event_id,type,external_ref,occurred_at\n", "line 2: the file has no events"),
    ],
)
def test_bad_files(cli: Cli, tmp_path: Path, header: str, expected: str) -> None:
    run = cli
    code, _out, err = run("events", "import", str(write(tmp_path, header)))
    assert code == 1 and expected in err


def test_rules_list_and_check(cli: Cli, tmp_path: Path) -> None:
    run = cli
    code, out, _err = run("events", "rules", "list")
    assert code == 0
    assert "uppfoljning-efter-insats (file)" in out
    assert "  send barnenkat after 3d within 15:00-19:00, expires after 5d" in out

    code, out, _err = run("events", "rules", "check")
    assert (code, out.strip().split(" rules")[0]) == (0, "ok: 2")
    bad = tmp_path / "rules.toml"
    bad.write_text('[[rules]]\nname = "x"\nevent = "e"\nsurvey = "okand"\ndelay = "1v"\n')
    code, out, _err = run("events", "rules", "check", str(bad))
    assert code == 1
    assert out.splitlines() == [
        f"{bad}: rule 'x': survey: unknown survey 'okand' (known: barnenkat, "
        "brukardialog-konsultation, ifo-brukarundersokning, uppfoljning-insats)",
        f"{bad}: rule 'x': delay: '1v' is not a duration: use a number and a unit, "
        'like "90s", "15m", "2h", "7d" or "1d12h"',
    ]


def test_show_says_why_an_event_planned_no_follow_up(cli: Cli, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEADER
        + "ev-1;utredning_closed;P-1;2026-03-02 12:00;;;19;0701234567;\n"
        + "ev-2;okand_handelse;P-2;2026-03-02 12:00;;;;0701234568;\n",
    )
    assert cli("events", "import", str(path))[0] == 0
    code, out, _err = cli("events", "show", "ev-1")
    assert code == 0
    assert out.splitlines()[2:] == [
        "  barnenkat-efter-utredning -> barnenkat: not planned: rule 'barnenkat-efter-utredning' "
        "has a filter the event did not match (age >= 6 and age <= 17)"
    ]
    code, out, _err = cli("events", "show", "ev-2")
    assert out.splitlines()[2:] == [
        "  no follow-ups: no follow-up rule for event type 'okand_handelse'"
    ]
