"""The WebDAV door: folders a client made (MKCOL) and chunked uploads (Nextcloud chunking v2) with their
chunks.  A chunked upload's bytes are one ``uploads`` row in the part store, so they expire with it.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision: str | None = "0010"
branch_labels: str | None = None
depends_on: str | None = None

TS = sa.DateTime(timezone=True)
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "dav_folders",
        sa.Column("id", ID, primary_key=True),
        sa.Column("device_id", ID, sa.ForeignKey("devices.id", ondelete="CASCADE"), nullable=False),
        sa.Column("path", sa.String(4096), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("device_id", "path", name="uq_dav_folders_device_path"),
    )
    op.create_index("ix_dav_folders_device_id", "dav_folders", ["device_id"])
    op.create_table(
        "dav_uploads",
        sa.Column("id", ID, primary_key=True),
        sa.Column("device_id", ID, sa.ForeignKey("devices.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("upload_id", sa.String(64), sa.ForeignKey("uploads.id", ondelete="SET NULL"), nullable=True),
        sa.Column("total_length", sa.BigInteger, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("device_id", "name", name="uq_dav_uploads_device_name"),
    )
    op.create_index("ix_dav_uploads_device_id", "dav_uploads", ["device_id"])
    op.create_table(
        "dav_chunks",
        sa.Column("dav_upload_id", ID, sa.ForeignKey("dav_uploads.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("start", sa.BigInteger, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("dav_chunks")
    op.drop_table("dav_uploads")
    op.drop_table("dav_folders")
