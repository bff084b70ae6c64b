"""The `brukardialog` command: survey checks, surveys in a pipe, errors without tracebacks."""

from __future__ import annotations

import gc
import io
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web

from bot.cli import main
from bot.cli.command import _freeze_startup_objects, try_survey
from bot.survey_files import load_paths
from flows import engine
from flows.conversation import Input
from flows.model import Question, QuestionType, Survey

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "flows" / "surveys"


def shipped(survey_id: str) -> Survey:
    return next(s for s in load_paths([SHIPPED]).surveys if s.id == survey_id)


def run(*args: str, stdin: str = "", cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )


def test_flows_check_passes_the_shipped_surveys(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["flows", "check"]) == 0
    assert capsys.readouterr().out.strip() == "ok: 4 surveys"


def test_flows_check_names_each_problem_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('id = "Bad Id"\nversion = 1\nlanguages = ["sv"\n', encoding="utf-8")
    assert main(["flows", "check", str(bad), str(tmp_path / "missing.toml")]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert any(line.startswith(f"{bad}:") for line in lines)
    assert any("missing.toml:0: no such file" in line for line in lines)


def valid_answer(question: Question) -> str:
    """Some answer the question accepts, as a person would type it."""
    if question.type in (QuestionType.SELECT_ONE, QuestionType.SELECT_MANY):
        return "1"
    if question.type in (QuestionType.NUMERIC, QuestionType.SCALE):
        return str(question.scale_range[0])
    if question.type is QuestionType.DATE:
        return "2026-02-01"
    return "Bra bemötande, men lång väntan."


def answer_script(survey: Survey, lang: str) -> list[str]:
    """The answers that take the survey from start to end, found by asking the engine."""
    now = datetime(2026, 3, 2, 10, tzinfo=UTC)
    step = engine.start(survey, now=now, lang=lang)
    script = []
    while not step.state.status.finished:
        question = survey.question(step.state.current or "")
        assert question is not None
        script.append(valid_answer(question))
        step = engine.resume(survey, step.state, Input(text=script[-1]), now)
    return script


@pytest.mark.parametrize(
    ("survey_id", "lang"),
    [
        ("uppfoljning-insats", "en"),
        ("uppfoljning-insats", "sv-x-lattlast"),
        ("barnenkat", "sv"),
        ("ifo-brukarundersokning", "ar"),
        ("brukardialog-konsultation", "sv"),
        ("brukardialog-konsultation", "en"),
    ],
)
def test_each_shipped_survey_can_be_completed_in_a_pipe(survey_id: str, lang: str) -> None:
    survey = shipped(survey_id)
    out = io.StringIO()
    stdin = io.StringIO("\n".join(answer_script(survey, lang)) + "\n")
    code = try_survey(survey, lang, stdin, out, now=lambda: datetime(2026, 3, 2, 10, tzinfo=UTC))
    assert code == 0
    assert out.getvalue().rstrip().endswith("[completed]"), out.getvalue()[-500:]


def test_flows_try_ends_cleanly_at_the_end_of_input() -> None:
    result = run("flows", "try", "uppfoljning-insats", stdin="2\n")
    assert result.returncode == 0
    assert result.stdout.rstrip().endswith("[active]")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "files", "code", "message"),
    [
        (["flows", "try", "nope"], {}, 1, "error: unknown survey 'nope'"),
        (
            ["--config", "c.toml", "flows", "check"],
            {"c.toml": "[server]\nport = 'x'\n"},
            2,
            "server.port must be an integer",
        ),
        (
            ["--config", "c.toml", "flows", "check"],
            {"c.toml": "[twilio]\nauth_tokn = 'x'\n"},
            2,
            "did you mean 'auth_token'",
        ),
        (["--config", "c.toml", "flows", "check"], {"c.toml": "[server\n"}, 2, "c.toml"),
        (["--config", "nope.toml", "flows", "check"], {}, 2, "does not exist"),
        (
            ["--config", "c.toml", "flows", "check"],
            {"c.toml": "[organisation]\nname = ' '\nresults_url = 'lund.se/x y'\n"},
            2,
            "organisation.name must not be empty",
        ),
        (
            ["--config", "c.toml", "serve"],
            {"c.toml": "[database]\nurl = 'postgresql+asyncpg://nobody@127.0.0.1:1/none'\n"},
            1,
            "cannot reach the database",
        ),
    ],
)
def test_mistakes_get_a_clear_message_and_no_traceback(
    tmp_path: Path, args: list[str], files: dict[str, str], code: int, message: str
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    result = run(*args, cwd=tmp_path)
    assert result.returncode == code, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_db_upgrade_creates_the_embedded_database(tmp_path: Path) -> None:
    result = run("db", "upgrade", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "var" / "brukardialog.db").exists()


# -- which database a command uses, and never a new one by accident -----------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["campaigns", "list"],
        ["campaigns", "show", "1"],
        ["contacts", "import", "people.csv"],
        ["events", "show", "E-1"],
        ["results", "show", "1"],
        ["feedback", "preview", "1"],
    ],
)
def test_commands_refuse_to_create_a_database_or_key(tmp_path: Path, args: list[str]) -> None:
    (tmp_path / "people.csv").write_text("external_ref\nP1\n", encoding="utf-8")
    result = run(*args, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert f"no database at {tmp_path / 'var' / 'brukardialog.db'}" in result.stderr
    assert "no pseudonym key file at" in result.stderr
    assert "brukardialog db upgrade" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "var" / "brukardialog.db").exists()
    assert not (tmp_path / "var" / "pseudonym.key").exists()


