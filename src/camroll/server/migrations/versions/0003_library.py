"""Library: capture time, kind, media metadata, Live Photo links, job state and trash on assets.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("assets") as batch:
        batch.add_column(sa.Column("kind", sa.String(8), nullable=False, server_default="other"))
        batch.add_column(sa.Column("taken_at", TS, nullable=True))
        batch.add_column(sa.Column("taken_offset", sa.Integer, nullable=True))
        batch.add_column(sa.Column("taken_source", sa.String(16), nullable=False, server_default="upload"))
        batch.add_column(sa.Column("width", sa.Integer, nullable=True))
        batch.add_column(sa.Column("height", sa.Integer, nullable=True))
        batch.add_column(sa.Column("duration_s", sa.Float, nullable=True))
        batch.add_column(sa.Column("camera_make", sa.String(200), nullable=True))
        batch.add_column(sa.Column("camera_model", sa.String(200), nullable=True))
        batch.add_column(sa.Column("media", sa.JSON, nullable=True))
        batch.add_column(sa.Column("live_photo_id", sa.String(200), nullable=True))
        batch.add_column(sa.Column("live_video_id", sa.Integer, nullable=True))
        batch.add_column(sa.Column("live_of_id", sa.Integer, nullable=True))
        batch.add_column(sa.Column("motion_photo", sa.Boolean, nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("metadata_at", TS, nullable=True))
        batch.add_column(sa.Column("thumbs_at", TS, nullable=True))
        batch.add_column(sa.Column("job_error", sa.String(2000), nullable=True))
        batch.add_column(sa.Column("job_error_at", TS, nullable=True))
        batch.add_column(sa.Column("trashed_at", TS, nullable=True))
    # Until the metadata job has run, an asset was taken when it was uploaded: the one time every row
    # has.  The jobs enqueued at the next start replace it with EXIF/QuickTime/filename/mtime times.
    op.execute("UPDATE assets SET taken_at = created_at")
    op.execute("UPDATE assets SET kind = CASE WHEN mime LIKE 'image/%' THEN 'image' "
               "WHEN mime LIKE 'video/%' THEN 'video' ELSE 'other' END")
    with op.batch_alter_table("assets") as batch:
        batch.alter_column("taken_at", existing_type=TS, nullable=False)
        batch.alter_column("kind", server_default=None, existing_type=sa.String(8), existing_nullable=False)
        batch.alter_column("taken_source", server_default=None, existing_type=sa.String(16),
                           existing_nullable=False)
        batch.alter_column("motion_photo", server_default=None, existing_type=sa.Boolean,
                           existing_nullable=False)
        batch.create_index("ix_assets_timeline", ["user_id", "taken_at", "id"])
        batch.create_index("ix_assets_user_trashed", ["user_id", "trashed_at"])
        batch.create_index("ix_assets_user_live_photo", ["user_id", "live_photo_id"])


def downgrade() -> None:
    with op.batch_alter_table("assets") as batch:
        batch.drop_index("ix_assets_user_live_photo")
        batch.drop_index("ix_assets_user_trashed")
        batch.drop_index("ix_assets_timeline")
        for name in ("trashed_at", "job_error_at", "job_error", "thumbs_at", "metadata_at", "motion_photo",
                     "live_of_id", "live_video_id", "live_photo_id", "media", "camera_model", "camera_make",
                     "duration_s", "height", "width", "taken_source", "taken_offset", "taken_at", "kind"):
            batch.drop_column(name)
