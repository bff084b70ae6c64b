"""The outbox index leads with the channel: each channel's sender finds its own due rows.

With (direction, status, not_before) a channel's claim and its "anything due?" look walked the
queued rows of every other channel too: an idle web chat lane read every queued SMS on each
wake-up (found by profiling the inbound benchmark).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_messages_outbox", table_name="messages")
    op.create_index(
        "ix_messages_outbox", "messages", ["direction", "channel", "status", "not_before"]
    )


def downgrade() -> None:
    op.drop_index("ix_messages_outbox", table_name="messages")
    op.create_index("ix_messages_outbox", "messages", ["direction", "status", "not_before"])
