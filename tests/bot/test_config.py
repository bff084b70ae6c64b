from __future__ import annotations

import json
import re
import tomllib
from dataclasses import fields
from datetime import time
from pathlib import Path
from typing import Any

import pytest

import flows
from bot.config import (
    SHIPPED_SURVEYS,
    ConfigError,
    Settings,
    SurveySettings,
    _from_env,
    _from_toml,
    load_settings,
    resolve_config_path,
)
from bot.timewindows import DailyWindow

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.toml"

TELEGRAM_OK = {
    "BRUKARDIALOG__TELEGRAM__BOT_TOKEN": "123456:ABCdef",
    "BRUKARDIALOG__TELEGRAM__WEBHOOK_SECRET": "webhook-secret_1",
}
TWILIO_OK = {
    "BRUKARDIALOG__TWILIO__ACCOUNT_SID": "AC0123456789abcdef0123456789abcdef",
    "BRUKARDIALOG__TWILIO__AUTH_TOKEN": "twilio-auth-token-value",
    "BRUKARDIALOG__TWILIO__FROM_NUMBER": "+46701234567",
}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "brukardialog.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_a_file() -> None:
    settings = load_settings(None, {})
    assert settings == Settings()
    assert settings.server.public_url == "http://127.0.0.1:8080"
    assert settings.database.url == "sqlite+aiosqlite:///var/brukardialog.db"
    assert settings.surveys.paths == (Path(flows.__file__).parent / "surveys",)
    assert not settings.twilio.enabled
    assert not settings.telegram.enabled
    assert settings.schedule.tz.key == "Europe/Stockholm"
    assert settings.schedule.quiet == DailyWindow(time(20), time(9))
    assert settings.privacy.pseudonym_key_file == Path("var/pseudonym.key")
    assert settings.admin.api_tokens == ()
    assert settings.dispatcher.retry_horizon_seconds == 24 * 3600


def test_example_file_loads_to_the_defaults() -> None:
    assert load_settings(EXAMPLE, {}) == Settings()


def test_example_file_documents_every_key() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    data = tomllib.loads(text)
    settings = Settings()
    assert set(data) == {f.name for f in fields(settings)}
    lines = text.splitlines()
    for section in fields(settings):
        keys = {f.name for f in fields(getattr(settings, section.name))}
        assert set(data[section.name]) == keys, section.name
        for key in keys:
            index = next(i for i, line in enumerate(lines) if line.startswith(f"{key} = "))
            assert lines[index - 1].startswith("#"), f"{section.name}.{key} has no comment"
            env = f"BRUKARDIALOG__{section.name.upper()}__{key.upper()}"
            assert env in text, f"{section.name}.{key}: no {env} example"


def test_file_values(tmp_path: Path) -> None:
    surveys = tmp_path / "surveys"
    surveys.mkdir()
    path = write(
        tmp_path,
        f"""
[server]
host = "0.0.0.0"
port = 9000
public_url = "https://dialog.example.se/"

[database]
url = "postgresql+asyncpg://bd:secret@db.internal/bd"

[surveys]
paths = ["{surveys}"]

[twilio]
account_sid = "AC0123"
auth_token = "token-from-file"
messaging_service_sid = "MG0123"
mps = 10

[schedule]
timezone = "UTC"
quiet_hours = ""
poll_interval = 2

[admin]
api_tokens = ["0123456789abcdef0123"]
""",
    )
    settings = load_settings(path, {})
    assert settings.server.host == "0.0.0.0"
    assert settings.server.port == 9000
    assert settings.server.public_url == "https://dialog.example.se"
    assert settings.database.url == "postgresql+asyncpg://bd:secret@db.internal/bd"
    assert settings.surveys.paths == (surveys,)
    assert settings.twilio.enabled
    assert settings.twilio.mps == 10.0
    assert isinstance(settings.twilio.mps, float)
    assert settings.schedule.quiet is None
    assert settings.schedule.poll_interval == 2.0
    assert settings.admin.api_tokens == ("0123456789abcdef0123",)


