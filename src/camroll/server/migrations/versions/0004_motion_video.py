"""Where a Motion Photo's embedded MP4 lies inside its JPEG, so the viewer can play just those bytes.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # Existing Motion Photos keep NULLs until their metadata job runs again; the viewer then simply
    # offers no play button for them.
    with op.batch_alter_table("assets") as batch:
        batch.add_column(sa.Column("motion_video_offset", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("motion_video_length", sa.BigInteger, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("assets") as batch:
        batch.drop_column("motion_video_length")
        batch.drop_column("motion_video_offset")
