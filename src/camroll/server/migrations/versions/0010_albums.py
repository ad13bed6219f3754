"""Albums (``albums``, ``album_items``): named sets of a user's assets, with an optional cover.

An item row points at the asset with ON DELETE CASCADE, so purging an asset from the trash takes it out
of every album; deleting an album deletes only its item rows, never an asset.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision: str | None = "0009"
branch_labels: str | None = None
depends_on: str | None = None

# As models.ID: BIGINT on PostgreSQL, INTEGER (the 64-bit rowid) on SQLite.
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "albums",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("user_id", _ID, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("cover_asset_id", _ID, sa.ForeignKey("assets.id", ondelete="SET NULL"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("user_id", "name", name="uq_albums_user_name"),
    )
    op.create_index("ix_albums_user_id", "albums", ["user_id"])
    op.create_table(
        "album_items",
        sa.Column("album_id", _ID, sa.ForeignKey("albums.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("asset_id", _ID, sa.ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_album_items_asset_id", "album_items", ["asset_id"])


def downgrade() -> None:
    op.drop_index("ix_album_items_asset_id", table_name="album_items")
    op.drop_table("album_items")
    op.drop_index("ix_albums_user_id", table_name="albums")
    op.drop_table("albums")