def test_empty_survey_list_means_the_shipped_surveys(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, "[surveys]\npaths = []\n"), {})
    assert settings.surveys.paths == (SHIPPED_SURVEYS,)
    assert settings.surveys.resolved_paths == (SHIPPED_SURVEYS,)
    assert SurveySettings(paths=()).resolved_paths == (SHIPPED_SURVEYS,)
    assert SurveySettings(paths=(tmp_path,)).resolved_paths == (tmp_path,)


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nport = 9000\nhost = '0.0.0.0'\n")
    settings = load_settings(path, {"BRUKARDIALOG__SERVER__PORT": " 9100 ", "HOME": "/root"})
    assert settings.server.port == 9100
    assert settings.server.host == "0.0.0.0"
    assert settings.server.public_url == "http://0.0.0.0:9100"


ENV_CASES: list[tuple[dict[str, str], str, object]] = [
    ({"BRUKARDIALOG__SERVER__PORT": "9000"}, "server.port", 9000),
    ({"BRUKARDIALOG__SERVER__HOST": "::1"}, "server.public_url", "http://[::1]:8080"),
    ({"BRUKARDIALOG__TWILIO__MPS": "2.5"}, "twilio.mps", 2.5),
    ({"BRUKARDIALOG__SCHEDULE__QUIET_HOURS": ""}, "schedule.quiet_hours", ""),
    (
        {"BRUKARDIALOG__SCHEDULE__QUIET_HOURS": "21-8"},
        "schedule.quiet",
        DailyWindow(time(21), time(8)),
    ),
    ({"BRUKARDIALOG__PRIVACY__PSEUDONYM_KEY": "ab" * 32}, "privacy.pseudonym_key", "ab" * 32),
    (
        {"BRUKARDIALOG__PRIVACY__PSEUDONYM_KEY_FILE": "/etc/bd/key"},
        "privacy.pseudonym_key_file",
        Path("/etc/bd/key"),
    ),
    (
        {"BRUKARDIALOG__ADMIN__API_TOKENS": "aaaaaaaaaaaaaaaa, bbbbbbbbbbbbbbbb"},
        "admin.api_tokens",
        ("aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb"),
    ),
    (
        {"BRUKARDIALOG__ADMIN__API_TOKENS": '["aaaaaaaaaaaaaaaa,x"]'},
        "admin.api_tokens",
        ("aaaaaaaaaaaaaaaa,x",),
    ),
    ({"BRUKARDIALOG__ADMIN__API_TOKENS": ""}, "admin.api_tokens", ()),
    ({"BRUKARDIALOG__SURVEYS__PATHS": ""}, "surveys.paths", (SHIPPED_SURVEYS,)),
    ({"BRUKARDIALOG__DISPATCHER__LEASE_SECONDS": "30"}, "dispatcher.lease_seconds", 30),
    ({"brukardialog__server__port": "9001"}, "server.port", 9001),
    ({**TELEGRAM_OK}, "telegram.enabled", True),
    ({**TWILIO_OK}, "twilio.enabled", True),
    ({"BRUKARDIALOG_CONFIG": "/nowhere.toml", "BRUKARDIALOG_TEST_X": "1"}, "server.port", 8080),
]


@pytest.mark.parametrize(("environ", "key", "expected"), ENV_CASES)
def test_environment_overrides(environ: dict[str, str], key: str, expected: object) -> None:
    section, name = key.split(".")
    assert getattr(getattr(load_settings(None, environ), section), name) == expected


