"""Filesystem events for ``camroll agent``: which folders to watch, and when a burst of changes has
settled enough to be worth a backup pass.

The watcher only says "something changed under a folder"; the scanner still decides what is new.  So
losing an event costs latency (the periodic rescan finds the file), never a file.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from camroll.agent.log import logger

if TYPE_CHECKING:
    from watchdog.events import FileSystemEvent
    from watchdog.observers.api import BaseObserver, ObservedWatch

# Events that can mean new or changed bytes.  "opened", "closed_no_write" and "attrib" are left out on
# purpose: the agent's own hashing opens every file, and reacting to that would trigger pass after pass.
RELEVANT_EVENTS = frozenset({"created", "modified", "moved", "deleted", "closed"})

StatSig = tuple[int, int]  # (size, mtime_ns); None when the file is gone


def _stat_sig(path: str) -> StatSig | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns)


@dataclass
class _Seen:
    sig: StatSig | None
    event_at: float  # its last event
    changed_at: float  # its last event, or the last change seen without one
    first: float  # when it was first noted since a pass last took it


@dataclass
class ChangeBatcher:
    """Collects changed paths and says when a pass should start.  Each file is judged on its own: it is
    ready ``quiet`` seconds after its last event once its size and mtime have held still for ``stable``
    seconds, so a steady stream of new photos (a card being copied, a phone syncing) is backed up one
    by one as each lands, and a file still growing holds back only itself.  One that never settles (a
    long recording) is handed to a pass after ``max_wait`` anyway; the pass then records it as still
    being written.  Directory events (a folder made, moved or removed) need ``quiet`` seconds of calm.

    Thread-safe: the watcher thread calls :meth:`note`, the daemon's loop calls :meth:`ready` and
    :meth:`take`.  ``clock`` and ``stat`` are injectable so tests drive time and file sizes by hand."""

    quiet: float = 2.0
    stable: float = 1.0
    max_wait: float = 30.0
    clock: Callable[[], float] = time.monotonic
    stat: Callable[[str], StatSig | None] = _stat_sig
    _files: dict[str, _Seen] = field(default_factory=dict, init=False)
    _dirs_last: float | None = field(default=None, init=False)
    _ready: set[str] = field(default_factory=set, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def note(self, path: str, *, is_directory: bool = False) -> None:
        """Record a change.  Directories only start their quiet period: the files inside them send
        their own events."""
        now = self.clock()
        sig = None if is_directory else self.stat(path)
        with self._lock:
            if is_directory:
                self._dirs_last = now
                return
            old = self._files.get(path)
            self._files[path] = _Seen(sig, now, now, old.first if old is not None else now)
            self._ready.discard(path)

    @property
    def pending(self) -> bool:
        with self._lock:
            return bool(self._files) or self._dirs_last is not None

    def ready(self) -> bool:
        """Whether some of the changes noted so far have settled.  Each call re-checks the files that
        are not yet known to be stable, so call it every second or so."""
        now = self.clock()
        with self._lock:
            dirs = self._dirs_last is not None and now - self._dirs_last >= self.quiet
            for path, seen in self._files.items():
                if path in self._ready:
                    continue
                if now - seen.first >= self.max_wait:
                    self._ready.add(path)
                    continue
                if now - seen.event_at < self.quiet:
                    continue
                sig = self.stat(path)
                if sig != seen.sig:
                    # Changed without an event (some writers and network file systems send none).
                    seen.sig, seen.changed_at = sig, now
                elif sig is None or now - seen.changed_at >= self.stable:
                    self._ready.add(path)
            return dirs or bool(self._ready)

    def take(self) -> list[str]:
        """The settled paths (call when a pass starts); files still changing stay noted for a later pass.
        The pass scans the whole folders, so calm directory events go with it."""
        with self._lock:
            paths = sorted(self._ready)
            for p in paths:
                del self._files[p]
            self._ready.clear()
            if self._dirs_last is not None and (paths or self.clock() - self._dirs_last >= self.quiet):
                self._dirs_last = None
            return paths


class FolderWatcher:
    """Watchdog observers on the backed-up folders, kept in step with the config by
    :meth:`set_folders`.  ``ignore`` holds directories whose changes never matter (the agent's own
    state and log files, in case they live inside a watched folder)."""

    def __init__(self, on_change: Callable[[str, bool], None], ignore: Iterable[str] = ()) -> None:
        from watchdog.observers import Observer

        self._on_change = on_change
        self._ignore = tuple(os.path.join(os.path.abspath(p), "") for p in ignore)
        self._observer: BaseObserver = Observer()
        self._observer.daemon = True
        self._watches: dict[str, ObservedWatch] = {}
        self._started = False

    def _dispatch(self, event: FileSystemEvent) -> None:
        if event.event_type not in RELEVANT_EVENTS:
            return
        paths = [event.src_path, getattr(event, "dest_path", "")]
        for raw in paths:
            path = os.fsdecode(raw) if raw else ""
            # The ignored directory itself reports "modified" when a file in it changes.
            if not path or os.path.join(path, "").startswith(self._ignore):
                continue
            self._on_change(path, bool(event.is_directory))

    def set_folders(self, folders: Iterable[str]) -> list[str]:
        """Watch exactly ``folders`` (recursively).  Returns the folders that could not be watched
        (missing, or the inotify watch limit reached); the periodic rescan still covers them."""
        from watchdog.events import FileSystemEventHandler

        wanted = {os.path.abspath(f) for f in folders}
        for folder in set(self._watches) - wanted:
            self._observer.unschedule(self._watches.pop(folder))
            logger.info("stopped watching %s", folder)
        failed: list[str] = []
        handler = FileSystemEventHandler()
        handler.dispatch = self._dispatch  # type: ignore[method-assign]
        for folder in sorted(wanted - set(self._watches)):
            if not os.path.isdir(folder):
                failed.append(folder)
                continue
            try:
                self._watches[folder] = self._observer.schedule(handler, folder, recursive=True)
            except OSError as exc:
                # ENOSPC here means fs.inotify.max_user_watches is too low for this many folders.
                logger.warning("cannot watch %s (%s); new files there are found by the periodic rescan",
                               folder, exc)
                failed.append(folder)
                continue
            logger.info("watching %s", folder)
        if not self._started:
            self._observer.start()
            self._started = True
        return failed

    @property
    def watched(self) -> list[str]:
        return sorted(self._watches)

    def close(self) -> None:
        if self._started:
            self._observer.stop()
            self._observer.join(timeout=5)
