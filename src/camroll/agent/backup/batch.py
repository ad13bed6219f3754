"""The batch stage's client: many small files in one request (``POST wire.BATCH_PATH``; the format is in wire.py).

Narrow on purpose: :func:`send_batch` takes files already hashed and gives back one
:class:`FileResult` per file, in order; the caller maps each to that file's own state.  Nothing here
touches the state DB.

A batch cut mid-request (a dropped connection, a server restart) is not sent again whole: the server
commits every file that arrived whole and verified, so the next attempt first asks ``/assets/check``
which of the batch's hashes it now has, and sends only the rest.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import httpx

from camroll import wire

# Files up to this size go in batches; larger ones through tus (resumable mid-file).
THRESHOLD = 1 * 2**20
MAX_FILES = 500
MAX_BYTES = 32 * 2**20
_PIECE = 2**20
_WRITE = 256 * 2**10
ATTEMPTS = 3


class Outcome(enum.Enum):
    STORED = "stored"            # new on the server, verified by its SHA-256
    ALREADY_THERE = "already"    # the server had these bytes already; this path is recorded
    REFUSED = "refused"          # the server refused this file: ``code`` says why
    NOT_SENT = "not_sent"        # the batch could not be delivered (after retries): send it another way


@dataclass(frozen=True)
class BatchFile:
    local: str  # where to read it
    size: int
    sha256: str
    path: str = ""
    filename: str | None = None
    mtime_ns: int | None = None
    path_raw: str | None = None

    def entry(self) -> wire.BatchEntry:
        return wire.BatchEntry(size=self.size, sha256=self.sha256, path=self.path, filename=self.filename,
                               mtime_ns=self.mtime_ns, path_raw=self.path_raw)


@dataclass(frozen=True)
class FileResult:
    file: BatchFile
    outcome: Outcome
    asset_id: int | None = None
    code: wire.BatchRefusal | None = None
    detail: str = ""
    fix: str = ""


# A file's refusal in a batch, as the problem (HTTP status, code) the same file would meet through tus.
AS_PROBLEM: dict[str, tuple[int, str]] = {
    "quota_exceeded": (413, "quota_exceeded"), "storage_full": (507, "storage_full"),
    "file_too_large": (413, "file_too_large"), "unsupported_media_type": (415, "unsupported_media_type"),
}


class BatchUnsupported(Exception):
    """The server has no batch endpoint (an older server): send the files through tus."""


def plan(files: Sequence[BatchFile], max_files: int = MAX_FILES, max_bytes: int = MAX_BYTES) -> list[list[BatchFile]]:
    """Split files into batches within the bounds (order kept)."""
    out: list[list[BatchFile]] = []
    cur: list[BatchFile] = []
    size = 0
    for f in files:
        if cur and (len(cur) >= max_files or size + f.size > max_bytes):
            out.append(cur)
            cur, size = [], 0
        cur.append(f)
        size += f.size
    if cur:
        out.append(cur)
    return out


def encode_head(files: Sequence[BatchFile]) -> bytes:
    manifest = json.dumps({"files": [f.entry().model_dump(exclude_none=True) for f in files]},
                          separators=(",", ":")).encode()
    return wire.BATCH_MAGIC + len(manifest).to_bytes(4, "big") + manifest


def _body(head: bytes, files: Sequence[BatchFile], pace: Callable[[int], None] | None,
          sent: Callable[[BatchFile], None] | None) -> Iterator[bytes]:
    # Small files are joined into writes of about _WRITE bytes: one socket write per 10 KB photo cost
    # the agent and the server's event loop more than the bytes did.
    out: list[bytes] = [head]
    queued = len(head)
    for f in files:
        left = f.size
        # The declared size frames the body: a file that shrank is padded and one that grew is cut, so
        # its hash differs and it alone is refused (checksum_mismatch) while the rest still count.
        try:
            with open(f.local, "rb") as fh:
                while left > 0:
                    piece = fh.read(min(_PIECE, left))
                    if not piece:
                        break
                    left -= len(piece)
                    if pace is not None:
                        pace(len(piece))
                    out.append(piece)
                    queued += len(piece)
                    if queued >= _WRITE:
                        yield b"".join(out)
                        out, queued = [], 0
        except OSError:
            pass
        if left:
            out.append(bytes(left))
            queued += left
        if sent is not None:
            sent(f)
    if out:
        yield b"".join(out)


def _check(client: httpx.Client, files: Sequence[BatchFile]) -> dict[str, int]:
    items = [wire.CheckItem(sha256=f.sha256, path=f.path or None, filename=f.filename, mtime_ns=f.mtime_ns,
                            path_raw=f.path_raw) for f in files]
    r = client.post(f"{wire.API_PREFIX}/assets/check",
                    json=wire.CheckRequest(items=items).model_dump(mode="json", exclude_none=True))
    r.raise_for_status()
    return wire.CheckResponse.model_validate(r.json()).present


def _problem(r: httpx.Response) -> tuple[str, str]:
    try:
        p = wire.Problem.model_validate(r.json())
        return p.detail, p.fix or ""
    except Exception:
        return f"HTTP {r.status_code}", ""


def send_batch(client: httpx.Client, files: Sequence[BatchFile], *, pace: Callable[[int], None] | None = None,
               sent: Callable[[BatchFile], None] | None = None, attempts: int = ATTEMPTS,
               timeout: float = 300.0) -> list[FileResult]:
    """Send ``files`` (within the bounds: see :func:`plan`) as one batch; one result per file, in order.

    A cut or a server error is retried up to ``attempts`` times, each after asking which files the
    server already committed.  Raises ``BatchUnsupported`` (404/405) before anything is stored."""
    results: dict[int, FileResult] = {}
    todo = list(range(len(files)))
    last = "the batch was not delivered"
    for attempt in range(attempts):
        if attempt:
            try:
                present = _check(client, [files[i] for i in todo])
            except (httpx.HTTPError, ValueError) as exc:
                last = f"could not ask the server what it stored: {exc}"
                continue
            for i in todo:
                if files[i].sha256 in present:
                    results[i] = FileResult(files[i], Outcome.STORED, present[files[i].sha256])
            todo = [i for i in todo if i not in results]
            if not todo:
                break
        batch = [files[i] for i in todo]
        head = encode_head(batch)
        length = len(head) + sum(f.size for f in batch)
        try:
            r = client.post(wire.BATCH_PATH, content=_body(head, batch, pace, sent), timeout=timeout,
                            headers={"Content-Type": wire.BATCH_CONTENT_TYPE, "Content-Length": str(length)})
        except httpx.TransportError as exc:
            last = f"the connection broke while sending the batch ({type(exc).__name__})"
            continue
        if r.status_code in (404, 405):
            raise BatchUnsupported(f"HTTP {r.status_code}")
        if r.status_code >= 500 or (r.status_code == 400 and not r.content):
            last = f"the server answered HTTP {r.status_code}"
            continue
        if r.status_code != 200:
            # The whole batch was refused (a bound, the token): the same for every file in it.
            detail, fix = _problem(r)
            for i in todo:
                results[i] = FileResult(files[i], Outcome.NOT_SENT, detail=detail, fix=fix)
            todo = []
            break
        answer = wire.BatchResponse.model_validate(r.json())
        for res in answer.results:
            if res.index >= len(batch) or res.sha256 != batch[res.index].sha256:
                continue
            i = todo[res.index]
            if res.status == "created":
                results[i] = FileResult(files[i], Outcome.STORED, res.asset_id)
            elif res.status == "duplicate":
                results[i] = FileResult(files[i], Outcome.ALREADY_THERE, res.asset_id)
            else:
                results[i] = FileResult(files[i], Outcome.REFUSED, code=res.code, detail=res.detail or "",
                                        fix=res.fix or "")
        todo = [i for i in todo if i not in results]
        if not todo:
            break
    for i in todo:
        results[i] = FileResult(files[i], Outcome.NOT_SENT, detail=last)
    return [results[i] for i in range(len(files))]
