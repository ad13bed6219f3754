"""A restore: list the library, plan where every original goes, download each once, verify its SHA-256,
put it in place without following links or overwriting anything, set its mtime, and record it.

Invariants (tests/e2e/test_restore.py checks them):

- a file appears at its place only whole and verified: bytes go to ``.camroll-restore/partial/<sha>.part``
  first, are hashed while they arrive, synced, and then linked (or renamed) into place;
- nothing under DEST is overwritten: an identical file already there counts as restored, a different one
  keeps its place and the restored file goes next to it (``IMG (restored).jpg``);
- no link is followed below DEST: every directory is opened with ``O_NOFOLLOW`` from its parent;
- an interruption loses nothing: the journal names what is done (not written again), a partial file is
  resumed with a Range request after its bytes so far were hashed again.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import hashlib
import os
import shutil
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx

from camroll import wire
from camroll.agent.api import TRANSIENT_ERRORS, problem_from
from camroll.agent.backup.retry import IN_PASS, Backoff
from camroll.agent.errors import AgentError, ProblemError
from camroll.agent.restore.journal import Journal
from camroll.agent.restore.names import WORK_DIR, device_path, numbered, relative
from camroll.agent.service.lock import exclusive, holder

READ = 1 << 20
_NOFOLLOW_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# os.link is refused by file systems without hard links (FAT, exFAT USB disks, some network mounts).
_NO_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.EXDEV, errno.ENOSYS}


class Outcome(enum.StrEnum):
    RESTORED = "restored"
    EARLIER_RUN = "earlier_run"  # restored by an earlier run and still there: left as it is
    ALREADY_THERE = "already_there"  # an identical file was at its place already
    WOULD_RESTORE = "would_restore"  # --dry-run
    FAILED = "failed"


@dataclass(frozen=True)
class Entry:
    """One file to write: the asset's bytes at ``rel`` (under DEST), with the device's mtime."""

    asset_id: int
    sha256: str
    size: int
    rel: bytes
    mtime_ns: int | None

    @property
    def shown(self) -> str:
        return wire.display_name(self.rel)


@dataclass(frozen=True)
class Result:
    entry: Entry
    outcome: Outcome
    reason: str = ""
    # Where it was written, when not ``entry.rel`` (a different file held that place).
    placed: bytes | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.entry.shown, "asset_id": self.entry.asset_id,
                               "sha256": self.entry.sha256, "size": self.entry.size, "outcome": self.outcome.value}
        if self.reason:
            out["reason"] = self.reason
        if self.placed is not None:
            out["written_to"] = wire.display_name(self.placed)
        return out


@dataclass
class Report:
    dest: Path
    results: list[Result] = field(default_factory=list)
    dry_run: bool = False

    def count(self, outcome: Outcome) -> int:
        return sum(1 for r in self.results if r.outcome is outcome)

    def bytes_of(self, outcome: Outcome) -> int:
        return sum(r.entry.size for r in self.results if r.outcome is outcome)

    def to_json(self) -> dict[str, Any]:
        return {"dest": str(self.dest), "dry_run": self.dry_run,
                "counts": {o.value: self.count(o) for o in Outcome},
                "bytes_restored": self.bytes_of(Outcome.RESTORED),
                "results": [r.to_json() for r in self.results]}


def plan(assets: Iterable[wire.AssetInfo], device_id: int | None = None) -> list[Entry]:
    """Every place to write, in asset-id order so the same library gives the same names on every run.

    Each device path of an asset is a place (``--device``: only that device's).  Two different files
    recorded at one path (a photo replaced over time, one path on two devices of the same name) get
    ``IMG (2).jpg``; the same bytes at the same place are written once."""
    taken: dict[bytes, str] = {}
    out: list[Entry] = []
    for a in sorted(assets, key=lambda a: a.id):
        files = [f for f in a.files if device_id is None or f.device_id == device_id]
        places = [(relative(f.device_name, device_path(f), f.filename), f.mtime_ns) for f in files]
        if not a.files and device_id is None:
            places = [(relative(None, b"", a.filename), None)]
        for rel, mtime_ns in places:
            n, candidate = 1, rel
            while candidate in taken and taken[candidate] != a.sha256:
                n += 1
                candidate = numbered(rel, n)
            if candidate in taken:
                continue
            taken[candidate] = a.sha256
            out.append(Entry(a.id, a.sha256, a.size, candidate, mtime_ns))
    return out


class Progress(Protocol):
    def planned(self, files: int, total_bytes: int) -> None: ...

    def advance(self, n: int) -> None: ...

    def finished(self, result: Result) -> None: ...


class Quiet:
    def planned(self, files: int, total_bytes: int) -> None:
        pass

    def advance(self, n: int) -> None:
        pass

    def finished(self, result: Result) -> None:
        pass


class _Mismatch(Exception):
    pass


class Source:
    """Originals from the server (``GET /assets/{id}/original``), or from one of its replicas."""

    def __init__(self, client: httpx.Client, replica: str | None = None) -> None:
        self.client = client
        self.replica = replica

    @property
    def ranges(self) -> bool:
        """Whether a partial file can be resumed (a replica's copy is sent whole)."""
        return self.replica is None

    def open(self, asset_id: int, offset: int) -> Any:
        params = {"replica": self.replica} if self.replica else None
        headers = {"Range": f"bytes={offset}-"} if offset and self.ranges else None
        return self.client.stream("GET", f"{wire.API_PREFIX}/assets/{asset_id}/original", params=params,
                                  headers=headers)


class Restorer:
    def __init__(self, dest: Path, source: Source, *, workers: int = 4, progress: Progress | None = None,
                 backoff: Backoff = IN_PASS, sleep: Callable[[float], None] = time.sleep) -> None:
        self.dest = dest
        self.source = source
        self.workers = max(1, workers)
        self.progress = progress or Quiet()
        self.backoff = backoff
        self.sleep = sleep
        self._stop = threading.Event()

    # --- the run ------------------------------------------------------------------------------------
    def run(self, entries: list[Entry], *, dry_run: bool = False) -> Report:
        report = Report(self.dest, dry_run=dry_run)
        self.progress.planned(len(entries), sum(e.size for e in entries))
        if dry_run:
            report.results.extend(self._dry(entries))
            return report
        self.dest.mkdir(parents=True, exist_ok=True)
        self.dest_fd = os.open(self.dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            work = self.dest / WORK_DIR
            for d in (work, work / "partial"):
                d.mkdir(exist_ok=True)
                if d.is_symlink() or not d.is_dir():
                    raise AgentError(f"{d} is not a folder of its own (a link or a file). Fix: move it away; "
                                     "camroll keeps its restore journal there and never writes through links.")
            dest = self.dest

            def busy(pid: int | None) -> AgentError:
                return AgentError(f"Another 'camroll restore' ({holder(pid)}) is writing to {dest}. Fix: wait "
                                  "for it to finish; running it again afterwards resumes where it stopped.")

            with exclusive(work / "lock", busy):
                self.partial = work / "partial"
                try:
                    self.journal = Journal(work / "journal.db")
                except sqlite3.Error as exc:
                    raise AgentError(f"The restore journal {work / 'journal.db'} cannot be used ({exc}). Fix: "
                                     "check that DEST is writable (a local disk, not a network share without "
                                     "locking); delete the journal to start the restore's bookkeeping afresh "
                                     "(nothing restored is written again: identical files are recognised).") from None
                try:
                    report.results.extend(self._run(entries))
                finally:
                    self.journal.close()
        finally:
            os.close(self.dest_fd)
        report.results.sort(key=lambda r: r.entry.rel)
        return report

    def _dry(self, entries: list[Entry]) -> list[Result]:
        """What a run would do, writing nothing: what an earlier run finished (its journal, read only,
        and the file still in place) is left; the rest would be restored."""
        journal = self.dest / WORK_DIR / "journal.db"
        if not journal.is_file() or not self.dest.is_dir():
            return [Result(e, Outcome.WOULD_RESTORE) for e in entries]
        self.journal = Journal(journal, read_only=True)
        self.dest_fd = os.open(self.dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            return [self._earlier(e) or Result(e, Outcome.WOULD_RESTORE) for e in entries]
        finally:
            os.close(self.dest_fd)
            self.journal.close()

    def _run(self, entries: list[Entry]) -> Iterator[Result]:
        by_sha: dict[str, list[Entry]] = {}
        for e in entries:
            earlier = self._earlier(e)
            if earlier is not None:
                self.progress.advance(e.size)
                self.progress.finished(earlier)
                yield earlier
            else:
                by_sha.setdefault(e.sha256, []).append(e)
        with ThreadPoolExecutor(self.workers, thread_name_prefix="restore") as pool:
            try:
                for results in pool.map(self._restore_bytes, by_sha.values()):
                    yield from results
            except BaseException:
                self._stop.set()
                raise

    def _earlier(self, e: Entry) -> Result | None:
        done = self.journal.done(e.rel)
        if done is None or done[:2] != (e.sha256, e.size):
            return None
        placed = done[2]
        try:
            st = os.stat(placed, dir_fd=self.dest_fd, follow_symlinks=False)
        except OSError:
            return None
        if not _regular(st.st_mode) or st.st_size != e.size:
            return None
        return Result(e, Outcome.EARLIER_RUN, placed=None if placed == e.rel else placed)

    def _restore_bytes(self, entries: list[Entry]) -> list[Result]:
        try:
            return self._restore_one(entries)
        except Exception as exc:  # one file's surprise must not end the restore of every other file
            from camroll.agent.log import logger

            logger.exception("restoring %s", entries[0].sha256)
            return [self._failed(e, f"unexpected error ({type(exc).__name__}: {exc}); run the restore again, "
                                    "and report it with the agent log if it repeats") for e in entries]

    def _restore_one(self, entries: list[Entry]) -> list[Result]:
        """Every place of one asset's bytes: downloaded once, copied locally for the other places."""
        results: list[Result] = []
        todo: list[Entry] = []
        for e in entries:
            try:
                there = self._identical_at(e, e.rel)
            except OSError as exc:
                results.append(self._failed(e, _os_reason(exc, e.rel)))
                continue
            if there:
                self.journal.mark(e.rel, e.sha256, e.size, e.rel)
                results.append(self._finished(Result(e, Outcome.ALREADY_THERE)))
            else:
                todo.append(e)
        if not todo:
            return results
        if self._stop.is_set():
            return results + [self._failed(e, "the restore was interrupted") for e in todo]
        try:
            part = self._download(todo[0])
        except (ProblemError, AgentError, _Mismatch, OSError) as exc:
            reason = _os_reason(exc, b"") if isinstance(exc, OSError) else str(exc)
            return results + [self._failed(e, reason) for e in todo]
        for i, e in enumerate(todo):
            last = i == len(todo) - 1
            try:
                source = part if last else self._copy(part, e)
                placed = self._place(source, e)
            except (OSError, _Mismatch) as exc:
                results.append(self._failed(e, _os_reason(exc, e.rel) if isinstance(exc, OSError) else str(exc)))
                continue
            if placed is None:
                results.append(self._finished(Result(e, Outcome.ALREADY_THERE)))
            else:
                results.append(self._finished(Result(e, Outcome.RESTORED, placed=None if placed == e.rel else placed)))
        part.unlink(missing_ok=True)
        return results

    def _finished(self, r: Result) -> Result:
        if r.outcome is not Outcome.RESTORED:
            self.progress.advance(r.entry.size)
        self.progress.finished(r)
        return r

    def _failed(self, e: Entry, reason: str) -> Result:
        return self._finished(Result(e, Outcome.FAILED, reason))

    # --- bytes in -----------------------------------------------------------------------------------
    def _download(self, e: Entry) -> Path:
        """The asset's bytes, whole and verified, in its partial file (resumed when one is there)."""
        part = self.partial / f"{e.sha256}.part"
        retry = 0
        fresh = False
        while True:
            try:
                self._fetch_into(part, e)
                return part
            except _Mismatch:
                if fresh:
                    part.unlink(missing_ok=True)
                    raise _Mismatch(
                        f"the bytes the server sent do not match their SHA-256 ({e.sha256[:12]}...). Fix: run the "
                        "restore again; if it repeats, the server's copy is damaged: ask its admin to run "
                        "'camroll admin scrub' (it repairs from a replica), or restore with --from-replica NAME"
                    ) from None
                # Bytes kept from an earlier run may be what is wrong: once more from the first byte.
                part.unlink(missing_ok=True)
                fresh = True
            except ProblemError as exc:
                if not exc.transient or retry + 1 >= self.backoff.attempts:
                    raise
            except TRANSIENT_ERRORS as exc:
                if retry + 1 >= self.backoff.attempts:
                    from camroll.agent.report.reach import classify

                    found = classify(str(self.source.client.base_url), exc, 120.0, answered=True)
                    raise AgentError(f"the download broke off: {found.sentence} Fix: {found.fix.split(';')[0]}, "
                                     "then run the restore again (it goes on from here)") from exc
            if self._stop.is_set():
                raise AgentError("the restore was interrupted")
            self.sleep(self.backoff.delay(retry))
            retry += 1

    def _fetch_into(self, part: Path, e: Entry) -> None:
        with contextlib.suppress(FileNotFoundError):
            if os.stat(part, follow_symlinks=False).st_nlink > 1:
                # Killed between linking it into place and removing it: it *is* a restored file now.
                part.unlink()
        fd = os.open(part, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "r+b") as f:
            h = hashlib.sha256()
            have = 0
            while block := f.read(READ):
                h.update(block)
                have += len(block)
            if have > e.size or (have and not self.source.ranges):
                f.seek(0)
                f.truncate()
                h, have = hashlib.sha256(), 0
            if have < e.size:
                with self.source.open(e.asset_id, have) as resp:
                    if resp.status_code >= 400:
                        resp.read()
                        raise problem_from(resp)
                    if have and resp.status_code != 206:  # the whole file after all: start over
                        f.seek(0)
                        f.truncate()
                        h, have = hashlib.sha256(), 0
                    for block in resp.iter_bytes(READ):
                        if have + len(block) > e.size:
                            raise _Mismatch(f"the server sent more than the {e.size} bytes it recorded")
                        f.write(block)
                        h.update(block)
                        have += len(block)
                        self.progress.advance(len(block))
                        if self._stop.is_set():
                            raise AgentError("the restore was interrupted")
            f.flush()
            os.fsync(f.fileno())
        if have != e.size or h.hexdigest() != e.sha256:
            raise _Mismatch(f"got {have} bytes hashing to {h.hexdigest()[:12]}...")

    def _copy(self, part: Path, e: Entry) -> Path:
        """A verified local copy of the downloaded bytes for another place of the same file."""
        copy = self.partial / f"{e.sha256}.copy"
        # A copy left by a killed run may be linked into place already: never write through it.
        copy.unlink(missing_ok=True)
        h = hashlib.sha256()
        out = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with open(part, "rb") as src, os.fdopen(out, "wb") as dst:
            while block := src.read(READ):
                dst.write(block)
                h.update(block)
            dst.flush()
            os.fsync(dst.fileno())
        if h.hexdigest() != e.sha256:
            copy.unlink(missing_ok=True)
            raise _Mismatch(f"the downloaded copy changed on this disk before it was placed ({e.sha256[:12]}...)")
        return copy

    # --- bytes in place -----------------------------------------------------------------------------
    def _parent(self, rel: bytes) -> tuple[int, bytes]:
        """A descriptor of ``rel``'s directory (made as needed, no link followed) and its file name."""
        *dirs, name = rel.split(b"/")
        fd = os.dup(self.dest_fd)
        try:
            for d in dirs:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(d, 0o755, dir_fd=fd)
                nxt = os.open(d, _NOFOLLOW_DIR, dir_fd=fd)
                os.close(fd)
                fd = nxt
        except BaseException:
            os.close(fd)
            raise
        return fd, name

    def _identical_at(self, e: Entry, rel: bytes) -> bool:
        """True when a regular file with exactly these bytes is at ``rel`` already."""
        try:
            fd, name = self._parent(rel)
        except FileNotFoundError:
            return False
        try:
            return _same_bytes(fd, name, e)
        finally:
            os.close(fd)

    def _place(self, source: Path, e: Entry) -> bytes | None:
        """Put ``source`` (verified bytes) at ``e.rel``, or next to a different file that holds it; returns
        where, or None when an identical file was there.  Consumes ``source``."""
        # The mtime first: a file appears in place complete, even if the restore is killed right after.
        if e.mtime_ns:  # 0: an importer that knew no time
            os.utime(source, ns=(e.mtime_ns, e.mtime_ns))
        word = 0
        rel = e.rel
        while True:
            fd, name = self._parent(rel)
            try:
                if _put(source, fd, name):
                    os.fsync(fd)
                    self.journal.mark(e.rel, e.sha256, e.size, rel)
                    return rel
                if _same_bytes(fd, name, e):
                    source.unlink(missing_ok=True)
                    self.journal.mark(e.rel, e.sha256, e.size, rel)
                    return None
            finally:
                os.close(fd)
            word += 1
            rel = numbered(e.rel, word, b"restored")


def _put(source: Path, fd: int, name: bytes) -> bool:
    """Move ``source`` to ``name`` in directory ``fd`` unless something is there (False then)."""
    try:
        os.link(source, name, dst_dir_fd=fd, follow_symlinks=False)
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in _NO_LINKS:
            raise
        return _copy_new(source, fd, name)
    source.unlink()
    return True


def _copy_new(source: Path, fd: int, name: bytes) -> bool:
    """Where there are no hard links (FAT, exFAT): create ``name`` only if it does not exist, copy into it."""
    try:
        out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=fd)
    except FileExistsError:
        return False
    try:
        with open(source, "rb") as src, os.fdopen(out, "wb") as dst:
            shutil.copyfileobj(src, dst, READ)
            dst.flush()
            os.fsync(dst.fileno())
            st = os.stat(source)
            os.utime(dst.fileno(), ns=(st.st_atime_ns, st.st_mtime_ns))
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(name, dir_fd=fd)
        raise
    source.unlink()
    return True


def _same_bytes(fd: int, name: bytes, e: Entry) -> bool:
    try:
        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    if not _regular(st.st_mode) or st.st_size != e.size:
        return False
    h = hashlib.sha256()
    try:
        f = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=fd)
    except PermissionError:
        return False  # not readable: not known to be ours, so ours goes next to it
    with os.fdopen(f, "rb") as src:
        st2 = os.fstat(src.fileno())
        if not _regular(st2.st_mode) or st2.st_size != e.size:
            return False
        while block := src.read(READ):
            h.update(block)
    return h.hexdigest() == e.sha256


def _regular(mode: int) -> bool:
    return stat.S_ISREG(mode)


def _os_reason(exc: OSError, rel: bytes) -> str:
    where = f" at {wire.display_name(rel)}" if rel else ""
    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
        return (f"a symbolic link or a file stands where a folder must be{where}; camroll does not write "
                "through links. Fix: move it away and run the restore again")
    if exc.errno == errno.ENOSPC:
        return "the destination disk is full. Fix: free space (or restore to a bigger disk) and run it again"
    if exc.errno in (errno.EACCES, errno.EROFS):
        return f"the destination is not writable{where} ({exc.strerror}). Fix: check its permissions"
    if exc.errno == errno.ENAMETOOLONG:
        return f"the name is too long for this file system{where}"
    return f"{exc.strerror or exc}{where}"
