"""Which folder under ``--data`` holds the library, and whether a command may start a new one there.

``--data DIR`` means the same folder for every command: the one a person gave to ``camroll serve`` or
``camroll up``.  Two layouts are found there:

- the server's own: ``DIR/camroll.db``, ``DIR/blobs/`` ... (``camroll serve --data DIR``, also every
  server data dir made before both commands shared this rule);
- the all-in-one: ``DIR/server/`` holds the library, beside ``DIR/agent/`` and ``DIR/credentials``
  (``camroll up --data DIR``).

A folder with neither is no library.  Only a new or empty folder may become one (``camroll serve``,
``camroll admin user add``, which says so); a folder that holds something else is refused, because a
person who points a command at it almost always meant an existing library and mistyped the path.
With ``$CAMROLL_DATABASE_URL`` the database is the library and the folder is used as given.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass
from pathlib import Path

from camroll.server.settings import DATABASE_URL_ENV

ALLINONE_SUBDIR = "server"
DB_FILE = "camroll.db"
LOCK_FILE = "server.lock"
# What a server's data dir holds once it has run: with SQLite the database file says it all; with an
# external database (CAMROLL_DATABASE_URL) the folders the server keeps next to it do.
_SQLITE_MARKERS = (DB_FILE,)
_EXTERNAL_DB_MARKERS = (DB_FILE, "blobs", "uploads", "jobs.db", "thumbs", LOCK_FILE)
# Entries a new filesystem or a desktop puts in a folder, and our own lock: they leave it "empty".
_IGNORABLE = {"lost+found", LOCK_FILE}


class Found(enum.Enum):
    LIBRARY = "library"  # data_dir holds a library
    NEW = "new"  # no library; data_dir is new or empty, a library may be started there
    OTHER = "other"  # no library; data_dir holds other things: never start one there


@dataclass(frozen=True)
class Location:
    """Where ``--data`` led: the server data dir and what is in it."""

    given: Path
    data_dir: Path
    found: Found

    def refusal(self, *, command: str) -> str:
        """Why ``command`` will not use this folder, with the fix."""
        fix = ("Fix: pass the folder you gave to 'camroll serve --data' or 'camroll up --data' as --data DIR (or "
               "$CAMROLL_DATA); to start a new library, give 'camroll serve --data' a new or empty folder.")
        looked = f"no {DB_FILE}, no {ALLINONE_SUBDIR}/{DB_FILE}"
        if self.given.exists() and not self.given.is_dir():
            return f"{self.given} is a file, not a camroll data folder. {fix}"
        if self.found is Found.OTHER:
            return (f"{self.data_dir} holds no camroll library ({looked}) but is not empty, so camroll will not "
                    f"start a new library there. {fix}")
        return f"there is no camroll library in {self.given} ({looked}); '{command}' does not create one. {fix}"


def _external_db() -> bool:
    return bool(os.environ.get(DATABASE_URL_ENV))


def holds_library(path: Path) -> bool:
    markers = _EXTERNAL_DB_MARKERS if _external_db() else _SQLITE_MARKERS
    return any((path / m).exists() for m in markers)


def _is_empty(path: Path) -> bool:
    try:
        with os.scandir(path) as it:
            return all(e.name in _IGNORABLE or e.name.startswith(".") for e in it)
    except (FileNotFoundError, NotADirectoryError):
        return not path.exists()


def locate(given: Path) -> Location:
    """Find the library ``--data given`` means (see the module docstring); reads, never creates."""
    if holds_library(given):
        return Location(given, given, Found.LIBRARY)
    sub = given / ALLINONE_SUBDIR
    if holds_library(sub):
        return Location(given, sub, Found.LIBRARY)
    if sub.is_dir():
        # An all-in-one folder whose server never ran: its library starts in server/.
        return Location(given, sub, Found.NEW if _is_empty(sub) else Found.OTHER)
    if _external_db():
        # The library is the external database (whether it holds anything, only it can tell); the folder
        # keeps blobs, uploads, thumbnails and the job queue, and is created when missing.
        return Location(given, given, Found.LIBRARY)
    return Location(given, given, Found.NEW if _is_empty(given) else Found.OTHER)
