"""Device paths that are not UTF-8 keep their exact bytes (``asset_files.path_raw``), so a restore can
recreate the name; heartbeats carry how many files a device leaves out by choice
(``device_health.left_out_files``).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # Existing rows are UTF-8 paths (the agent refused other names until now): NULL is their truth.
    with op.batch_alter_table("asset_files") as batch:
        batch.add_column(sa.Column("path_raw", sa.LargeBinary, nullable=True))
    with op.batch_alter_table("device_health") as batch:
        batch.add_column(sa.Column("left_out_files", sa.BigInteger, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("device_health") as batch:
        batch.drop_column("left_out_files")
    with op.batch_alter_table("asset_files") as batch:
        batch.drop_column("path_raw")