def test_environment_list_of_paths(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b.toml"
    a.mkdir()
    b.write_text("", encoding="utf-8")
    for value in (f"{a},{b}", json.dumps([str(a), str(b)])):
        settings = load_settings(None, {"BRUKARDIALOG__SURVEYS__PATHS": value})
        assert settings.surveys.paths == (a, b)


COERCE: list[tuple[Any, str, object]] = [
    (bool, "true", True),
    (bool, "YES", True),
    (bool, "1", True),
    (bool, "false", False),
    (bool, " no ", False),
    (bool, "0", False),
    (int, "-3", -3),
    (float, "1e3", 1000.0),
    (str, " kept as is ", " kept as is "),
    (tuple[str, ...], "a, b,,c", ("a", "b", "c")),
    (tuple[str, ...], '["a", " b"]', ("a", " b")),
]


@pytest.mark.parametrize(("kind", "text", "expected"), COERCE)
def test_environment_coercion(kind: Any, text: str, expected: object) -> None:
    assert _from_env("s.k", kind, text) == expected


COERCE_BAD: list[tuple[Any, str, str]] = [
    (bool, "maybe", "s.k must be one of true/false/1/0/yes/no, got 'maybe'"),
    (int, "1.5", "s.k must be an integer, got '1.5'"),
    (float, "fast", "s.k must be a number, got 'fast'"),
    (float, "nan", "s.k must be a number, got 'nan'"),
    (tuple[str, ...], "[1, 2]", "s.k must be a list of strings"),
    (tuple[str, ...], "[nope", "s.k: invalid JSON list"),
]


@pytest.mark.parametrize(("kind", "text", "message"), COERCE_BAD)
def test_environment_coercion_errors(kind: Any, text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        _from_env("s.k", kind, text)


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [(bool, True, True), (float, 3, 3.0), (int, 7, 7), (tuple[str, ...], ["x"], ("x",))],
)
def test_toml_coercion(kind: Any, value: object, expected: object) -> None:
    assert _from_toml("s.k", kind, value) == expected


@pytest.mark.parametrize(
    ("kind", "value"),
    [(bool, "true"), (int, True), (int, 1.0), (float, True), (str, 1), (tuple[str, ...], "a")],
)
def test_toml_coercion_errors(kind: Any, value: object) -> None:
    with pytest.raises(ValueError, match=r"s\.k must be"):
        _from_toml("s.k", kind, value)


# (label, file text or None, environment, expected message fragment)
ERRORS: list[tuple[str, str | None, dict[str, str], str]] = [
    ("toml syntax", "[server]\nport = = 1\n", {}, "invalid TOML: "),
    ("toml syntax line", "[server]\nport = = 1\n", {}, "line 2"),
    (
        "unknown key",
        "[twilio]\nauth_tokn = 'x'\n",
        {},
        "unknown key 'twilio.auth_tokn' (did you mean 'auth_token'?)",
    ),
    ("unknown key, no hint", "[server]\nzzz = 1\n", {}, "unknown key 'server.zzz'"),
    (
        "unknown section",
        "[twillio]\naccount_sid = 'x'\n",
        {},
        "unknown section [twillio] (did you mean 'twilio'?)",
    ),
    ("section not a table", "server = 1\n", {}, "server must be a table"),
    ("string for int", "[server]\nport = 'abc'\n", {}, "server.port must be an integer, got 'abc'"),
    ("bool for int", "[server]\nport = true\n", {}, "server.port must be an integer, got True"),
    ("int for string", "[server]\nhost = 1\n", {}, "server.host must be a string, got 1"),
    (
        "string for list",
        "[admin]\napi_tokens = 'x'\n",
        {},
        "admin.api_tokens must be a list of strings, got 'x'",
    ),
    (
        "env int",
        None,
        {"BRUKARDIALOG__SERVER__PORT": "abc"},
        "BRUKARDIALOG__SERVER__PORT: server.port must be an integer, got 'abc'",
    ),
    (
        "env float",
        None,
        {"BRUKARDIALOG__TWILIO__MPS": "x"},
        "BRUKARDIALOG__TWILIO__MPS: twilio.mps must be a number, got 'x'",
    ),
    (
        "env unknown key",
        None,
        {"BRUKARDIALOG__TWILIO__AUTH_TOKN": "x"},
        "BRUKARDIALOG__TWILIO__AUTH_TOKN: unknown key 'twilio.auth_tokn' "
        "(did you mean 'auth_token'?)",
    ),
    (
        "env unknown section",
        None,
        {"BRUKARDIALOG__TELEGRAMM__BOT_TOKEN": "x"},
        "BRUKARDIALOG__TELEGRAMM__BOT_TOKEN: unknown section 'telegramm' "
        "(did you mean 'telegram'?)",
    ),
    (
        "env malformed name",
        None,
        {"BRUKARDIALOG__SERVER": "x"},
        "BRUKARDIALOG__SERVER: expected BRUKARDIALOG__SECTION__KEY",
    ),
    (
        "env empty path",
        None,
        {"BRUKARDIALOG__PRIVACY__PSEUDONYM_KEY_FILE": " "},
        "privacy.pseudonym_key_file must not be empty",
    ),
    (
        "twilio token",
        None,
        {
            "BRUKARDIALOG__TWILIO__ACCOUNT_SID": "AC1",
            "BRUKARDIALOG__TWILIO__FROM_NUMBER": "+46701234567",
        },
        "twilio.auth_token is required when twilio.account_sid is set; "
        "set BRUKARDIALOG__TWILIO__AUTH_TOKEN",
    ),
    (
        "twilio sender",
        None,
        {"BRUKARDIALOG__TWILIO__ACCOUNT_SID": "AC1", "BRUKARDIALOG__TWILIO__AUTH_TOKEN": "t"},
        "twilio.from_number or twilio.messaging_service_sid is required",
    ),
    (
        "twilio sid",
        None,
        {"BRUKARDIALOG__TWILIO__AUTH_TOKEN": "t"},
        "twilio.account_sid is required when other twilio keys are set",
    ),
    (
        "twilio mps",
        None,
        {**TWILIO_OK, "BRUKARDIALOG__TWILIO__MPS": "0"},
        "twilio.mps must be greater than 0, got 0.0",
    ),
    (
        "telegram secret",
        None,
        {"BRUKARDIALOG__TELEGRAM__BOT_TOKEN": "1:a"},
        "telegram.webhook_secret is required when telegram.bot_token is set; "
        "set BRUKARDIALOG__TELEGRAM__WEBHOOK_SECRET",
    ),
    (
        "telegram secret chars",
        None,
        {**TELEGRAM_OK, "BRUKARDIALOG__TELEGRAM__WEBHOOK_SECRET": "a b"},
        "telegram.webhook_secret may only use",
    ),
    (
        "telegram url",
        None,
        {"BRUKARDIALOG__TELEGRAM__API_BASE_URL": "api.telegram.org"},
        "telegram.api_base_url must be an http:// or https:// URL",
    ),
    (
        "timezone",
        "[schedule]\ntimezone = 'Mars/Olympus'\n",
        {},
        "schedule.timezone 'Mars/Olympus' is not a known time zone",
    ),
    (
        "timezone path",
        "[schedule]\ntimezone = '../etc/passwd'\n",
        {},
        "schedule.timezone '../etc/passwd' is not a known time zone",
    ),
    ("quiet hours", "[schedule]\nquiet_hours = '20-25'\n", {}, "schedule.quiet_hours: '20-25'"),
    (
        "quiet hours text",
        "[schedule]\nquiet_hours = 'evenings'\n",
        {},
        "schedule.quiet_hours: 'evenings' is not a time window",
    ),
    (
        "poll interval",
        "[schedule]\npoll_interval = 0\n",
        {},
        "schedule.poll_interval must be greater than 0",
    ),
    ("port low", "[server]\nport = 0\n", {}, "server.port must be between 1 and 65535, got 0"),
    (
        "port high",
        None,
        {"BRUKARDIALOG__SERVER__PORT": "70000"},
        "server.port must be between 1 and 65535, got 70000",
    ),
    ("empty host", "[server]\nhost = ' '\n", {}, "server.host must not be empty"),
    (
        "public url",
        "[server]\npublic_url = 'ftp://x'\n",
        {},
        "server.public_url must be an http:// or https:// URL, got 'ftp://x'",
    ),
    (
        "group size",
        "[privacy]\nmin_group_size = 1\n",
        {},
        "privacy.min_group_size must be at least 2, got 1",
    ),
    (
        "short key",
        None,
        {"BRUKARDIALOG__PRIVACY__PSEUDONYM_KEY": "short"},
        "privacy.pseudonym_key must be at least 16 characters",
    ),
    (
        "short token",
        "[admin]\napi_tokens = ['0123456789abcdef', 'x']\n",
        {},
        "admin.api_tokens[1] must be at least 16 characters",
    ),
    ("database url", "[database]\nurl = 'not a url'\n", {}, "database.url is not a database URL"),
    ("empty database url", "[database]\nurl = ''\n", {}, "database.url must not be empty"),
    (
        "survey path",
        "[surveys]\npaths = ['/no/such/surveys']\n",
        {},
        "surveys.paths: '/no/such/surveys' does not exist",
    ),
    (
        "dispatcher",
        "[dispatcher]\nsms_concurrency = 0\nlease_seconds = -1\n",
        {},
        "dispatcher.lease_seconds must be greater than 0, got -1",
    ),
]


@pytest.mark.parametrize(
    ("text", "environ", "message"), [pytest.param(*case[1:], id=case[0]) for case in ERRORS]
)
def test_errors(tmp_path: Path, text: str | None, environ: dict[str, str], message: str) -> None:
    path = write(tmp_path, text) if text is not None else None
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ)
    assert message in str(caught.value)


