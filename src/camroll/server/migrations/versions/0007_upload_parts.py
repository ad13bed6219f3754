"""Uploads in progress kept in object storage (multipart parts and a short tail), and a writer lease
on each upload so only one request on any replica writes to it at a time.

``uploads`` gains the S3 multipart UploadId, the key and size of the tail object (the bytes after
the last part, shorter than S3's 5 MiB part minimum), and ``writer_id`` / ``lease_until``;
``upload_parts`` lists the parts whose bytes are acknowledged (number, size, ETag).  Uploads on local
part files leave all of it empty.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("uploads") as batch:
        batch.add_column(sa.Column("multipart_id", sa.String(1024), nullable=True))
        batch.add_column(sa.Column("tail_key", sa.String(200), nullable=True))
        batch.add_column(sa.Column("tail_size", sa.BigInteger, nullable=False, server_default="0"))
        batch.add_column(sa.Column("writer_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("lease_until", TS, nullable=True))
    op.create_table(
        "upload_parts",
        sa.Column("upload_id", sa.String(64), sa.ForeignKey("uploads.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("number", sa.Integer, primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("etag", sa.String(200), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("upload_parts")
    with op.batch_alter_table("uploads") as batch:
        for column in ("lease_until", "writer_id", "tail_size", "tail_key", "multipart_id"):
            batch.drop_column(column)
