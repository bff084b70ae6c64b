"""Service settings: a TOML file, then `BRUKARDIALOG__SECTION__KEY` environment overrides.

Why one module: every setting, its default and its check are in one file, so an operator's key is
found in one place and every `ConfigError` is worded the same way.

Every problem becomes a `ConfigError` whose message names the key (and the environment variable,
when that is where the value came from), so an operator never sees a traceback.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

import flows
from bot.timewindows import DailyWindow
from flows.durations import parse_duration

ENV_PREFIX = "BRUKARDIALOG__"
CONFIG_ENV = "BRUKARDIALOG_CONFIG"
SHIPPED_SURVEYS = Path(flows.__file__).parent / "surveys"
SHIPPED_FOLLOWUPS = Path(flows.__file__).parent / "followups.toml"
"""The example follow-up rules, used only when `followups.paths` is empty."""

_SECRET = {"secret": "value"}
_SECRET_URL = {"secret": "url"}
"""A URL whose password is secret."""
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}
# Telegram's own rule for setWebhook's secret_token.
_TELEGRAM_SECRET_RE = re.compile(r"[A-Za-z0-9_-]{1,256}")
_MIN_SECRET_LENGTH = 16
DEFAULT_ORGANISATION = "Exempelkommun"
DEFAULT_RESULTS_URL = "exempelkommun.se"
MAX_ORGANISATION_LENGTH = 60
_TELEGRAM_USERNAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]{4,31}")


class ConfigError(Exception):
    """The configuration cannot be used; the message is written for the operator."""


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """The HTTP listener and the public URL providers call."""

    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = ""
    """Defaults to http://host:port; set it behind a proxy, since signatures cover this URL."""

    def __post_init__(self) -> None:
        url = self.public_url.rstrip("/") or self.listen_url
        object.__setattr__(self, "public_url", url)

    @property
    def listen_url(self) -> str:
        """http://host:port, where this process listens."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def public_url_set(self) -> bool:
        """Whether public_url names an outside address (unset, links point at this machine)."""
        return self.public_url != self.listen_url


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    """Where conversations live; relative SQLite paths are relative to the working directory."""

    url: str = field(default="sqlite+aiosqlite:///var/brukardialog.db", metadata=_SECRET_URL)


@dataclass(frozen=True, slots=True)
class SurveySettings:
    """Survey definition files or folders; the shipped surveys when none are given."""

    paths: tuple[Path, ...] = (SHIPPED_SURVEYS,)

    @property
    def resolved_paths(self) -> tuple[Path, ...]:
        """The paths to load: the configured ones, or the shipped surveys when there are none."""
        return self.paths or (SHIPPED_SURVEYS,)


@dataclass(frozen=True, slots=True)
class FollowupSettings:
    """Follow-up rules files or folders of them; the shipped example when none are given."""

    paths: tuple[Path, ...] = ()

    @property
    def resolved_paths(self) -> tuple[Path, ...]:
        """The paths to load: the configured ones, or the shipped example when there are none."""
        return self.paths or (SHIPPED_FOLLOWUPS,)


@dataclass(frozen=True, slots=True)
class RetentionSettings:
    """How many days each kind of personal data is kept; 0 keeps it for good."""

    message_text_days: int = 90
    """Message texts (and button payloads) are blanked; the row stays, for dedupe and counts."""
    inbound_message_days: int = 365
    outbound_message_days: int = 365
    inactive_contact_days: int = 3 * 365
    """A contact with no import, invitation, conversation, message or case event for this long
    is erased with everything about them (released anonymous answers stay)."""
    case_event_days: int = 2 * 365
    """Case events (and the follow-ups they planned) after their last change."""
    audit_log_days: int = 5 * 365
    batch_size: int = 500
    """Rows per transaction, so the service keeps serving while retention runs."""
    run_at: str = "03:30"
    """Local time (schedule.timezone) of the daily run."""


@dataclass(frozen=True, slots=True)
class TwilioConfig:
    """Twilio SMS; enabled when account_sid is set."""

    account_sid: str = ""
    auth_token: str = field(default="", metadata=_SECRET)
    from_number: str = ""
    messaging_service_sid: str = ""
    api_base_url: str = "https://api.twilio.com"
    mps: float = 1.0
    """Messages per second the account may send."""
    timeout: float = 15.0
    """Seconds to wait for Twilio's answer to one request."""

    @property
    def enabled(self) -> bool:
        """Whether the SMS channel is configured."""
        return bool(self.account_sid)