def test_db_upgrade_makes_the_key_and_then_commands_work(tmp_path: Path) -> None:
    result = run("db", "upgrade", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "var" / "pseudonym.key").exists()
    assert run("campaigns", "list", cwd=tmp_path).stdout == "no campaigns\n"

    (tmp_path / "var" / "pseudonym.key").unlink()
    lost = run("campaigns", "list", cwd=tmp_path)
    assert lost.returncode == 1
    assert "restore the key file" in lost.stderr
    again = run("db", "upgrade", cwd=tmp_path)
    assert again.returncode == 0 and "restore its key file" in again.stderr
    assert not (tmp_path / "var" / "pseudonym.key").exists(), "never a new key for old data"


def status(tmp_path: Path, **env: str) -> dict[str, list[str]]:
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "status"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **env},
    )
    assert result.returncode == 0, result.stderr
    rows: dict[str, list[str]] = {}
    label = ""
    for line in result.stdout.splitlines():
        label = line[:14].strip() or label
        rows.setdefault(label, []).append(line[15:])
    return rows


def test_status_says_what_commands_use_and_creates_nothing(tmp_path: Path) -> None:
    from storage.migrate import head

    before = status(tmp_path)
    assert before["config"] == [
        "none: the defaults and any BRUKARDIALOG__* variables (give one with --config)"
    ]
    assert before["database"] == [
        f"sqlite+aiosqlite:///var/brukardialog.db ({tmp_path}/var/brukardialog.db, does not exist)"
    ]
    assert before["pseudonym key"] == [f"{tmp_path}/var/pseudonym.key (does not exist)"]
    assert before["channels"] == [
        "sms: off (twilio.account_sid is not set)",
        "telegram: off (telegram.bot_token is not set)",
        "webchat: on",
    ]
    assert before["surveys"][-1].startswith("4 loaded: barnenkat, ")
    assert "links point at this machine" in before["public url"][0]
    assert before["organisation"] == [
        "Exempelkommun, results at exempelkommun.se (the example: set organisation.name and "
        "organisation.results_url)"
    ]
    assert not (tmp_path / "var").exists()

    assert run("db", "upgrade", cwd=tmp_path).returncode == 0
    (tmp_path / "my.toml").write_text("[server]\npublic_url = 'https://enkat.example.se'\n")
    after = status(tmp_path, BRUKARDIALOG_CONFIG="my.toml")
    assert after["config"] == [f"{tmp_path}/my.toml (BRUKARDIALOG_CONFIG)"]
    assert after["schema"] == [f"{head()} (up to date)"]
    assert after["public url"] == ["https://enkat.example.se"]


def test_status_hides_the_database_password(tmp_path: Path) -> None:
    rows = status(
        tmp_path,
        BRUKARDIALOG__DATABASE__URL="postgresql+asyncpg://bd:hemligt@127.0.0.1:1/bd",
        BRUKARDIALOG__PRIVACY__PSEUDONYM_KEY="test-pseudonym-key-0123456789abcdef",
    )
    assert rows["database"] == ["postgresql+asyncpg://bd:***@127.0.0.1:1/bd"]
    assert rows["schema"][0].startswith("unknown: cannot read the database")
    assert rows["pseudonym key"] == ["privacy.pseudonym_key (from the config or environment)"]
    assert "hemligt" not in str(rows)


# -- server.public_url --------------------------------------------------------------------------


PUBLIC_URLS = [("", True), ("https://enkat.example.se", False)]


