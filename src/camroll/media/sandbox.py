"""Media work on untrusted files in child processes with a wall-time, CPU and memory limit, so no
file can freeze or exhaust the process that asks (the server and its job workers).

A ``Sandbox`` keeps a few long-lived children (``python -m camroll.media.sandbox_child``), one per
caller at a time: each request is one operation on one file (read its metadata, make its
thumbnails), sent as a length-prefixed JSON frame over the child's stdin and answered on its stdout.
Long-lived, because a child costs ~0.6 s of imports to start while a request to a warm one costs a
fraction of a millisecond (figures in bench/sandbox_overhead.py); a child is replaced after
``jobs_per_child`` requests, and whenever it fails in a way that may leave it damaged (a timeout,
memory exhausted, a crash).

The limits: the child sets its own ``RLIMIT_AS`` (address space, which ffprobe and ffmpeg, its own
children, inherit) and, before each request, ``RLIMIT_CPU`` to its CPU time so far plus the budget;
the parent kills the child's whole process group when a request outlives the wall-time limit.
Every failure comes back as ``SandboxFailure`` carrying a ``Failure``: its kind, a sentence for the
asset's record, and whether it is transient (retry later: the disk is full, a child could not be
started) or a verdict on the file (permanent until an admin retries it).
"""

from __future__ import annotations

import contextlib
import enum
import errno as errno_mod
import json
import os
import selectors
import signal
import struct
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from camroll.media.errors import MediaError

_HEADER = struct.Struct(">I")
MAX_FRAME = 16 << 20
DEFAULT_TIMEOUT = 60.0
DEFAULT_MEMORY = 1 << 30
# Imports (Pillow, pillow-heif, pydantic) on a busy two-core machine; not charged to any file.
START_TIMEOUT = 60.0
# Beyond this a child is retired: long-lived decoders fragment their heap.
JOBS_PER_CHILD = 500
CHILD_MODULE = "camroll.media.sandbox_child"


class FailureKind(enum.StrEnum):
    TIMEOUT = "timeout"  # over the wall-time or CPU limit
    OUT_OF_MEMORY = "out_of_memory"  # over the memory limit
    CRASHED = "crashed"  # the decoder died (a signal) or broke the protocol
    UNREADABLE = "unreadable"  # the file is corrupt or of a kind camroll cannot decode
    TOOL_MISSING = "tool_missing"  # ffprobe/ffmpeg are not installed
    INTERNAL = "internal"  # a camroll bug met on this file
    TRANSIENT = "transient"  # not about the file: a full disk, no child could be started


_CHILD_ENV = {"PATH", "PYTHONPATH", "PYTHONHOME", "PYTHONSAFEPATH", "LANG", "TMPDIR", "TZ", "HOME"}
_TRANSIENT_ERRNOS = {errno_mod.ENOSPC, errno_mod.EDQUOT, errno_mod.EAGAIN, errno_mod.ENOMEM, errno_mod.EMFILE,
                     errno_mod.ENFILE}


@dataclass(frozen=True)
class Failure:
    kind: FailureKind
    reason: str  # one sentence for the asset's record
    errno: int | None = None  # the OS error behind a transient failure, when there is one

    @property
    def transient(self) -> bool:
        """True when retrying later may succeed with the same file (the cause is elsewhere)."""
        return self.kind is FailureKind.TRANSIENT


