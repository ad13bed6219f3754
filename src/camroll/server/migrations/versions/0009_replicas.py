"""Replicas (server/replicas/): the replicas, each blob's copy on each of them, when scrub last proved a
blob intact on the primary store, and what scrub found and repaired.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "replicas",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("paused_at", _TS, nullable=True),
        sa.Column("last_ok_at", _TS, nullable=True),
        sa.Column("failing_since", _TS, nullable=True),
        sa.Column("failure_kind", sa.String(32), nullable=True),
        sa.Column("failure_problem", sa.String(2000), nullable=True),
        sa.Column("failure_fix", sa.String(2000), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("retry_at", _TS, nullable=True),
    )
    op.create_table(
        "replica_copies",
        sa.Column("replica_id", _ID, sa.ForeignKey("replicas.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(32), nullable=True),
        sa.Column("detail", sa.String(2000), nullable=True),
        sa.Column("since", _TS, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("retry_at", _TS, nullable=True),
        sa.Column("copied_at", _TS, nullable=True),
        sa.Column("verified_at", _TS, nullable=True),
    )
    op.create_index("ix_replica_copies_work", "replica_copies", ["replica_id", "state", "retry_at"])
    op.create_index("ix_replica_copies_sha256", "replica_copies", ["sha256"])
    op.create_table(
        "blob_checks",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("verified_at", _TS, nullable=False),
    )
    op.create_index("ix_blob_checks_verified_at", "blob_checks", ["verified_at"])
    op.create_table(
        "scrub_findings",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("found_at", _TS, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("location", sa.String(64), nullable=False),
        sa.Column("problem", sa.String(16), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("source", sa.String(64), nullable=True),
        sa.Column("detail", sa.String(2000), nullable=False),
    )
    op.create_index("ix_scrub_findings_found_at", "scrub_findings", ["found_at"])
    op.create_index("ix_scrub_findings_sha256", "scrub_findings", ["sha256"])


def downgrade() -> None:
    op.drop_table("scrub_findings")
    op.drop_table("blob_checks")
    op.drop_index("ix_replica_copies_sha256", "replica_copies")
    op.drop_index("ix_replica_copies_work", "replica_copies")
    op.drop_table("replica_copies")
    op.drop_table("replicas")
