"""Locks that serialize what two server replicas could otherwise race on, held until the transaction ends.

Contract of every function here:

- Call it on the connection of the transaction whose reads and writes it protects, *before* the reads
  the decision rests on (a quota sum, "is this blob still needed?").  The lock is released when that
  transaction commits or rolls back, never earlier, so the writes that follow the check are visible
  to the next holder.  There is no unlock.
- Under PostgreSQL's READ COMMITTED, each statement after the lock sees everything committed before
  the lock was granted: the next holder's check reads the previous holder's writes.
- Waiting is bounded by the connection's ``lock_timeout`` (server/db.py); a wait that runs out raises,
  the transaction rolls back and the request answers 503 (server/problems.py).
- On SQLite it does nothing and costs nothing: every write transaction there is ``BEGIN IMMEDIATE``
  (server/db.py), so the single writer already serializes them.
- Lock order, so no two transactions wait on each other: a user's quota lock may be followed by a
  blob lock in the same transaction, never the other way round.

PostgreSQL advisory locks take either one 64-bit key or two 32-bit keys, and the two key spaces do
not overlap.  camroll's keys:

- (``QUOTA``, user id), (``MIGRATIONS``, 0): two 32-bit keys, namespace first.
- a blob: one 64-bit key, the first 8 bytes of its SHA-256 (as a signed integer).  Two hashes
  sharing a key only wait for each other now and then; nothing is wrong when they do.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

# First keys of the two-key form; any new one goes here so none is taken twice.
QUOTA = 1
MIGRATIONS = 2

_PAIR = text("SELECT pg_advisory_xact_lock(:ns, :key)")
_SINGLE = text("SELECT pg_advisory_xact_lock(:key)")


def _serializes(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def quota(conn: Connection, user_id: int) -> None:
    """Serialize quota decisions of one user: checking room and inserting (or hashing) the upload that
    takes it happen with no other replica's check in between."""
    if _serializes(conn):
        conn.execute(_PAIR, {"ns": QUOTA, "key": user_id})


def blob_key(sha256: str) -> int:
    """The 64-bit advisory lock key of a blob: its hash's first 8 bytes as a signed big-endian integer."""
    return int.from_bytes(bytes.fromhex(sha256[:16]), "big", signed=True)


def blob(conn: Connection, sha256: str) -> None:
    """Serialize whatever decides a blob's fate: the trash purge's and orphan sweep's "is it still needed,
    then delete" against an upload recording that it is about to store (or re-use) the same bytes."""
    if _serializes(conn):
        conn.execute(_SINGLE, {"key": blob_key(sha256)})


def migrations(conn: Connection) -> None:
    """Serialize schema upgrades: replicas starting at once take turns, and each finds the schema as the
    one before left it.  Waits as long as the running migration takes (no ``lock_timeout`` for the rest
    of this transaction: a migration may rightly wait for tables other replicas are using)."""
    if _serializes(conn):
        conn.execute(text("SET LOCAL lock_timeout = 0"))
        conn.execute(_PAIR, {"ns": MIGRATIONS, "key": 0})