@dataclass(frozen=True, slots=True)
class TelegramConfig:
    """Telegram bot; enabled when bot_token is set."""

    bot_token: str = field(default="", metadata=_SECRET)
    webhook_secret: str = field(default="", metadata=_SECRET)
    api_base_url: str = "https://api.telegram.org"
    bot_username: str = ""
    """The bot's @username, for t.me links; asked from Telegram (getMe) when empty."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "bot_username", self.bot_username.strip().removeprefix("@"))

    @property
    def enabled(self) -> bool:
        """Whether the Telegram channel is configured."""
        return bool(self.bot_token)


@dataclass(frozen=True, slots=True)
class PrivacySettings:
    """Pseudonym key and the smallest group a report may show."""

    pseudonym_key: str = field(default="", metadata=_SECRET)
    pseudonym_key_file: Path = Path("var/pseudonym.key")
    """Read (or created on first run) when pseudonym_key is empty."""
    address_key: str = field(default="", metadata=_SECRET)
    """AES-256 key (64 hex digits) sealing phone numbers, chat ids and chat tokens at rest."""
    address_key_file: Path = Path("var/address.key")
    """Read (or created on first run) when address_key is empty."""
    min_group_size: int = 5
    keyword_starts_per_hour: int = 3
    """Surveys one sender may start by keyword in an hour."""
    suppression: str = "groups"
    """"groups": a group of min_group_size or more shows every figure; "cells": no count below
    min_group_size anywhere (see bot/results/suppress.py)."""


@dataclass(frozen=True, slots=True)
class ScheduleSettings:
    """Local time zone, quiet hours and how often due tasks are polled."""

    timezone: str = "Europe/Stockholm"
    quiet_hours: str = "20:00-09:00"
    poll_interval: float = 5.0

    @property
    def tz(self) -> ZoneInfo:
        """The time zone as a ZoneInfo."""
        return ZoneInfo(self.timezone)

    @property
    def quiet(self) -> DailyWindow | None:
        """The quiet hours as a window, or None when there are none."""
        return DailyWindow.parse(self.quiet_hours) if self.quiet_hours.strip() else None


@dataclass(frozen=True, slots=True)
class AdminSettings:
    """Bearer tokens for the staff API."""

    api_tokens: tuple[str, ...] = field(default=(), metadata=_SECRET)


@dataclass(frozen=True, slots=True)
class DispatcherSettings:
    """The outbox sender: polling, leases, retries, rates and concurrency."""

    poll_interval: float = 1.0
    lease_seconds: int = 10
    """How long a sender's hold on a channel and on its claimed messages lasts unrenewed: a
    crashed sender's work is taken over after about this long."""
    retry_horizon: str = "24h"
    """How long transient failures are retried, from a message's first failed attempt."""
    backoff_base: float = 2.0
    backoff_max: float = 60.0
    sms_concurrency: int = 32
    telegram_rate: float = 30.0
    telegram_per_chat_rate: float = 1.0
    telegram_concurrency: int = 32
    send_process: bool = True
    """Make the providers' HTTP requests (SMS, Telegram) in a child process of the service, so
    the service's event loop spends its time on turns (bot/outbox/sendproc.py)."""

    @property
    def retry_horizon_seconds(self) -> int:
        """The retry horizon in seconds."""
        return parse_duration(self.retry_horizon)


