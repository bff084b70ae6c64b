"""The outbox index leads with the channel; the scrub index holds only rows to scrub.

With (direction, status, not_before) a channel's claim and its "anything due?" look walked the
queued rows of every other channel too: an idle web chat lane read every queued SMS on each
wake-up (found by profiling the inbound benchmark). The index on `scrub_after` held an entry for
every message though only rows of finished anonymous conversations still in flight have one:
it becomes partial, and each message written costs one index entry less.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


_SCRUB_WHERE = sa.text("scrub_after IS NOT NULL")


def upgrade() -> None:
    op.drop_index("ix_messages_outbox", table_name="messages")
    op.create_index(
        "ix_messages_outbox", "messages", ["direction", "channel", "status", "not_before"]
    )
    op.drop_index("ix_messages_scrub_after", table_name="messages")
    op.create_index(
        "ix_messages_scrub_after",
        "messages",
        ["scrub_after"],
        sqlite_where=_SCRUB_WHERE,
        postgresql_where=_SCRUB_WHERE,
    )


def downgrade() -> None:
    op.drop_index("ix_messages_outbox", table_name="messages")
    op.create_index("ix_messages_outbox", "messages", ["direction", "status", "not_before"])
    op.drop_index("ix_messages_scrub_after", table_name="messages")
    op.create_index("ix_messages_scrub_after", "messages", ["scrub_after"])