@pytest.mark.parametrize(("public_url", "warned"), PUBLIC_URLS)
def test_serve_warns_when_public_url_is_not_set(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    public_url: str,
    warned: bool,
) -> None:
    from aiohttp import web

    served: list[object] = []
    monkeypatch.setattr(web, "run_app", lambda app, **kwargs: served.append(app))
    monkeypatch.setenv("BRUKARDIALOG__DATABASE__URL", f"sqlite+aiosqlite:///{tmp_path}/bd.db")
    monkeypatch.setenv("BRUKARDIALOG__SERVER__PUBLIC_URL", public_url)
    monkeypatch.delenv("BRUKARDIALOG_CONFIG", raising=False)
    with caplog.at_level("WARNING", logger="brukardialog"):
        assert main(["serve"]) == 0
    assert len(served) == 1
    warnings = [r.getMessage() for r in caplog.records if "server.public_url" in r.getMessage()]
    assert bool(warnings) is warned
    if warned:
        assert "http://127.0.0.1:8080" in warnings[0]


@pytest.mark.parametrize(("public_url", "warned"), PUBLIC_URLS)
def test_feedback_preview_warns_when_public_url_is_not_set(
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    public_url: str,
    warned: bool,
) -> None:
    monkeypatch.setenv("BRUKARDIALOG__DATABASE__URL", database_url)
    monkeypatch.setenv("BRUKARDIALOG__PRIVACY__PSEUDONYM_KEY", "test-pseudonym-key-0123456789ab")
    monkeypatch.setenv("BRUKARDIALOG__SERVER__PUBLIC_URL", public_url)
    monkeypatch.delenv("BRUKARDIALOG_CONFIG", raising=False)
    main(["feedback", "preview", "1"])
    err = capsys.readouterr().err
    assert ("warning: server.public_url is not set" in err) is warned, err


# -- {organisation} and {results_url} -------------------------------------------------------------


def test_flows_check_accepts_the_placeholders_and_names_unknown_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("BRUKARDIALOG_CONFIG", raising=False)
    text = (SHIPPED / "barnenkat.toml").read_text(encoding="utf-8")
    assert "{organisation}" in text and "{results_url}" in text
    typo = tmp_path / "barnenkat.toml"
    typo.write_text(text.replace("{results_url}", "{result_url}", 1), encoding="utf-8")
    line = next(n for n, t in enumerate(text.splitlines(), 1) if t.startswith("results_use"))
    assert main(["flows", "check", str(typo)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"{typo}:{line}: unknown placeholder {{result_url}} "
        "(known: {organisation}, {results_url})"
    ]

    # Checked with the configured values, as the service sends them.
    monkeypatch.setenv("BRUKARDIALOG__ORGANISATION__RESULTS_URL", "kommunen.se/" + "x" * 40)
    assert main(["flows", "check", str(SHIPPED / "barnenkat.toml")]) == 1
    assert "intro with results_use in 'ar' is 4 SMS segments" in capsys.readouterr().out


# -- the README's tour, pasted as it is ------------------------------------------------------------

README = ROOT / "README.md"


def readme_tour() -> str:
    """The shell blocks of the README's tour, in order, as one script."""
    text = README.read_text(encoding="utf-8")
    tour = text[text.index("## A short tour") : text.index("### The staff API")]
    blocks = re.findall(r"```sh\n(.*?)```", tour, re.S)
    assert len(blocks) >= 4, "the tour lost its examples"
    return "\n".join(blocks)


def test_the_readme_tour_runs_when_pasted(tmp_path: Path) -> None:
    venv = ROOT / ".venv"
    if not (venv / "bin" / "brukardialog").exists():
        pytest.skip("needs the .venv that `make install` makes")
    for name in (".venv", "flows", "examples"):
        (tmp_path / name).symlink_to(ROOT / name)
    script = readme_tour()
    assert re.search(r"\b20\d\d-\d\d-\d\d\b", script) is None, "dates go stale: use 30d"
    result = subprocess.run(
        ["bash", "-e", "-x", "-c", script],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
        stdin=subprocess.DEVNULL,
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert "error:" not in result.stderr, result.stderr[-3000:]
    assert "imported 6 contacts (6 new, 0 updated)" in result.stdout
    assert "  uppfoljning-efter-insats -> uppfoljning-insats: pending, due" in result.stdout
    assert (tmp_path / "resultat.xlsx").exists() and (tmp_path / "links.csv").exists()


async def test_serve_keeps_what_startup_made_out_of_full_collections() -> None:
    """`serve` freezes the objects alive after startup (`gc.freeze`): a full collection under
    load then walks only what the service made since, not every survey and library."""
    assert gc.get_freeze_count() == 0
    try:
        await _freeze_startup_objects(web.Application())
        assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()
