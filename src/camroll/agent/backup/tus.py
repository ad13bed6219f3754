"""A small tus 1.0 client (core, creation, creation-with-upload, checksum, termination) over a shared
``httpx.Client``.  One method per request; retry and resume decisions live in :mod:`uploader`."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from camroll import wire
from camroll.agent.api import problem_from

OCTET = "application/offset+octet-stream"


# Pieces a chunk is read and sent in: small, so a chunk (64 MiB by default) never sits in memory
# whole (large temporary buffers also defeat glibc's mmap threshold and bloat the heap).
PIECE = 1024 * 1024


class SourceChanged(Exception):
    """The file is shorter than the range being sent: it changed since it was hashed."""


@dataclass(frozen=True)
class FileRange:
    """``length`` bytes of an open file from ``offset``, read in pieces while sending.

    ``sha256`` is the range's digest when the caller already knows it (computed in the hash pass: the
    whole file's digest for a file sent in one request, or a per-chunk digest); otherwise the range
    is read once more just to compute the tus checksum.  Either way, bytes that differ from the
    digest are rejected by the server's chunk checksum."""

    fd: int
    offset: int
    length: int
    sha256: bytes | None = None
    # False: send no Upload-Checksum, so the server keeps every byte that arrives before a cut (a
    # checksummed body that is cut is discarded whole); the whole-file SHA-256 still decides.
    checksum: bool = True

    def _pieces(self) -> Iterator[bytes]:
        pos, end = self.offset, self.offset + self.length
        while pos < end:
            data = os.pread(self.fd, min(PIECE, end - pos), pos)
            if not data:
                raise SourceChanged(f"file ended at byte {pos}, expected {end}")
            pos += len(data)
            yield data

    def checksum_header(self) -> str:
        if self.sha256 is not None:
            return "sha256 " + base64.b64encode(self.sha256).decode("ascii")
        h = hashlib.sha256()
        for piece in self._pieces():
            h.update(piece)
        return "sha256 " + base64.b64encode(h.digest()).decode("ascii")

    def __iter__(self) -> Iterator[bytes]:
        return self._pieces()


class UploadGone(Exception):
    """The server no longer knows the upload (404 Not Found or 410 Gone/expired)."""


@dataclass(frozen=True)
class PatchResult:
    offset: int
    asset_id: int | None


def checksum_header(data: bytes | memoryview) -> str:
    return "sha256 " + base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


def _asset_id(resp: httpx.Response) -> int | None:
    raw = resp.headers.get(wire.ASSET_ID_HEADER)
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def _offset(resp: httpx.Response) -> int:
    raw = resp.headers.get("Upload-Offset")
    if raw is None or not raw.strip().isdigit():
        raise problem_from(resp) if resp.status_code >= 400 else ValueError("response lacks Upload-Offset")
    return int(raw)


class TusClient:
    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        self._base = {"Tus-Resumable": wire.TUS_VERSION}

    def _url(self, location: str) -> str:
        # Keep only the path: uploads always live on the server we talk to, and this keeps working
        # behind proxies that do not rewrite Location.
        parts = urlsplit(location)
        path = parts.path if parts.path.startswith("/") else wire.UPLOADS_PATH + parts.path
        return path + (f"?{parts.query}" if parts.query else "")

    def create(self, size: int, metadata: dict[str, str],
               body: FileRange | None = None) -> tuple[str, PatchResult]:
        """POST a new upload; with ``body`` (creation-with-upload) the first bytes travel in the same
        request.  Returns the upload URL (path) and the resulting offset/asset id."""
        headers = {**self._base, "Upload-Length": str(size),
                   "Upload-Metadata": wire.encode_upload_metadata(metadata)}
        if body is not None:
            headers["Content-Type"] = OCTET
            if body.checksum:
                headers["Upload-Checksum"] = body.checksum_header()
            # An explicit length makes httpx send a plain body rather than chunked encoding.
            headers["Content-Length"] = str(body.length)
            resp = self.client.post(wire.UPLOADS_PATH, headers=headers, content=iter(body))
        else:
            resp = self.client.post(wire.UPLOADS_PATH, headers=headers, content=b"")
        if resp.status_code != 201:
            raise problem_from(resp)
        location = resp.headers.get("Location")
        if not location:
            raise problem_from(resp)
        offset = int(resp.headers.get("Upload-Offset", "0") or 0)
        return self._url(location), PatchResult(offset, _asset_id(resp))

    def head(self, url: str) -> int:
        """The server's offset for ``url``; raises ``UploadGone`` when it no longer exists."""
        resp = self.client.head(url, headers=self._base)
        if resp.status_code in (404, 410):
            raise UploadGone(url)
        if resp.status_code >= 400:
            raise problem_from(resp)
        return _offset(resp)

    def patch(self, url: str, offset: int, data: bytes | FileRange) -> PatchResult:
        headers = {**self._base, "Content-Type": OCTET, "Upload-Offset": str(offset)}
        if isinstance(data, FileRange):
            if data.checksum:
                headers["Upload-Checksum"] = data.checksum_header()
            headers["Content-Length"] = str(data.length)
            resp = self.client.patch(url, headers=headers, content=iter(data))
        else:
            headers["Upload-Checksum"] = checksum_header(data)
            resp = self.client.patch(url, headers=headers, content=data)
        if resp.status_code in (404, 410):
            raise UploadGone(url)
        if resp.status_code not in (200, 201, 204):
            raise problem_from(resp)
        return PatchResult(_offset(resp), _asset_id(resp))

    def delete(self, url: str) -> None:
        """Terminate an upload; best effort, a missing upload is fine."""
        resp = self.client.delete(url, headers=self._base)
        if resp.status_code >= 400 and resp.status_code not in (404, 410):
            raise problem_from(resp)
