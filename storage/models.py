"""SQLAlchemy models. All times are stored in UTC; see `UTCDateTime`.

Why one module: every table is here, so the schema reads in one place and `Base.metadata` is
whole wherever a model is imported.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from storage.sealing import Sealed

BigId = BigInteger().with_variant(Integer(), "sqlite")
"""SQLite only autoincrements INTEGER PRIMARY KEY."""

JsonType = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on SQLite (naive text) and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """An aware datetime as UTC (naive on SQLite); refuses a naive one."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """The stored value as an aware UTC datetime."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    # On SQLite the two steps above and SQLAlchemy's text conversion are done at once: the same
    # text ("2026-03-02 09:30:00.000000", naive UTC) in and out, at a fraction of the cost; every
    # turn binds about ten of them (tests/storage/test_models.py holds the two ways equal).

    def bind_processor(self, dialect: Dialect) -> Any:
        """SQLite: an aware datetime straight to SQLAlchemy's stored text; else the usual way."""
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        return _sqlite_text

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        """SQLite: the stored text straight to an aware UTC datetime; else the usual way."""
        usual = super().result_processor(dialect, coltype)
        if dialect.name != "sqlite":
            return usual

        def process(value: Any) -> Any:
            if value is None:
                return None
            try:
                parsed = datetime.fromisoformat(value)
            except (TypeError, ValueError):
                return usual(value) if usual is not None else value
            if parsed.tzinfo is None:
                return parsed.replace(tzinfo=UTC)
            return parsed.astimezone(UTC)

        return process


_last_bound: tuple[datetime | None, str | None] = (None, None)
"""The last datetime bound on SQLite and its text: a turn binds the same `now` to most of its
columns. One tuple, replaced whole, so threads never see half of one."""


def _sqlite_text(value: datetime | None) -> str | None:
    """An aware datetime as SQLAlchemy's SQLite text, naive UTC ("2026-03-02 09:30:00.000000")."""
    global _last_bound
    if value is None:
        return None
    seen, text = _last_bound
    if value is seen:
        return text
    stamp = value
    if stamp.tzinfo is not UTC:
        if stamp.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        stamp = stamp.astimezone(UTC)
    text = stamp.isoformat(" ", "microseconds")[:-6]  # without "+00:00"
    _last_bound = (value, text)
    return text


def utcnow() -> datetime:
    """The current time, aware UTC (column defaults)."""
    return datetime.now(UTC)


NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Every constraint has a known name, so later migrations can alter it (SQLite batch mode too)."""


class Base(DeclarativeBase):
    """The declarative base: constraint naming convention, UTC datetimes and JSON columns."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime,
        dict[str, Any]: JsonType,
    }


class Contact(Base):
    """A person the service serves. Attributes feed audiences and results breakdowns."""

    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    external_ref: Mapped[str | None] = mapped_column(String(100), unique=True)
    language: Mapped[str | None] = mapped_column(String(20))
    gender: Mapped[str | None] = mapped_column(String(20))
    birth_year: Mapped[int | None] = mapped_column(Integer)
    age_group: Mapped[str | None] = mapped_column(String(20))
    target_group: Mapped[str | None] = mapped_column(String(60))
    unit: Mapped[str | None] = mapped_column(String(100))
    contact_since: Mapped[date | None] = mapped_column(Date)
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    opted_out_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (
        Index("ix_contacts_target_group", "target_group"),
        Index("ix_contacts_unit", "unit"),
    )


class ContactAddress(Base):
    """How a contact is reached on one channel.

    `address` is what the channel sends to (E.164 phone, Telegram chat id, web chat token),
    sealed at rest (storage.sealing); `address_key` is the keyed HMAC of it (see bot.privacy) and
    is what inbound messages are matched on."""

    __tablename__ = "contact_addresses"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(20))
    address: Mapped[str] = mapped_column(Sealed())
    address_key: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        UniqueConstraint("channel", "address_key", name="uq_contact_addresses_channel_key"),
        Index("ix_contact_addresses_contact", "contact_id"),
    )


class SurveyVersion(Base):
    """Every loaded version of a survey file is kept, so old answers keep their definition."""

    __tablename__ = "survey_versions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    survey_id: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)
    checksum: Mapped[str] = mapped_column(String(64))
    definition: Mapped[dict[str, Any]]
    """The parsed file (its TOML as JSON)."""
    source: Mapped[str] = mapped_column(Text, default="")
    loaded_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        UniqueConstraint("survey_id", "version", "checksum", name="uq_survey_versions"),
    )


