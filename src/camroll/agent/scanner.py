"""Find new, changed and vanished files under the configured folders, by stat alone.

Like Syncthing's scanner it reports only what changed: one bulk read of the state DB, one ``stat``
per file, and a (size, mtime_ns, inode) comparison.  Nothing is hashed or written when nothing changed.
"""

from __future__ import annotations

import os
import stat as stat_mod
from dataclasses import dataclass, field

from camroll.agent.state import NewFile, StateDB

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


def _walk(root: str, result: ScanResult) -> dict[str, tuple[int, int, int]]:
    """path -> (size, mtime_ns, inode) for every regular, non-hidden file under ``root``.  Symlinked
    directories are followed once; the (dev, inode) set stops link loops."""
    found: dict[str, tuple[int, int, int]] = {}
    visited: set[tuple[int, int]] = set()
    st = os.stat(root)
    visited.add((st.st_dev, st.st_ino))
    stack = [root]
    while stack:
        d = stack.pop()
        try:
            it = os.scandir(d)
        except OSError as exc:
            result.unreadable.append((d, exc.strerror or str(exc)))
            continue
        with it:
            for entry in it:
                if entry.name.startswith("."):
                    continue
                try:
                    if entry.is_dir():
                        if entry.is_symlink():
                            ds = entry.stat()
                            key = (ds.st_dev, ds.st_ino)
                            if key in visited:
                                continue
                            visited.add(key)
                        stack.append(entry.path)
                        continue
                    s = entry.stat()
                except OSError as exc:
                    # A dangling symlink or a file removed mid-scan: nothing to back up.
                    if not entry.is_symlink():
                        result.unreadable.append((entry.path, exc.strerror or str(exc)))
                    continue
                if stat_mod.S_ISREG(s.st_mode):
                    found[entry.path] = (s.st_size, s.st_mtime_ns, s.st_ino)
    return found


def scan(db: StateDB, folders: list[str]) -> ScanResult:
    """Compare the folders with the state DB and record new, changed, vanished and reappeared files."""
    result = ScanResult()
    index = db.index()
    new: list[NewFile] = []
    changed: list[tuple[int, int, int, int]] = []
    reappeared: list[int] = []
    skip_folders: set[str] = set()
    roots = normalise_folders(folders)
    for root in roots:
        if not os.path.isdir(root):
            reason = "does not exist" if not os.path.exists(root) else "is not a directory"
            result.missing_folders.append((root, reason))
            skip_folders.add(root)
            continue
        try:
            found = _walk(root, result)
        except OSError as exc:
            result.missing_folders.append((root, exc.strerror or str(exc)))
            skip_folders.add(root)
            continue
        result.files_seen += len(found)
        for path, key in found.items():
            row = index.pop(path, None)
            if row is None:
                new.append(NewFile(path, root, *key))
                continue
            fid, size, mtime_ns, inode, state, _folder = row
            if (size, mtime_ns, inode) != key:
                changed.append((fid, *key))
            elif state == "vanished":
                reappeared.append(fid)
    # Whatever is left in the index was not found this time.
    configured = set(roots)
    vanished: list[tuple[int, str]] = []
    for row in index.values():
        fid, _s, _m, _i, state, folder = row
        if state == "vanished" or folder in skip_folders:
            continue
        vanished.append((fid, FILE_GONE if folder in configured else FOLDER_REMOVED))
    result.new, result.changed, result.vanished = len(new), len(changed), len(vanished)
    if new or changed or vanished or reappeared:
        db.apply_scan(new, changed, vanished, reappeared)
    return result