@dataclass(frozen=True, slots=True)
class OrganisationSettings:
    """Who runs the surveys: filled into survey texts as {organisation} and {results_url}."""

    name: str = DEFAULT_ORGANISATION
    """As people should see it in messages, e.g. "Malmö stad"; it never says "social services"."""
    results_url: str = DEFAULT_RESULTS_URL
    """Where results are published, as written in messages, e.g. "malmo.se/brukarundersokning"."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", " ".join(self.name.split()))
        object.__setattr__(self, "results_url", self.results_url.strip())

    @property
    def configured(self) -> bool:
        """Whether both were set (the defaults are only an example)."""
        return (self.name, self.results_url) != (DEFAULT_ORGANISATION, DEFAULT_RESULTS_URL)

    def placeholders(self) -> dict[str, str]:
        """The survey text placeholders and their values."""
        return {"organisation": self.name, "results_url": self.results_url}


@dataclass(frozen=True, slots=True)
class WebSettings:
    """Limits on the public web chat."""

    start_limit: int = 10
    """New web chat conversations one client address may start per start_window."""
    start_window: float = 600.0
    """Seconds of the sliding window start_limit counts over."""
    trust_forwarded_for: bool = False
    """Behind a reverse proxy: the client address is the last X-Forwarded-For entry."""


@dataclass(frozen=True, slots=True)
class StaffSettings:
    """The staff web app's sign-in sessions."""

    idle_minutes: int = 30
    """A session unused this long ends (the person signs in again)."""
    lifetime_hours: int = 12
    """A session ends this long after sign-in, however busy."""


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    """Prometheus metrics at /metrics, never on the public site without a token."""

    token: str = field(default="", metadata=_SECRET)
    """Bearer token a scraper sends; when set, /metrics is served on the main listener too."""
    listen: str = ""
    """host:port of a separate listener serving only /metrics, e.g. "127.0.0.1:9102"."""

    @property
    def enabled(self) -> bool:
        """Whether /metrics is served anywhere."""
        return bool(self.token or self.listen)

    @property
    def listen_address(self) -> tuple[str, int] | None:
        """The separate listener's (host, port), or None."""
        if not self.listen:
            return None
        host, _, port = self.listen.strip().rpartition(":")
        return host.strip("[]"), int(port)