class Respondent(Base):
    """One person's answers to one survey run.

    Anonymous respondents are written only when their answers are released (storage.executor):
    in shuffled batches of at least k people, under random ids, dated to the release day, with
    only the copied breakdown attributes. No rowid on SQLite, so row order tells nothing."""

    __tablename__ = "respondents"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    survey_id: Mapped[str] = mapped_column(String(100))
    survey_version_id: Mapped[int] = mapped_column(ForeignKey("survey_versions.id"))
    campaign_id: Mapped[int | None] = mapped_column(BigId)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    """Set for non-anonymous surveys only."""
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """Copied at start: gender, target_group, age_group, unit, contact_length, language."""
    channel: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default="active")
    started_on: Mapped[date] = mapped_column(Date)
    """Day precision only: the start day, or for anonymous respondents the day of release."""
    completed: Mapped[bool] = mapped_column(Boolean, default=False)
    origin: Mapped[str] = mapped_column(String(20), default="campaign")
    """campaign | followup | public: public answers are kept apart and labelled in results."""

    __table_args__ = (
        Index("ix_respondents_survey", "survey_id"),
        Index("ix_respondents_campaign", "campaign_id"),
        Index("ix_respondents_contact", "contact_id"),
        {"sqlite_with_rowid": False},
    )


class Answer(Base):
    """One answer; keyed by respondent and question, no sequence (see Respondent)."""

    __tablename__ = "answers"

    respondent_id: Mapped[str] = mapped_column(
        ForeignKey("respondents.id", ondelete="CASCADE"), primary_key=True
    )
    question_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[Any] = mapped_column(JsonType, nullable=True)
    skipped: Mapped[bool] = mapped_column(Boolean, default=False)
    answered_on: Mapped[date] = mapped_column(Date)

    __table_args__ = ({"sqlite_with_rowid": False},)


class Conversation(Base):
    """A live (or finished) dialogue between a contact and a survey on one channel."""

    __tablename__ = "conversations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    respondent_id: Mapped[str | None] = mapped_column(String(36))
    """Surveys that are not anonymous only: their answers are written as they come."""
    survey_version_id: Mapped[int] = mapped_column(ForeignKey("survey_versions.id"))
    survey_id: Mapped[str] = mapped_column(String(100))
    campaign_id: Mapped[int | None] = mapped_column(BigId)
    followup_id: Mapped[int | None] = mapped_column(BigId)
    origin: Mapped[str] = mapped_column(String(20), default="public")
    """campaign | followup | public (a keyword or the web chat index)."""
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """What an anonymous respondent will keep of the contact, copied at start."""
    pending_release: Mapped[bool] = mapped_column(Boolean, default=False)
    """Finished anonymous: its answers (in `state`) wait to be released; then the row goes."""
    channel: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default="active")
    state: Mapped[dict[str, Any]]
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_conversations_contact_status", "contact_id", "status"),
        Index("ix_conversations_campaign", "campaign_id"),
        Index("ix_conversations_status_expires", "status", "expires_at"),
        Index("ix_conversations_pending_release", "pending_release", "survey_id"),
    )


