"""Device health and alerts: heartbeats, notification URLs, open incidents, asset_files.created_at.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("asset_files") as batch:
        batch.add_column(sa.Column("created_at", TS, nullable=True))
    # Existing copies date from their asset: the best the old schema knows, and never later than the truth.
    op.execute("UPDATE asset_files SET created_at = "
               "(SELECT assets.created_at FROM assets WHERE assets.id = asset_files.asset_id)")
    op.create_index("ix_uploads_device_updated", "uploads", ["device_id", "updated_at"])
    op.create_table(
        "device_health",
        sa.Column("device_id", sa.Integer, sa.ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("agent_version", sa.String(100), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("headline", sa.String(2000), nullable=False),
        sa.Column("blocker_code", sa.String(100), nullable=True),
        sa.Column("blocker", sa.String(2000), nullable=True),
        sa.Column("pending_files", sa.BigInteger, nullable=False),
        sa.Column("pending_bytes", sa.BigInteger, nullable=False),
        sa.Column("failed_files", sa.BigInteger, nullable=False),
        sa.Column("skipped_files", sa.BigInteger, nullable=False),
        sa.Column("backed_up_files", sa.BigInteger, nullable=False),
        sa.Column("last_success_at", TS, nullable=True),
        sa.Column("problems", sa.JSON, nullable=False),
        sa.Column("progress_at", TS, nullable=False),
        sa.Column("state_since", TS, nullable=False),
    )
    op.create_table(
        "notify_targets",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("last_sent_at", TS, nullable=True),
        sa.Column("last_error", sa.String(2000), nullable=True),
        sa.Column("last_error_at", TS, nullable=True),
        sa.UniqueConstraint("user_id", "url", name="uq_notify_targets_user_url"),
    )
    op.create_index("ix_notify_targets_user_id", "notify_targets", ["user_id"])
    op.create_table(
        "incidents",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("device_id", sa.Integer, sa.ForeignKey("devices.id", ondelete="CASCADE"), nullable=True),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("opened_at", TS, nullable=False),
        sa.Column("message", sa.String(2000), nullable=False),
        sa.UniqueConstraint("user_id", "key", name="uq_incidents_user_key"),
    )
    op.create_index("ix_incidents_user_id", "incidents", ["user_id"])


def downgrade() -> None:
    for table in ("incidents", "notify_targets", "device_health"):
        op.drop_table(table)
    op.drop_index("ix_uploads_device_updated", "uploads")
    with op.batch_alter_table("asset_files") as batch:
        batch.drop_column("created_at")
