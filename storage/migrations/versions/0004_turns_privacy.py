"""One writer of turns, addresses sealed at rest, anonymous answers released in batches.

- contact_addresses.address and messages.address hold sealed addresses (storage.sealing); the
  clear ones stored so far are sealed here, which needs the address key: `brukardialog db
  upgrade` and `serve` pass it. Outgoing messages get the recipient's address_key, so the web chat
  finds its history by key.
- conversations remember their origin (campaign, follow-up, public), follow-up, the respondent
  attributes an anonymous respondent will keep, and whether their answers await release.
- respondents get an origin; respondents and answers lose every sequence (answers are keyed by
  respondent and question; on SQLite both tables are WITHOUT ROWID), and are rewritten in random
  order, so row order says nothing about who answered when.
- Running anonymous conversations move to the new way: their answers live in their state until
  release, so the respondent rows written for them so far are removed.
- participations: who took a public survey in which period (each person counts once).
- followups keep how the conversation ended (outcome, finished_on).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import context, op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")
SEALED_PREFIX = "s1:"


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def _helpers() -> tuple[Any, Any]:
    attributes = context.config.attributes
    return attributes.get("address_sealer"), attributes.get("address_keyer")


def _seal_addresses() -> None:
    bind = op.get_bind()
    sealer, keyer = _helpers()
    addresses = bind.execute(
        sa.text("SELECT id, address FROM contact_addresses WHERE address NOT LIKE 's1:%'")
    ).all()
    outgoing = bind.execute(
        sa.text(
            "SELECT id, channel, address FROM messages "
            "WHERE address IS NOT NULL AND address NOT LIKE 's1:%'"
        )
    ).all()
    if (addresses or outgoing) and (sealer is None or keyer is None):
        raise RuntimeError(
            "this database holds addresses in clear: run `brukardialog db upgrade` (or `serve`) "
            "with the configured keys so they can be sealed"
        )
    for row_id, address in addresses:
        bind.execute(
            sa.text("UPDATE contact_addresses SET address = :a WHERE id = :id"),
            {"a": sealer.seal(address), "id": row_id},
        )
    for row_id, channel, address in outgoing:
        bind.execute(
            sa.text("UPDATE messages SET address = :a, address_key = :k WHERE id = :id"),
            {"a": sealer.seal(address), "k": keyer(channel, address), "id": row_id},
        )


def upgrade() -> None:
    with op.batch_alter_table("contact_addresses") as batch:
        batch.alter_column("address", type_=sa.Text(), existing_type=sa.String(200))
    # Recreated on SQLite with AUTOINCREMENT: message rows are now deleted (released and
    # abandoned conversations), and a reused id would hide new messages from a web chat that
    # polls "after id N".
    with op.batch_alter_table(
        "messages",
        recreate="always" if _sqlite() else "auto",
        table_kwargs={"sqlite_autoincrement": True},
    ) as batch:
        batch.alter_column("address", type_=sa.Text(), existing_type=sa.String(200))
        batch.drop_index("ix_messages_channel_address")
        batch.create_index("ix_messages_channel_key", ["channel", "address_key", "id"])
    _seal_addresses()

    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("followup_id", BigId, nullable=True))
        batch.add_column(
            sa.Column("origin", sa.String(20), nullable=False, server_default="public")
        )
        batch.add_column(sa.Column("attributes", Json, nullable=False, server_default="{}"))
        batch.add_column(
            sa.Column("pending_release", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.create_index("ix_conversations_pending_release", ["pending_release", "survey_id"])
    with op.batch_alter_table("followups") as batch:
        batch.add_column(sa.Column("outcome", sa.String(20), nullable=True))
        batch.add_column(sa.Column("finished_on", sa.Date(), nullable=True))
    bind = op.get_bind()
    bind.execute(
        sa.text("UPDATE conversations SET origin = 'campaign' WHERE campaign_id IS NOT NULL")
    )
    bind.execute(
        sa.text(
            "UPDATE conversations SET origin = 'followup', followup_id = "
            "(SELECT f.id FROM followups f WHERE f.conversation_id = conversations.id) "
            "WHERE EXISTS (SELECT 1 FROM followups f WHERE f.conversation_id = conversations.id)"
        )
    )
    bind.execute(
        sa.text(
            "UPDATE followups SET outcome = (SELECT v.status FROM conversations v "
            "WHERE v.id = followups.conversation_id AND v.status != 'active') "
            "WHERE conversation_id IS NOT NULL"
        )
    )

    # Respondents and answers: no sequence, random order.
    op.create_table(
        "respondents_new",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("survey_id", sa.String(100), nullable=False),
        sa.Column("survey_version_id", BigId, nullable=False),
        sa.Column("campaign_id", BigId, nullable=True),
        sa.Column("contact_id", BigId, nullable=True),
        sa.Column("attributes", Json, nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("started_on", sa.Date(), nullable=False),
        sa.Column("completed", sa.Boolean(), nullable=False),
        sa.Column("origin", sa.String(20), nullable=False),
        sa.ForeignKeyConstraint(
            ["survey_version_id"],
            ["survey_versions.id"],
            name="fk_respondents_survey_version_id_survey_versions",
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name="fk_respondents_contact_id_contacts",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_respondents" if _sqlite() else "pk_respondents_new"),
        sqlite_with_rowid=False,
    )
    bind.execute(
        sa.text(
            "INSERT INTO respondents_new (id, survey_id, survey_version_id, campaign_id, "
            "contact_id, attributes, channel, status, started_on, completed, origin) "
            "SELECT id, survey_id, survey_version_id, campaign_id, contact_id, attributes, "
            "channel, status, started_on, completed, CASE "
            "WHEN campaign_id IS NOT NULL THEN 'campaign' "
            "WHEN survey_id IN (SELECT survey_id FROM followup_rules) THEN 'followup' "
            "ELSE 'public' END FROM respondents ORDER BY id"
        )
    )
    op.create_table(
        "answers_new",
        sa.Column("respondent_id", sa.String(36), nullable=False),
        sa.Column("question_id", sa.String(100), nullable=False),
        sa.Column("value", Json, nullable=True),
        sa.Column("skipped", sa.Boolean(), nullable=False),
        sa.Column("answered_on", sa.Date(), nullable=False),
        sa.ForeignKeyConstraint(
            ["respondent_id"],
            ["respondents_new.id"],
            name="fk_answers_respondent_id_respondents",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "respondent_id",
            "question_id",
            name="pk_answers" if _sqlite() else "pk_answers_new",
        ),
        sqlite_with_rowid=False,
    )
    bind.execute(
        sa.text(
            "INSERT INTO answers_new (respondent_id, question_id, value, skipped, answered_on) "
            "SELECT respondent_id, question_id, value, skipped, answered_on FROM answers "
            "ORDER BY respondent_id, question_id"
        )
    )
    op.drop_table("answers")
    op.drop_table("respondents")
    op.rename_table("respondents_new", "respondents")
    op.rename_table("answers_new", "answers")
    if not _sqlite():
        op.execute("ALTER TABLE respondents RENAME CONSTRAINT pk_respondents_new TO pk_respondents")
        op.execute("ALTER TABLE answers RENAME CONSTRAINT pk_answers_new TO pk_answers")
        op.execute(
            "ALTER TABLE answers DROP CONSTRAINT fk_answers_respondent_id_respondents, "
            "ADD CONSTRAINT fk_answers_respondent_id_respondents FOREIGN KEY (respondent_id) "
            "REFERENCES respondents (id) ON DELETE CASCADE"
        )
    op.create_index("ix_respondents_survey", "respondents", ["survey_id"])
    op.create_index("ix_respondents_campaign", "respondents", ["campaign_id"])
    op.create_index("ix_respondents_contact", "respondents", ["contact_id"])
    if _sqlite():
        # answers_new's foreign key names the old table name; rebuild it to name respondents.
        with op.batch_alter_table(
            "answers", recreate="always", table_kwargs={"sqlite_with_rowid": False}
        ) as batch:
            batch.drop_constraint("fk_answers_respondent_id_respondents", type_="foreignkey")
            batch.create_foreign_key(
                "fk_answers_respondent_id_respondents",
                "respondents",
                ["respondent_id"],
                ["id"],
                ondelete="CASCADE",
            )

    _move_running_anonymous_conversations()

    op.create_table(
        "participations",
        sa.Column("contact_id", BigId, nullable=False),
        sa.Column("survey_id", sa.String(100), nullable=False),
        sa.Column("period", sa.String(20), nullable=False),
        sa.Column("completed", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name="fk_participations_contact_id_contacts",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("contact_id", "survey_id", "period", name="pk_participations"),
    )


def _move_running_anonymous_conversations() -> None:
    """Running anonymous conversations keep their answers in their state from now on."""
    bind = op.get_bind()
    rows = bind.execute(
        sa.text(
            "SELECT v.id, v.respondent_id, r.attributes FROM conversations v "
            "JOIN respondents r ON r.id = v.respondent_id "
            "WHERE v.status = 'active' AND r.contact_id IS NULL"
        )
    ).all()
    for conv_id, respondent_id, attributes in rows:
        if isinstance(attributes, str):
            attributes = json.loads(attributes)
        bind.execute(
            sa.text(
                "UPDATE conversations SET respondent_id = NULL, attributes = :a WHERE id = :id"
            ).bindparams(sa.bindparam("a", type_=Json)),
            {"a": attributes or {}, "id": conv_id},
        )
        bind.execute(sa.text("DELETE FROM answers WHERE respondent_id = :r"), {"r": respondent_id})
        bind.execute(sa.text("DELETE FROM respondents WHERE id = :r"), {"r": respondent_id})


def downgrade() -> None:
    op.drop_table("participations")
    op.create_table(
        "answers_old",
        sa.Column("id", BigId, nullable=False),
        sa.Column("respondent_id", sa.String(36), nullable=False),
        sa.Column("question_id", sa.String(100), nullable=False),
        sa.Column("value", Json, nullable=True),
        sa.Column("skipped", sa.Boolean(), nullable=False),
        sa.Column("answered_on", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_answers_old"),
    )
    op.execute(
        "INSERT INTO answers_old (respondent_id, question_id, value, skipped, answered_on) "
        "SELECT respondent_id, question_id, value, skipped, answered_on FROM answers"
    )
    op.drop_table("answers")
    op.rename_table("answers_old", "answers")
    if not _sqlite():
        op.execute("ALTER TABLE answers RENAME CONSTRAINT pk_answers_old TO pk_answers")
    with op.batch_alter_table("answers") as batch:
        batch.create_foreign_key(
            "fk_answers_respondent_id_respondents",
            "respondents",
            ["respondent_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch.create_unique_constraint(
            "uq_answers_respondent_question", ["respondent_id", "question_id"]
        )
    with op.batch_alter_table("respondents") as batch:
        batch.drop_column("origin")
    with op.batch_alter_table("followups") as batch:
        batch.drop_column("finished_on")
        batch.drop_column("outcome")
    with op.batch_alter_table("conversations") as batch:
        batch.drop_index("ix_conversations_pending_release")
        batch.drop_column("pending_release")
        batch.drop_column("attributes")
        batch.drop_column("origin")
        batch.drop_column("followup_id")
    with op.batch_alter_table("messages") as batch:
        batch.drop_index("ix_messages_channel_key")
        batch.create_index("ix_messages_channel_address", ["channel", "address", "id"])
        batch.alter_column("address", type_=sa.String(200), existing_type=sa.Text())
    with op.batch_alter_table("contact_addresses") as batch:
        batch.alter_column("address", type_=sa.String(200), existing_type=sa.Text())
