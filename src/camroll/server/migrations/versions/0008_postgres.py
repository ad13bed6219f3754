"""64-bit row ids on PostgreSQL, as on SQLite and in the API.

SQLite's ``INTEGER PRIMARY KEY`` is a 64-bit rowid, but PostgreSQL's ``INTEGER`` (what 0001-0003
created) is 32-bit: an API id above 2**31 - 1 then failed the query instead of finding nothing, and a
library would run out of ids at 2,147,483,647 rows.  Every id, every foreign key to one and every id
sequence becomes BIGINT.  Nothing changes on SQLite.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None

# Table -> its id columns; a table listed with "id" has an id sequence.
_COLUMNS = {
    "users": ("id",),
    "sessions": ("id", "user_id"),
    "devices": ("id", "user_id"),
    "assets": ("id", "user_id", "live_video_id", "live_of_id"),
    "asset_files": ("id", "asset_id", "device_id"),
    "uploads": ("user_id", "device_id", "asset_id"),
    "device_health": ("device_id",),
    "notify_targets": ("id", "user_id"),
    "incidents": ("id", "user_id", "device_id"),
}


def _retype(sql_type: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, columns in _COLUMNS.items():
        op.execute(f"ALTER TABLE {table} " + ", ".join(f"ALTER COLUMN {c} TYPE {sql_type}" for c in columns))
        if "id" in columns:
            op.execute(f"ALTER SEQUENCE {table}_id_seq AS {sql_type}")


def upgrade() -> None:
    _retype("BIGINT")


def downgrade() -> None:
    _retype("INTEGER")