@dataclass(frozen=True, slots=True)
class LoggingSettings:
    """The log's format: "text" for people, "json" (one object a line) for log shippers."""

    format: str = "text"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the service reads from configuration."""

    server: ServerSettings = field(default_factory=ServerSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    surveys: SurveySettings = field(default_factory=SurveySettings)
    followups: FollowupSettings = field(default_factory=FollowupSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    twilio: TwilioConfig = field(default_factory=TwilioConfig)
    telegram: TelegramConfig = field(default_factory=TelegramConfig)
    privacy: PrivacySettings = field(default_factory=PrivacySettings)
    schedule: ScheduleSettings = field(default_factory=ScheduleSettings)
    admin: AdminSettings = field(default_factory=AdminSettings)
    dispatcher: DispatcherSettings = field(default_factory=DispatcherSettings)
    organisation: OrganisationSettings = field(default_factory=OrganisationSettings)
    web: WebSettings = field(default_factory=WebSettings)
    staff: StaffSettings = field(default_factory=StaffSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)

    def redacted(self) -> dict[str, dict[str, Any]]:
        """The settings as plain data for logging, secrets shown as "***" (empty ones as "")."""
        out: dict[str, dict[str, Any]] = {}
        for section in fields(self):
            value = getattr(self, section.name)
            data: dict[str, Any] = {}
            for f in fields(value):
                item = getattr(value, f.name)
                secret = f.metadata.get("secret")
                if secret == "url":
                    data[f.name] = _redact_url(item)
                elif secret:
                    data[f.name] = ["***" for _ in item] if isinstance(item, tuple) else _mask(item)
                elif isinstance(item, tuple):
                    data[f.name] = [str(v) for v in item]
                elif isinstance(item, Path):
                    data[f.name] = str(item)
                else:
                    data[f.name] = item
            out[section.name] = data
        return out


def _mask(value: str) -> str:
    return "***" if value else ""


def _redact_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "***"


def _field_types(cls: type[Any]) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in fields(cls)}


_SECTIONS: dict[str, type[Any]] = _field_types(Settings)
_KEYS: dict[str, dict[str, Any]] = {name: _field_types(cls) for name, cls in _SECTIONS.items()}


def resolve_config_path(cli_value: str | Path | None, environ: Mapping[str, str]) -> Path | None:
    """The config file from `--config`, else from BRUKARDIALOG_CONFIG, else None (defaults)."""
    if cli_value:
        return Path(cli_value)
    from_env = environ.get(CONFIG_ENV, "").strip()
    return Path(from_env) if from_env else None


def load_settings(path: Path | None, environ: Mapping[str, str]) -> Settings:
    """Read the TOML file (None = defaults only), apply environment overrides and validate."""
    raw: dict[str, dict[str, Any]] = {name: {} for name in _SECTIONS}
    problems: list[str] = []
    if path is not None:
        _read_file(path, raw, problems)
    _apply_env(environ, raw, problems)
    if problems:
        raise ConfigError(_join(problems))
    settings = Settings(**{name: cls(**raw[name]) for name, cls in _SECTIONS.items()})
    problems.extend(_validate(settings))
    if problems:
        raise ConfigError(_join(problems))
    return settings


def _join(problems: list[str]) -> str:
    if len(problems) == 1:
        return problems[0]
    return "invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems)


def _did_you_mean(name: str, options: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _read_file(path: Path, raw: dict[str, dict[str, Any]], problems: list[str]) -> None:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        problems.append(f"config file {str(path)!r} does not exist")
        return
    except IsADirectoryError:
        problems.append(f"config file {str(path)!r} is a directory")
        return
    except UnicodeDecodeError:
        problems.append(f"{path}: not UTF-8 text")
        return
    except OSError as exc:
        problems.append(f"config file {str(path)!r} cannot be read: {exc.strerror or exc}")
        return
    except tomllib.TOMLDecodeError as exc:
        problems.append(f"{path}: invalid TOML: {exc}")
        return
    for section, table in data.items():
        if section not in _SECTIONS:
            hint = _did_you_mean(section, _SECTIONS)
            problems.append(f"{path}: unknown section [{section}]{hint}")
            continue
        if not isinstance(table, dict):
            problems.append(f"{path}: {section} must be a table ([{section}])")
            continue
        for key, value in table.items():
            name = f"{section}.{key}"
            if key not in _KEYS[section]:
                hint = _did_you_mean(key, _KEYS[section])
                problems.append(f"{path}: unknown key {name!r}{hint}")
                continue
            try:
                raw[section][key] = _from_toml(name, _KEYS[section][key], value)
            except ValueError as exc:
                problems.append(f"{path}: {exc}")


def _apply_env(
    environ: Mapping[str, str], raw: dict[str, dict[str, Any]], problems: list[str]
) -> None:
    for var in sorted(environ):
        if not var.upper().startswith(ENV_PREFIX):
            continue
        parts = var[len(ENV_PREFIX) :].lower().split("__")
        if len(parts) != 2 or not all(parts):
            problems.append(
                f"{var}: expected {ENV_PREFIX}SECTION__KEY, e.g. {ENV_PREFIX}SERVER__PORT"
            )
            continue
        section, key = parts
        if section not in _SECTIONS:
            hint = _did_you_mean(section, _SECTIONS)
            problems.append(f"{var}: unknown section {section!r}{hint}")
            continue
        if key not in _KEYS[section]:
            hint = _did_you_mean(key, _KEYS[section])
            problems.append(f"{var}: unknown key '{section}.{key}'{hint}")
            continue
        try:
            raw[section][key] = _from_env(f"{section}.{key}", _KEYS[section][key], environ[var])
        except ValueError as exc:
            problems.append(f"{var}: {exc}")


def _type_name(kind: Any) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
    if kind in names:
        return names[kind]
    if kind is Path:
        return "a path"
    return "a list of strings"


def _from_toml(name: str, kind: Any, value: object) -> object:
    wrong = ValueError(f"{name} must be {_type_name(kind)}, got {value!r}")
    if kind is str:
        if not isinstance(value, str):
            raise wrong
        return value
    if kind is Path:
        if not isinstance(value, str):
            raise wrong
        return _path(name, value)
    if kind is bool:
        if not isinstance(value, bool):
            raise wrong
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong
        return value
    if kind is float:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise wrong
        return float(value)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise wrong
    return _list(name, kind, value)


def _from_env(name: str, kind: Any, text: str) -> object:
    wrong = ValueError(f"{name} must be {_type_name(kind)}, got {text!r}")
    if kind is str:
        return text
    if kind is Path:
        return _path(name, text)
    stripped = text.strip()
    if kind is bool:
        if stripped.lower() in _TRUE:
            return True
        if stripped.lower() in _FALSE:
            return False
        raise ValueError(f"{name} must be one of true/false/1/0/yes/no, got {text!r}")
    if kind is int:
        try:
            return int(stripped)
        except ValueError:
            raise wrong from None
    if kind is float:
        try:
            number = float(stripped)
        except ValueError:
            raise wrong from None
        if not math.isfinite(number):
            raise wrong
        return number
    if stripped.startswith("["):
        try:
            items = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{name}: invalid JSON list: {exc.msg}") from None
        if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
            raise wrong
    else:
        items = [part.strip() for part in stripped.split(",") if part.strip()]
    return _list(name, kind, items)


def _path(name: str, text: str) -> Path:
    if not text.strip():
        raise ValueError(f"{name} must not be empty")
    return Path(text.strip())


def _list(name: str, kind: Any, items: list[str]) -> tuple[object, ...]:
    (item_kind, _) = typing.get_args(kind)
    if item_kind is Path:
        if name == "surveys.paths" and not items:
            return (SHIPPED_SURVEYS,)
        return tuple(Path(v) for v in items)
    return tuple(items)


def _http_url(name: str, url: str) -> list[str]:
    if not re.fullmatch(r"https?://[^/\s]+(/\S*)?", url):
        return [f"{name} must be an http:// or https:// URL, got {url!r}"]
    return []


def _positive(settings: object, section: str, *keys: str) -> list[str]:
    return [
        f"{section}.{key} must be greater than 0, got {getattr(settings, key)!r}"
        for key in keys
        if getattr(settings, key) <= 0
    ]


def _retention_problems(r: RetentionSettings) -> list[str]:
    problems = [
        f"retention.{f.name} must be 0 (keep for good) or a number of days, "
        f"got {getattr(r, f.name)}"
        for f in fields(r)
        if f.name.endswith("_days") and getattr(r, f.name) < 0
    ]
    if not 1 <= r.batch_size <= 10_000:
        problems.append(f"retention.batch_size must be from 1 to 10000, got {r.batch_size}")
    if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", r.run_at.strip()):
        problems.append(f'retention.run_at must be a local time like "03:30", got {r.run_at!r}')
    return problems


def _validate(s: Settings) -> list[str]:
    problems: list[str] = []

    if not s.server.host.strip():
        problems.append("server.host must not be empty")
    if not 1 <= s.server.port <= 65535:
        problems.append(f"server.port must be between 1 and 65535, got {s.server.port}")
    problems += _http_url("server.public_url", s.server.public_url)

    if not s.database.url.strip():
        problems.append("database.url must not be empty")
    elif _redact_url(s.database.url) == "***":
        problems.append("database.url is not a database URL (e.g. sqlite+aiosqlite:///var/bd.db)")

    problems += [
        f"surveys.paths: {str(p)!r} does not exist" for p in s.surveys.paths if not p.exists()
    ]
    problems += [
        f"followups.paths: {str(p)!r} does not exist" for p in s.followups.paths if not p.exists()
    ]
    problems += _retention_problems(s.retention)

    tw = s.twilio
    if tw.enabled:
        if not tw.auth_token:
            problems.append(
                "twilio.auth_token is required when twilio.account_sid is set; "
                "set BRUKARDIALOG__TWILIO__AUTH_TOKEN"
            )
        if not tw.from_number and not tw.messaging_service_sid:
            problems.append(
                "twilio.from_number or twilio.messaging_service_sid is required when "
                "twilio.account_sid is set"
            )
    elif tw.auth_token or tw.from_number or tw.messaging_service_sid:
        problems.append(
            "twilio.account_sid is required when other twilio keys are set; "
            "set BRUKARDIALOG__TWILIO__ACCOUNT_SID"
        )
    problems += _http_url("twilio.api_base_url", tw.api_base_url)
    problems += _positive(tw, "twilio", "mps")
    problems += _positive(tw, "twilio", "timeout")

    tg = s.telegram
    if tg.enabled and not tg.webhook_secret:
        problems.append(
            "telegram.webhook_secret is required when telegram.bot_token is set; "
            "set BRUKARDIALOG__TELEGRAM__WEBHOOK_SECRET"
        )
    if tg.webhook_secret and not _TELEGRAM_SECRET_RE.fullmatch(tg.webhook_secret):
        problems.append(
            "telegram.webhook_secret may only use A-Z, a-z, 0-9, _ and - (1-256 characters)"
        )
    problems += _http_url("telegram.api_base_url", tg.api_base_url)
    if tg.bot_username and not _TELEGRAM_USERNAME_RE.fullmatch(tg.bot_username):
        problems.append(
            f"telegram.bot_username {tg.bot_username!r} is not a Telegram username "
            "(5-32 characters a-z, 0-9 and _, e.g. malmo_enkat_bot)"
        )

    pv = s.privacy
    if pv.pseudonym_key and len(pv.pseudonym_key) < _MIN_SECRET_LENGTH:
        problems.append(f"privacy.pseudonym_key must be at least {_MIN_SECRET_LENGTH} characters")
    if not pv.pseudonym_key and not str(pv.pseudonym_key_file).strip():
        problems.append(
            "privacy.pseudonym_key_file is required when privacy.pseudonym_key is empty"
        )
    if pv.address_key and not re.fullmatch(r"[0-9a-fA-F]{64}", pv.address_key.strip()):
        problems.append("privacy.address_key must be 64 hexadecimal digits (a 32-byte key)")
    if not pv.address_key and not str(pv.address_key_file).strip():
        problems.append("privacy.address_key_file is required when privacy.address_key is empty")
    if pv.min_group_size < 2:
        problems.append(f"privacy.min_group_size must be at least 2, got {pv.min_group_size}")
    if pv.keyword_starts_per_hour < 1:
        problems.append(
            f"privacy.keyword_starts_per_hour must be at least 1, got {pv.keyword_starts_per_hour}"
        )
    if pv.suppression not in ("groups", "cells"):
        problems.append(f'privacy.suppression must be "groups" or "cells", got {pv.suppression!r}')

    sc = s.schedule
    try:
        ZoneInfo(sc.timezone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        problems.append(f"schedule.timezone {sc.timezone!r} is not a known time zone")
    try:
        _ = sc.quiet
    except ValueError as exc:
        problems.append(f"schedule.quiet_hours: {exc}")
    problems += _positive(sc, "schedule", "poll_interval")

    for i, token in enumerate(s.admin.api_tokens):
        if len(token) < _MIN_SECRET_LENGTH or any(c.isspace() for c in token):
            problems.append(
                f"admin.api_tokens[{i}] must be at least {_MIN_SECRET_LENGTH} characters "
                "without spaces"
            )

    org = s.organisation
    if not org.name:
        problems.append('organisation.name must not be empty (e.g. "Malmö stad")')
    elif len(org.name) > MAX_ORGANISATION_LENGTH:
        problems.append(f"organisation.name is longer than {MAX_ORGANISATION_LENGTH} characters")
    if not org.results_url or any(c.isspace() for c in org.results_url):
        problems.append(
            f"organisation.results_url must be an address without spaces, got {org.results_url!r}"
        )

    dp = s.dispatcher
    problems += _positive(
        dp,
        "dispatcher",
        "poll_interval",
        "lease_seconds",
        "backoff_base",
        "backoff_max",
        "sms_concurrency",
        "telegram_rate",
        "telegram_per_chat_rate",
        "telegram_concurrency",
    )
    problems += _positive(s.web, "web", "start_limit", "start_window")
    problems += _positive(s.staff, "staff", "idle_minutes", "lifetime_hours")
    problems += _validate_ops(s.metrics, s.logging)
    try:
        parse_duration(dp.retry_horizon)
    except ValueError as exc:
        problems.append(f"dispatcher.retry_horizon: {exc}")
    if dp.backoff_max < dp.backoff_base:
        problems.append(
            f"dispatcher.backoff_max ({dp.backoff_max:g}) must not be less than "
            f"dispatcher.backoff_base ({dp.backoff_base:g})"
        )
    for key, most in (("sms_concurrency", 100), ("telegram_concurrency", 32)):
        if getattr(dp, key) > most:
            problems.append(
                f"dispatcher.{key} may be at most {most} (the HTTP connection pool), "
                f"got {getattr(dp, key)}"
            )
    return problems


_LISTEN_RE = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):([0-9]{1,5})")


def _validate_ops(metrics: MetricsSettings, logging: LoggingSettings) -> list[str]:
    problems: list[str] = []
    token = metrics.token
    if token and (len(token) < _MIN_SECRET_LENGTH or any(c.isspace() for c in token)):
        problems.append(
            f"metrics.token must be at least {_MIN_SECRET_LENGTH} characters without spaces"
        )
    if metrics.listen:
        match = _LISTEN_RE.fullmatch(metrics.listen.strip())
        if match is None or not 1 <= int(match[2]) <= 65535:
            problems.append(
                f'metrics.listen must be host:port, e.g. "127.0.0.1:9102", got {metrics.listen!r}'
            )
    if logging.format not in ("text", "json"):
        problems.append(f'logging.format must be "text" or "json", got {logging.format!r}')
    return problems