class SandboxFailure(MediaError):
    """A sandboxed operation failed; ``failure`` says how, ``str()`` is its sentence."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.reason)
        self.failure = failure

    @property
    def transient(self) -> bool:
        return self.failure.transient


@dataclass(frozen=True)
class Limits:
    timeout_seconds: float = DEFAULT_TIMEOUT  # wall time per request
    memory_bytes: int = DEFAULT_MEMORY  # address space of the child and of each program it runs
    cpu_seconds: float | None = None  # CPU time per request; None: the wall-time limit

    @property
    def cpu(self) -> float:
        return self.cpu_seconds if self.cpu_seconds is not None else self.timeout_seconds


def memory_words(n: int) -> str:
    if n >= 1 << 30 and n % (1 << 30) == 0:
        return f"{n >> 30} GiB"
    return f"{n / (1 << 20):.0f} MiB"


def classify_os_error(exc: OSError) -> Failure:
    """An OSError met while working on a file: transient when the system, not the file, is at fault."""
    if exc.errno in _TRANSIENT_ERRNOS:
        text = os.strerror(exc.errno) if exc.errno is not None else str(exc)
        return Failure(FailureKind.TRANSIENT, f"The server could not finish this file ({text}); "
                       "it is tried again when the cause clears.", exc.errno)
    return Failure(FailureKind.UNREADABLE, f"The file could not be read ({exc.strerror or exc}).", exc.errno)


class _Child:
    """One child process and its two pipes."""

    def __init__(self, limits: Limits) -> None:
        # Only what Python and ffmpeg need: the server's database URL, tokens and storage keys stay out
        # of reach of a decoder a file may have taken over.
        env = {k: v for k, v in os.environ.items() if k in _CHILD_ENV or k.startswith("LC_")}
        env.update(CAMROLL_SANDBOX_MEMORY=str(limits.memory_bytes),
                   # Each malloc arena reserves 64 MiB of address space; two keep RLIMIT_AS about real use.
                   MALLOC_ARENA_MAX="2")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", CHILD_MODULE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=None, env=env, start_new_session=True, close_fds=True)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._in = self.proc.stdin
        self._out = self.proc.stdout.fileno()
        self.jobs = 0
        self.maxrss_kib = 0
        self._eof = False
        self.broken = False  # it sent something that is not a reply
        reply = self._read(time.monotonic() + START_TIMEOUT)
        if reply is None or reply.get("ready") is not True:
            self.kill()
            raise SandboxFailure(Failure(FailureKind.TRANSIENT, "The media sandbox could not start; "
                                         "background jobs are tried again later."))

    def call(self, request: dict[str, Any], limits: Limits) -> dict[str, Any]:
        """The child's reply to one request; SandboxFailure if the child outlived the limit or died."""
        self.jobs += 1
        body = json.dumps({**request, "cpu_seconds": limits.cpu}).encode()
        try:
            self._in.write(_HEADER.pack(len(body)) + body)
            self._in.flush()
        except OSError:
            raise SandboxFailure(self._death(limits)) from None
        reply = self._read(time.monotonic() + limits.timeout_seconds)
        if reply is None:
            if self.broken:
                raise SandboxFailure(Failure(FailureKind.CRASHED, "The decoder broke off while reading this file."))
            if self.proc.poll() is None and not self._eof:
                self.kill()
                raise SandboxFailure(Failure(FailureKind.TIMEOUT, (
                    f"Reading this file took over {limits.timeout_seconds:g} s, the limit for one file "
                    "(CAMROLL_JOB_TIMEOUT); it is likely damaged or built to stall decoders.")))
            raise SandboxFailure(self._death(limits))
        return reply

    def _read(self, deadline: float) -> dict[str, Any] | None:
        """One frame, or None at the deadline or when the child closed its end."""
        header = self._read_exact(_HEADER.size, deadline)
        if header is None:
            return None
        (n,) = _HEADER.unpack(header)
        body = self._read_exact(n, deadline) if n <= MAX_FRAME else None
        try:
            value = json.loads(body) if body is not None else None
        except ValueError:
            value = None
        if (body is not None and not isinstance(value, dict)) or n > MAX_FRAME:
            self.broken = True
            self.kill()
            return None
        return value

    def _read_exact(self, n: int, deadline: float) -> bytes | None:
        buf = bytearray()
        with selectors.DefaultSelector() as sel:
            sel.register(self._out, selectors.EVENT_READ)
            while len(buf) < n:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    return None
                chunk = os.read(self._out, n - len(buf))
                if not chunk:
                    self._eof = True
                    return None
                buf += chunk
        return bytes(buf)

    def _death(self, limits: Limits) -> Failure:
        """Why the child stopped answering, from how it ended."""
        code = self._reap(timeout=5.0)
        big = self.maxrss_kib * 1024 >= limits.memory_bytes // 2
        mem = memory_words(limits.memory_bytes)
        if code == -signal.SIGXCPU:
            return Failure(FailureKind.TIMEOUT, (
                f"Reading this file used over {limits.cpu:g} s of CPU time, the limit for one file "
                "(CAMROLL_JOB_TIMEOUT); it is likely damaged or built to stall decoders."))
        if code is not None and code < 0:
            name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
            if big or code == -signal.SIGKILL:
                return Failure(FailureKind.OUT_OF_MEMORY, (
                    f"Decoding this file needed more than the {mem} memory limit (CAMROLL_JOB_MEMORY) "
                    f"and the decoder was stopped ({name})."))
            return Failure(FailureKind.CRASHED, f"The decoder crashed on this file ({name}); it is likely damaged.")
        return Failure(FailureKind.CRASHED, f"The decoder stopped unexpectedly on this file (exit status {code}).")

    def _reap(self, timeout: float) -> int | None:
        """The child's exit code once it has exited (killed after ``timeout``), keeping its peak RSS."""
        deadline = time.monotonic() + timeout
        flags = os.WNOHANG
        while self.proc.returncode is None:
            try:
                pid, status, usage = os.wait4(self.proc.pid, flags)
            except ChildProcessError:
                break
            if pid:
                self.maxrss_kib = usage.ru_maxrss
                self.proc.returncode = os.waitstatus_to_exitcode(status)
            elif time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                flags = 0
            else:
                time.sleep(0.01)
        return self.proc.returncode

    def kill(self) -> None:
        """Stop the child and whatever it started (ffmpeg), and reap it."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            self._in.close()
        if self.proc.returncode is None:
            with contextlib.suppress(ChildProcessError):
                self.proc.wait()
        with contextlib.suppress(OSError):
            self.proc.stdout.close()  # type: ignore[union-attr]

    def close(self) -> None:
        """Ask the child to exit (EOF on its stdin), then make sure it did."""
        with contextlib.suppress(OSError):
            self._in.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=2)
        self.kill()


class Sandbox:
    """Children that do media work under ``limits``; safe to share between threads (each call takes
    a child of its own)."""

    def __init__(self, limits: Limits | None = None, *, jobs_per_child: int = JOBS_PER_CHILD) -> None:
        self.limits = limits or Limits()
        self.jobs_per_child = jobs_per_child
        self._idle: list[_Child] = []
        self._lock = threading.Lock()
        self._closed = False
        self.started = 0  # children started so far (tests and benchmarks read it)
        self._finalizer = weakref.finalize(self, Sandbox._close_all, self._idle)

    # --- operations -------------------------------------------------------------------------------
    def extract(self, path: Path, *, mime: str | None = None, mtime: float | None = None) -> Any:
        """``metadata.extract`` in a child: a ``MediaInfo``."""
        from camroll.media.metadata import MediaInfo

        reply = self.call({"op": "extract", "path": str(path), "mime": mime, "mtime": mtime})
        return MediaInfo.model_validate(reply)

    def thumbnails(self, path: Path, outs: Sequence[tuple[int, Path]], *, mime: str | None = None) -> list[Any]:
        """``thumbs.make_thumbnails`` in a child, which writes the files (atomically) where asked."""
        from camroll.media.thumbs import ThumbResult

        reply = self.call({"op": "thumbnails", "path": str(path), "mime": mime,
                           "outs": [[size, str(out)] for size, out in outs]})
        return [ThumbResult(**r) for r in reply]

    def ping(self) -> None:
        """A round trip to a child (benchmarks, health)."""
        self.call({"op": "ping"})

    # --- machinery --------------------------------------------------------------------------------
    def call(self, request: dict[str, Any]) -> Any:
        """The ``ok`` value of the child's reply; SandboxFailure for every way it can fail."""
        child = self._take()
        healthy = False
        try:
            reply = child.call(request, self.limits)
            error = reply.get("error")
            if isinstance(error, dict):
                kind = error.get("kind")
                failure = Failure(FailureKind(kind) if kind in set(FailureKind) else FailureKind.INTERNAL,
                                  str(error.get("reason") or "The decoder failed on this file."),
                                  error.get("errno") if isinstance(error.get("errno"), int) else None)
                # A child that ran out of memory may have damaged state: it has already exited.
                healthy = failure.kind not in (FailureKind.OUT_OF_MEMORY, FailureKind.INTERNAL)
                raise SandboxFailure(failure)
            healthy = True
            return reply.get("ok")
        finally:
            self._give(child, healthy)

    def _take(self) -> _Child:
        with self._lock:
            if self._closed:
                raise SandboxFailure(Failure(FailureKind.TRANSIENT, "The media sandbox is shutting down."))
            while self._idle:
                child = self._idle.pop()
                if child.proc.poll() is None:
                    return child
                child.kill()
            self.started += 1
        try:
            return _Child(self.limits)
        except OSError as exc:
            raise SandboxFailure(Failure(FailureKind.TRANSIENT, (
                f"The media sandbox could not start a process ({exc.strerror or exc}); "
                "background jobs are tried again later."), exc.errno)) from exc

    def _give(self, child: _Child, healthy: bool) -> None:
        keep = healthy and child.jobs < self.jobs_per_child and child.proc.poll() is None
        with self._lock:
            if keep and not self._closed:
                self._idle.append(child)
                return
        child.kill() if not healthy else child.close()

    def close(self) -> None:
        """Stop every idle child (a call in progress keeps its child until it returns)."""
        with self._lock:
            self._closed = True
        self._finalizer()

    @staticmethod
    def _close_all(idle: list[_Child]) -> None:
        while idle:
            idle.pop().close()

