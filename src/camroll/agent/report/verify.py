"""``camroll verify``: is every photo and video in these folders on the server, byte for byte?

Every file is hashed again (not taken from the state DB: the point is to prove the bytes on disk), and
the server is asked which of those SHA-256s it holds for this user.  The question is asked with hashes
only, so it records nothing on the server.  Files the backup leaves out by design (hidden, Android's
trash, the user's exclude patterns, empty files) and files that are not photos or videos are counted
apart, not reported missing.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from camroll import wire
from camroll.agent.backup.filepolicy import LEFT_OUT_CODES, ServerLimits, check_stat
from camroll.agent.backup.hasher import FileChanged, NotMedia, hash_file
from camroll.agent.fsnames import shown
from camroll.agent.settings.config import PolicyConfig
from camroll.units import format_size


@dataclass
class VerifyResult:
    folders: list[str]
    backed_up: int = 0
    backed_up_bytes: int = 0
    missing: list[str] = field(default_factory=list)
    missing_bytes: int = 0
    # On the server only in its trash: purged after the trash period, so not safe.
    in_trash: list[str] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    left_out: int = 0
    not_media: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"folders": self.folders, "backed_up": self.backed_up, "backed_up_bytes": self.backed_up_bytes,
                "missing": self.missing, "missing_bytes": self.missing_bytes, "in_trash": self.in_trash,
                "unreadable": [{"path": p, "reason": r} for p, r in self.unreadable],
                "left_out": self.left_out, "not_media": self.not_media,
                "ok": not self.missing and not self.unreadable and not self.in_trash}

    def text(self) -> str:
        where = ", ".join(self.folders)
        total = self.backed_up + len(self.missing)
        extra = []
        if self.left_out:
            extra.append(f"{self.left_out} left out by design or your settings (hidden, trashed, excluded, empty)")
        if self.not_media:
            extra.append(f"{self.not_media} not photos or videos")
        tail = f" ({'; '.join(extra)})" if extra else ""
        if not self.missing and not self.unreadable and not self.in_trash:
            return (f"All {total} photos and videos in {where} ({format_size(self.backed_up_bytes)}) are on the "
                    f"server, byte for byte{tail}.")
        lines = [f"{len(self.missing) + len(self.in_trash)} of {total} photos and videos in {where} are NOT "
                 f"safely on the server ({format_size(self.missing_bytes)}){tail}:"]
        lines += [f"  missing: {p}" for p in self.missing[:200]]
        lines += [f"  in the server's trash (deleted there; purged after 30 days): {p}" for p in self.in_trash[:200]]
        if len(self.missing) > 200:
            lines.append(f"  ... and {len(self.missing) - 200} more (--json lists them all)")
        lines += [f"  unreadable: {p}: {r}" for p, r in self.unreadable[:50]]
        lines.append("Fix: run camroll backup; 'camroll why FILE' says why a file is not backed up yet.")
        return "\n".join(lines)


def _files(roots: list[Path], policy: PolicyConfig, result: VerifyResult) -> Iterator[tuple[str, int]]:
    """Every file the backup would look at, walked as its scanner walks (backup/scanner.py): links
    followed with a loop guard, hidden folders not entered, unreadable folders and files reported."""
    for root in roots:
        folder = os.fspath(root)
        st = os.stat(folder)
        visited = {(st.st_dev, st.st_ino)}
        stack = [folder]
        while stack:
            d = stack.pop()
            try:
                names = sorted(os.listdir(d))
            except OSError as exc:
                result.unreadable.append((shown(d), exc.strerror or str(exc)))
                continue
            for name in names:
                path = os.path.join(d, name)
                try:
                    s = os.stat(path)
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    result.unreadable.append((shown(path), exc.strerror or str(exc)))
                    continue
                if stat.S_ISDIR(s.st_mode):
                    if name[0] != "." and (s.st_dev, s.st_ino) not in visited:
                        visited.add((s.st_dev, s.st_ino))
                        stack.append(path)
                    continue
                if not stat.S_ISREG(s.st_mode):
                    continue
                decision = check_stat(path, folder, s.st_size, s.st_mtime_ns, policy, ServerLimits())
                if decision is not None and (decision.code in LEFT_OUT_CODES or decision.code == "empty"):
                    result.left_out += 1
                    continue
                yield path, s.st_size


def _hash(path: str) -> tuple[str, str | None, str]:
    """(path, sha256 or None, why not)."""
    for _ in range(2):
        try:
            return path, hash_file(path).sha256, ""
        except NotMedia:
            return path, None, "not_media"
        except FileChanged:
            continue
        except OSError as exc:
            return path, None, exc.strerror or str(exc)
    return path, None, "it kept changing while it was read (still being written?)"


def verify_folders(url: str, token: str, roots: list[Path], policy: PolicyConfig, *, workers: int = 4,
                   progress: Any = None) -> VerifyResult:
    from camroll.agent.api import Api, make_client, with_retries

    result = VerifyResult([os.fspath(r) for r in roots])
    files = list(_files(roots, policy, result))
    sizes = dict(files)
    hashed: list[tuple[str, str]] = []
    task = None
    if progress is not None:
        progress.start()
        task = progress.add_task("verifying", total=len(files))
    try:
        with ThreadPoolExecutor(workers) as pool:
            for path, sha, why in pool.map(_hash, [p for p, _ in files]):
                if progress is not None:
                    progress.update(task, advance=1)
                if sha is not None:
                    hashed.append((path, sha))
                elif why == "not_media":
                    result.not_media += 1
                else:
                    result.unreadable.append((shown(path), why))
    finally:
        if progress is not None:
            progress.stop()
    with make_client(url, token) as client:
        api = Api(client)
        present: set[str] = set()
        trashed: set[str] = set()
        shas = sorted({sha for _, sha in hashed})
        for i in range(0, len(shas), wire.MAX_CHECK_BATCH):
            items = [wire.CheckItem(sha256=s) for s in shas[i:i + wire.MAX_CHECK_BATCH]]
            answer = with_retries(partial(api.check, items), base_url=api.base_url,
                                  then="then run camroll verify again")
            present.update(answer.present)
            trashed.update(answer.trashed)
    for path, sha in hashed:
        if sha in trashed:
            result.in_trash.append(shown(path))
            result.missing_bytes += sizes[path]
        elif sha in present:
            result.backed_up += 1
            result.backed_up_bytes += sizes[path]
        else:
            result.missing.append(shown(path))
            result.missing_bytes += sizes[path]
    return result