def test_all_problems_are_reported_together(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nport = 0\n[privacy]\nmin_group_size = 1\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {"BRUKARDIALOG__TELEGRAM__BOT_TOKEN": "1:a"})
    message = str(caught.value)
    assert message.startswith("invalid configuration:")
    for key in ("server.port", "privacy.min_group_size", "telegram.webhook_secret"):
        assert key in message


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: tmp / "missing.toml", "does not exist"),
        (lambda tmp: tmp, "is a directory"),
    ],
)
def test_unreadable_file(tmp_path: Path, make: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(make(tmp_path), {})


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes("[server]\nhost = 'Malmö'\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_settings(path, {})


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nport = 'abc'\n")
    with pytest.raises(ConfigError, match=re.escape(f"{path}: server.port must be an integer")):
        load_settings(path, {})


def test_redacted_hides_secrets() -> None:
    secrets = {
        "BRUKARDIALOG__TWILIO__AUTH_TOKEN": "twilio-auth-token-value",
        "BRUKARDIALOG__TELEGRAM__BOT_TOKEN": "123456:ABCdef",
        "BRUKARDIALOG__TELEGRAM__WEBHOOK_SECRET": "webhook-secret_1",
        "BRUKARDIALOG__PRIVACY__PSEUDONYM_KEY": "pseudonym-key-0123456789",
        "BRUKARDIALOG__PRIVACY__ADDRESS_KEY": "ab" * 32,
        "BRUKARDIALOG__ADMIN__API_TOKENS": "admin-token-0123456789,admin-token-9876543210",
        "BRUKARDIALOG__DATABASE__URL": "postgresql+asyncpg://bd:db-password-value@db/bd",
    }
    environ = {**TWILIO_OK, **secrets}
    redacted = load_settings(None, environ).redacted()
    dumped = json.dumps(redacted)
    for secret in (
        "twilio-auth-token-value",
        "ABCdef",
        "webhook-secret_1",
        "pseudonym-key-0123456789",
        "admin-token-0123456789",
        "admin-token-9876543210",
        "db-password-value",
    ):
        assert secret not in dumped
    assert redacted["twilio"]["auth_token"] == "***"
    assert redacted["twilio"]["account_sid"] == TWILIO_OK["BRUKARDIALOG__TWILIO__ACCOUNT_SID"]
    assert redacted["telegram"]["webhook_secret"] == "***"
    assert redacted["privacy"]["pseudonym_key"] == "***"
    assert redacted["admin"]["api_tokens"] == ["***", "***"]
    assert redacted["database"]["url"] == "postgresql+asyncpg://bd:***@db/bd"
    assert redacted["server"]["port"] == 8080


def test_redacted_shows_unset_secrets_as_empty() -> None:
    redacted = Settings().redacted()
    assert redacted["twilio"]["auth_token"] == ""
    assert redacted["privacy"]["pseudonym_key_file"] == "var/pseudonym.key"
    assert redacted["surveys"]["paths"] == [str(SHIPPED_SURVEYS)]
    assert set(redacted) == {f.name for f in fields(Settings)}


@pytest.mark.parametrize(
    ("cli", "environ", "expected"),
    [
        (None, {}, None),
        ("a.toml", {"BRUKARDIALOG_CONFIG": "b.toml"}, Path("a.toml")),
        (None, {"BRUKARDIALOG_CONFIG": "b.toml"}, Path("b.toml")),
        (None, {"BRUKARDIALOG_CONFIG": " "}, None),
    ],
)
def test_resolve_config_path(
    cli: str | None, environ: dict[str, str], expected: Path | None
) -> None:
    assert resolve_config_path(cli, environ) == expected
