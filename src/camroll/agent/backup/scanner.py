"""Find new, changed and vanished files under the configured folders, by stat alone.

Like Syncthing's scanner it reports only what changed: one bulk read of the state DB, one ``stat``
per file, and a (size, mtime_ns, inode) comparison.  Nothing is hashed or written when nothing changed.
"""

from __future__ import annotations

import functools
import os
import stat as stat_mod
from collections.abc import Callable
from dataclasses import dataclass, field

from camroll.agent.state.db import NewFile, StateDB

FOLDER_REMOVED = "its folder is no longer in camroll's list"
FILE_GONE = "the file no longer exists (deleted or moved)"


@dataclass
class ScanResult:
    files_seen: int = 0
    new: int = 0
    changed: int = 0
    vanished: int = 0
    # Folders that could not be read at all: their known files are left alone rather than marked
    # vanished, because an unplugged card is not a deletion.
    missing_folders: list[tuple[str, str]] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)

    @property
    def anything_changed(self) -> bool:
        return bool(self.new or self.changed or self.vanished)


def normalise_folders(folders: list[str]) -> list[str]:
    """Drop folders nested inside another configured folder, so no file is scanned twice."""
    out: list[str] = []
    for f in sorted(set(folders)):
        if not any(f == o or f.startswith(o.rstrip(os.sep) + os.sep) for o in out):
            out.append(f)
    return out


# Files that differ from the state DB are looked up and recorded this many at a time during the walk, so
# an initial scan of 100,000 files never holds them all.
FLUSH_EVERY = 2000


def _walk(root: str, index: dict[str, str], result: ScanResult,
          differs: list[tuple[str, int, int, int]], flush: Callable[[], None]) -> int:
    """Stat every regular file under ``root``; remove the unchanged ones from ``index`` and append the new
    or different ones to ``differs`` as (path, size, mtime_ns, inode), calling ``flush`` after a directory
    once it holds ``FLUSH_EVERY``.  Hidden files (and Android's
    ``.trashed-*``) are recorded too, so the per-file rules can count them as left out by choice; hidden
    folders are not walked.  Names that are not UTF-8 are kept as ``os.fsdecode`` gives them.

    ``os.listdir`` + ``os.stat`` is the fastest pure-Python walk here (faster than ``DirEntry.stat``).
    Symlinks are followed; the (dev, inode) set of visited directories stops link loops."""
    seen = 0
    st = os.stat(root)
    visited = {(st.st_dev, st.st_ino)}
    stack = [root]
    stat = os.stat
    s_isdir, s_isreg = stat_mod.S_ISDIR, stat_mod.S_ISREG
    pop = index.pop
    while stack:
        d = stack.pop()
        try:
            names = os.listdir(d)
        except OSError as exc:
            result.unreadable.append((d, exc.strerror or str(exc)))
            continue
        prefix = d + os.sep if not d.endswith(os.sep) else d
        for name in names:
            path = prefix + name
            try:
                s = stat(path)
            except FileNotFoundError:
                continue  # removed mid-scan, or a dangling symlink: nothing to back up
            except OSError as exc:
                result.unreadable.append((path, exc.strerror or str(exc)))
                continue
            mode = s.st_mode
            if s_isreg(mode):
                seen += 1
                size, mtime, ino = s.st_size, s.st_mtime_ns, s.st_ino
                if pop(path, None) != f"{size}:{mtime}:{ino}:0":
                    differs.append((path, size, mtime, ino))
            elif s_isdir(mode) and name[0] != ".":
                key = (s.st_dev, s.st_ino)
                if key not in visited:
                    visited.add(key)
                    stack.append(path)
        if len(differs) >= FLUSH_EVERY:
            flush()
    return seen


def scan(db: StateDB, folders: list[str]) -> ScanResult:
    """Compare the folders with the state DB and record new, changed, vanished and reappeared files."""
    result = ScanResult()
    index = db.stat_index()
    new: list[NewFile] = []
    changed: list[tuple[int, int, int, int]] = []
    reappeared: list[int] = []
    skip_folders: set[str] = set()
    roots = normalise_folders(folders)
    counts = [0, 0]  # new, changed: recorded so far

    def record(differs: list[tuple[str, int, int, int]], root: str) -> None:
        # Only files that differ from the index cost a query.
        for path, size, mtime, ino in differs:
            row = db.lookup(path)
            if row is None:
                new.append(NewFile(path, root, size, mtime, ino))
                continue
            fid, osize, omtime, oino, state, _folder = row
            if (osize, omtime, oino) != (size, mtime, ino):
                changed.append((fid, size, mtime, ino))
            elif state == "vanished":
                reappeared.append(fid)
        differs.clear()
        if len(new) + len(changed) + len(reappeared) >= FLUSH_EVERY:
            flush_db()

    def flush_db() -> None:
        if new or changed or reappeared:
            db.apply_scan(new, changed, (), reappeared)
            counts[0] += len(new)
            counts[1] += len(changed)
            new.clear()
            changed.clear()
            reappeared.clear()

    for root in roots:
        if not os.path.isdir(root):
            reason = "does not exist" if not os.path.exists(root) else "is not a directory"
            result.missing_folders.append((root, reason))
            skip_folders.add(root)
            continue
        differs: list[tuple[str, int, int, int]] = []
        try:
            result.files_seen += _walk(root, index, result, differs,
                                       functools.partial(record, differs, root))
        except OSError as exc:
            result.missing_folders.append((root, exc.strerror or str(exc)))
            skip_folders.add(root)
            continue
        record(differs, root)
    # Whatever is left in the index was not found this time.
    configured = set(roots)
    vanished: list[tuple[int, str]] = []
    for path, key in index.items():
        if key.endswith(":1"):
            continue
        row = db.lookup(path)
        if row is None or row[5] in skip_folders:
            continue
        vanished.append((row[0], FILE_GONE if row[5] in configured else FOLDER_REMOVED))
    result.new, result.changed, result.vanished = counts[0] + len(new), counts[1] + len(changed), len(vanished)
    if new or changed or vanished or reappeared:
        db.apply_scan(new, changed, vanished, reappeared)
    return result