class Message(Base):
    """Every message in and out. Outgoing rows are the transactional outbox."""

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    direction: Mapped[str] = mapped_column(String(3))
    """"in" or "out"."""
    channel: Mapped[str] = mapped_column(String(20))
    provider_id: Mapped[str | None] = mapped_column(String(100))
    """Provider's message id: Twilio MessageSid, Telegram update_id, web chat client id."""
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    conversation_id: Mapped[str | None] = mapped_column(String(36))
    address: Mapped[str | None] = mapped_column(Sealed())
    """Recipient of an outgoing message, sealed at rest; empty for incoming."""
    address_key: Mapped[str | None] = mapped_column(String(64))
    """Keyed HMAC of the sender (incoming) or recipient (outgoing), see bot.privacy."""
    body: Mapped[str | None] = mapped_column(Text)
    """Cleared when an anonymous conversation finishes."""
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """Buttons and channel extras for outgoing; button payload for incoming."""
    kind: Mapped[str] = mapped_column(String(20), default="reply")
    """reply | invitation | reminder | feedback | notice."""
    campaign_id: Mapped[int | None] = mapped_column(BigId)
    status: Mapped[str] = mapped_column(String(20), default="queued")
    """in: received. out: queued, sending, sent, delivered, read, undelivered, failed, cancelled."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[datetime] = mapped_column(default=utcnow)
    lease_until: Mapped[datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    error: Mapped[str | None] = mapped_column(Text)
    segments: Mapped[int | None] = mapped_column(Integer)
    encoding: Mapped[str | None] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    status_at: Mapped[datetime | None]
    scrub_after: Mapped[datetime | None]
    """Set on outgoing rows still in flight when an anonymous conversation finished: body and
    payload are cleared once the row is no longer queued/sending and this time has passed."""

    __table_args__ = (
        UniqueConstraint("channel", "direction", "provider_id", name="uq_messages_provider_id"),
        Index("ix_messages_outbox", "direction", "channel", "status", "not_before"),
        Index("ix_messages_conversation", "conversation_id"),
        Index("ix_messages_contact", "contact_id"),
        Index("ix_messages_channel_key", "channel", "address_key", "id"),
        # Only the few rows waiting to be scrubbed: most rows never have one, and every message
        # written paid for an entry (migration 0009).
        Index(
            "ix_messages_scrub_after",
            "scrub_after",
            sqlite_where=text("scrub_after IS NOT NULL"),
            postgresql_where=text("scrub_after IS NOT NULL"),
        ),
        # Ids never come back after rows are deleted: the web chat polls "after id N".
        {"sqlite_autoincrement": True},
    )


class DueTask(Base):
    """Every timer: reminders, follow-ups, expiries, campaign start and close.

    `key` is unique, so scheduling the same timer twice is a no-op and a task runs once."""

    __tablename__ = "due_tasks"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    key: Mapped[str] = mapped_column(String(200), unique=True)
    due_at: Mapped[datetime]
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    """pending, running, done, failed, cancelled."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_until: Mapped[datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    done_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_due_tasks_status_due", "status", "due_at"),)


class AuditEntry(Base):
    """One staff action kept for the audit log: when, who, what and on which target."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(60))
    target: Mapped[str] = mapped_column(String(200), default="")
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Lease(Base):
    """A named lease held by one process at a time, e.g. `outbox:sms`: the one process sending on
    that channel, so the provider's rate is kept across several service processes."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    holder: Mapped[str] = mapped_column(String(100))
    until: Mapped[datetime]


class Campaign(Base):
    """Staff sending one survey to an audience over a time window, with reminders."""

    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    survey_id: Mapped[str] = mapped_column(String(100))
    survey_version_id: Mapped[int] = mapped_column(ForeignKey("survey_versions.id"))
    audience: Mapped[str] = mapped_column(Text)
    """An expression over contact attributes (flows.expr), e.g. "target_group == 'missbruk'"."""
    channels: Mapped[list[str]] = mapped_column(JsonType)
    """Channels to invite on, in order of preference: sms, telegram, webchat."""
    status: Mapped[str] = mapped_column(String(20), default="scheduled")
    """scheduled, running, paused, closed."""
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    reminders: Mapped[list[int]] = mapped_column(JsonType, default=list)
    """Seconds after the invitation at which non-finishers are reminded."""
    participation: Mapped[str] = mapped_column(String(20))
    """The participation-ladder rung (from the survey unless overridden)."""
    audience_size: Mapped[int | None] = mapped_column(Integer)
    feedback_delay: Mapped[int] = mapped_column(Integer, default=3 * 24 * 3600)
    """Seconds after closing before results are sent back ("you said, we did")."""
    feedback_to: Mapped[str] = mapped_column(String(20), default="respondents")
    """respondents | invited | none."""
    feedback_text: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """Staff's "what we will do", per language."""
    plan_refs: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """The goal in next year's plan this feedback is tied to, per language."""
    feedback_without_text: Mapped[list[str]] = mapped_column(JsonType, default=list)
    """Languages staff chose to send the feedback in without a "what we will do" text."""
    feedback_status: Mapped[str] = mapped_column(String(20), default="pending")
    """pending, held, sending, sent, none."""
    created_by: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_campaigns_survey", "survey_id"),)


