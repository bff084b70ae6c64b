"""Feedback per language: the plan reference per language, and the languages staff chose to send
without a "what we will do" text.

`campaigns.plan_ref` (one text) becomes `campaigns.plan_refs` (language -> text): an existing
reference is copied to every language of the campaign's survey version. Downgrading keeps the
reference of the survey's first language.

Revision ID: 0006
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _languages(definition: Any) -> list[str]:
    if isinstance(definition, str):
        definition = json.loads(definition)
    languages = definition.get("languages") if isinstance(definition, dict) else None
    return [str(lang) for lang in languages or []] or ["sv"]


def _plan_refs() -> list[tuple[int, str, list[str]]]:
    rows = op.get_bind().execute(
        sa.text(
            "SELECT c.id, c.plan_ref, v.definition FROM campaigns c "
            "JOIN survey_versions v ON v.id = c.survey_version_id "
            "WHERE c.plan_ref IS NOT NULL AND c.plan_ref <> ''"
        )
    )
    return [(int(cid), str(ref), _languages(definition)) for cid, ref, definition in rows]


def upgrade() -> None:
    existing = _plan_refs()
    with op.batch_alter_table("campaigns") as batch:
        batch.add_column(sa.Column("plan_refs", _JSON, nullable=False, server_default="{}"))
        batch.add_column(
            sa.Column("feedback_without_text", _JSON, nullable=False, server_default="[]")
        )
    campaigns = sa.table(
        "campaigns", sa.column("id", sa.BigInteger()), sa.column("plan_refs", _JSON)
    )
    for campaign_id, ref, languages in existing:
        op.get_bind().execute(
            campaigns.update()
            .where(campaigns.c.id == campaign_id)
            .values(plan_refs=dict.fromkeys(languages, ref))
        )
    with op.batch_alter_table("campaigns") as batch:
        batch.alter_column("plan_refs", server_default=None)
        batch.alter_column("feedback_without_text", server_default=None)
        batch.drop_column("plan_ref")


def downgrade() -> None:
    rows = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT c.id, c.plan_refs, v.definition FROM campaigns c "
                "JOIN survey_versions v ON v.id = c.survey_version_id"
            )
        )
        .all()
    )
    with op.batch_alter_table("campaigns") as batch:
        batch.add_column(sa.Column("plan_ref", sa.String(length=200), nullable=True))
    campaigns = sa.table(
        "campaigns", sa.column("id", sa.BigInteger()), sa.column("plan_ref", sa.String(200))
    )
    for campaign_id, refs, definition in rows:
        if isinstance(refs, str):
            refs = json.loads(refs)
        if not refs:
            continue
        first = next((refs[lang] for lang in _languages(definition) if refs.get(lang)), None)
        op.get_bind().execute(
            campaigns.update()
            .where(campaigns.c.id == int(campaign_id))
            .values(plan_ref=(first or next(iter(refs.values())))[:200])
        )
    with op.batch_alter_table("campaigns") as batch:
        batch.drop_column("feedback_without_text")
        batch.drop_column("plan_refs")