class Invitation(Base):
    """One person invited to one campaign: invited once, on the first channel that reaches them.

    Holds whether they finished (for reminders and response rates) but never when or what."""

    __tablename__ = "invitations"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    channel: Mapped[str | None] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default="pending")
    """pending, invited, started, completed, opted_out, unreachable, closed."""
    conversation_id: Mapped[str | None] = mapped_column(String(36))
    reminders_sent: Mapped[int] = mapped_column(Integer, default=0)
    invited_at: Mapped[datetime | None]
    feedback_sent: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (
        UniqueConstraint("campaign_id", "contact_id", name="uq_invitations_campaign_contact"),
        Index("ix_invitations_campaign_status", "campaign_id", "status"),
        Index("ix_invitations_contact", "contact_id"),
    )


class CaseEvent(Base):
    """An event reported by a case system, e.g. `insats_ended`: the trigger for follow-ups."""

    __tablename__ = "case_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(100), unique=True)
    """The case system's id; reporting the same event again updates it."""
    type: Mapped[str] = mapped_column(String(60))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    occurred_at: Mapped[datetime]
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    cancelled: Mapped[bool] = mapped_column(Boolean, default=False)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_case_events_contact", "contact_id"),)


class FollowupRule(Base):
    """Turns a case event into a follow-up survey some time later, inside a delivery window."""

    __tablename__ = "followup_rules"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    event_type: Mapped[str] = mapped_column(String(60))
    filter: Mapped[str] = mapped_column(Text, default="")
    """An expression over the event's and the contact's attributes; empty matches all."""
    survey_id: Mapped[str] = mapped_column(String(100))
    delay: Mapped[int] = mapped_column(Integer)
    """Seconds after the event."""
    window: Mapped[str] = mapped_column(String(20), default="")
    """Local delivery window, e.g. "10:00-18:00"; empty: any time outside quiet hours."""
    fatigue_days: Mapped[int] = mapped_column(Integer, default=0)
    """At most one survey per person per this many days."""
    expires_after: Mapped[int] = mapped_column(Integer, default=7 * 24 * 3600)
    """A follow-up not sent within this many seconds after it came due is dropped."""
    channels: Mapped[list[str]] = mapped_column(JsonType, default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    source: Mapped[str] = mapped_column(String(20), default="api")
    """file (flows/followups.toml) or api."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Followup(Base):
    """One follow-up survey planned for one event by one rule."""

    __tablename__ = "followups"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("followup_rules.id", ondelete="CASCADE"))
    event_id: Mapped[int] = mapped_column(ForeignKey("case_events.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    due_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(20), default="pending")
    """pending, sent, cancelled, expired, skipped (fatigue, opted out, unreachable)."""
    reason: Mapped[str | None] = mapped_column(Text)
    conversation_id: Mapped[str | None] = mapped_column(String(36))
    sent_at: Mapped[datetime | None]
    feedback_sent: Mapped[bool] = mapped_column(Boolean, default=False)
    outcome: Mapped[str | None] = mapped_column(String(20))
    """How the person's conversation ended: completed, expired, opted_out, ended."""
    finished_on: Mapped[date | None] = mapped_column(Date)

    __table_args__ = (
        UniqueConstraint("rule_id", "event_id", name="uq_followups_rule_event"),
        Index("ix_followups_contact", "contact_id"),
    )


class Participation(Base):
    """A known person took a public survey in a period: each person counts once per period.

    Says who took part, never what they said."""

    __tablename__ = "participations"

    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True
    )
    survey_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    period: Mapped[str] = mapped_column(String(20), primary_key=True)
    completed: Mapped[bool] = mapped_column(Boolean, default=False)


class StaffUser(Base):
    """A person who signs in to the staff web app (bot/web/staff), with one role."""

    __tablename__ = "staff_users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    """viewer, analyst or admin."""
    password_hash: Mapped[str] = mapped_column(String(200))
    """argon2id, in the PHC string format."""
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    """Failed sign-ins since the last success or lockout."""
    locked_until: Mapped[datetime | None]
    disabled_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    password_changed_at: Mapped[datetime] = mapped_column(default=utcnow)


class StaffSession(Base):
    """A signed-in browser: the cookie holds a random id, the row only its SHA-256."""

    __tablename__ = "staff_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_staff_sessions_user", "user_id"),)


class ApiToken(Base):
    """A staff API token an admin made in the staff web app; the row keeps only its SHA-256
    (the token is shown once, when made). Tokens in the configuration work beside these."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
