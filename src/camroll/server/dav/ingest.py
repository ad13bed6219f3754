"""A WebDAV PUT becomes an asset the way a tus creation-with-upload does: ``uploads.create`` (size,
quota and disk room refused before a byte of the body is read), then ``receive.receive`` on the event
loop (written and hashed while it arrives, fsynced or in S3 parts, verified, published, the asset and
its device path recorded, metadata and thumbnail jobs queued).

wsgidav runs in a worker thread and hands the body over with ``write``; :class:`Feed` passes it to the
coroutine in 1 MiB blocks through a small queue, so memory stays flat at any size and a stalled
receiver holds the client back rather than filling memory."""

from __future__ import annotations

import asyncio
import base64
import binascii
import concurrent.futures
import contextlib
import hashlib
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from camroll import wire
from camroll.server.context import Context
from camroll.server.problems import ProblemError
from camroll.server.services import receive, uploads
from camroll.server.services.auth import Principal
from camroll.server.services.receive import BodyInterrupted

BLOCK = 2**20
QUEUE_BLOCKS = 4


class ChecksumError(ValueError):
    """A checksum header the door cannot use, or a body that does not match it."""


class _Adler32:
    def __init__(self) -> None:
        self.value = 1

    def update(self, data: bytes) -> None:
        self.value = zlib.adler32(data, self.value)

    def digest(self) -> bytes:
        return self.value.to_bytes(4, "big")


@dataclass
class Declared:
    """The checksums a client sent with a PUT.  ``tus`` is the one ``receive`` verifies (the upload is
    discarded before it becomes an asset on a mismatch); ``sha256`` becomes the upload's declared hash;
    the others (MD5, Adler-32) are checked here before the last block is handed over."""

    tus: receive.Checksum | None = None
    sha256: str | None = None
    others: dict[str, bytes] = field(default_factory=dict)


def _hex(value: str, size: int, name: str) -> bytes:
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise ChecksumError(f"{name} is not hex; send {name} as hex digits.") from None
    if len(raw) != size:
        raise ChecksumError(f"{name} has {len(raw)} bytes, not {size}.")
    return raw


def _b64(value: str, size: int, name: str) -> bytes:
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ChecksumError(f"{name} is not base64.") from None
    if len(raw) != size:
        raise ChecksumError(f"{name} has {len(raw)} bytes, not {size}.")
    return raw


_SIZES = {"sha1": 20, "sha256": 32, "md5": 16, "adler32": 4}


def parse_checksums(oc_checksum: str | None, content_md5: str | None, digest: str | None) -> Declared:
    """``OC-Checksum: SHA1:<hex>`` (also MD5, SHA256, ADLER32; several separated by spaces),
    ``Content-MD5: <base64>``, ``Digest: sha-256=<base64>,md5=<base64>`` (RFC 3230)."""
    found: dict[str, bytes] = {}
    for item in (oc_checksum or "").split()[:8]:
        algo, _, value = item.partition(":")
        algo = algo.lower().replace("-", "")
        if algo in _SIZES:
            found[algo] = _hex(value, _SIZES[algo], f"OC-Checksum {algo.upper()}")
    if content_md5:
        found["md5"] = _b64(content_md5, 16, "Content-MD5")
    for item in (digest or "").split(",")[:8]:
        algo, _, value = item.strip().partition("=")
        algo = {"sha": "sha1", "sha-256": "sha256", "md5": "md5", "adler32": "adler32"}.get(algo.lower(), "")
        if algo:
            found[algo] = _b64(value, _SIZES[algo], f"Digest {algo}")
    out = Declared()
    if "sha256" in found:
        out.sha256 = found.pop("sha256").hex()
    if "sha1" in found:
        out.tus = receive.Checksum("sha1", found.pop("sha1"))
    out.others = found
    return out


def whole_body(declared: Declared) -> Declared:
    """The same checksums, all checked here over the whole body (a chunk whose start is already stored
    is only partly appended, so ``receive`` cannot check it)."""
    others = dict(declared.others)
    if declared.tus is not None:
        others[declared.tus.algorithm] = declared.tus.digest
    return Declared(None, None, others)


def _hasher(algo: str) -> Any:
    return _Adler32() if algo == "adler32" else hashlib.new(algo)


class Feed:
    """The body of one PUT on its way from wsgidav's thread to ``receive.receive`` on the loop.

    ``expect`` body bytes arrive; the first ``skip`` of them are already in the upload (a chunk sent
    again after a cut) and are dropped, the rest are appended at ``start``."""

    def __init__(self, ctx: Context, loop: asyncio.AbstractEventLoop, who: Principal, state: uploads.UploadState,
                 start: int, expect: int, declared: Declared, *, skip: int = 0, whole_file: bool = True) -> None:
        self.ctx, self.loop, self.who, self.state = ctx, loop, who, state
        self.expect, self.skip, self.whole_file = expect, skip, whole_file
        self.declared = declared
        self._checks = {a: _hasher(a) for a in declared.others}
        self._queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(QUEUE_BLOCKS)
        self._buf = bytearray()
        self._seen = 0
        self._done: concurrent.futures.Future[receive.Received] = asyncio.run_coroutine_threadsafe(
            receive.receive(ctx, state.id, start, state.length, self._body(), declared.tus,
                            known=state if whole_file else None), loop)

    @classmethod
    def new_file(cls, ctx: Context, loop: asyncio.AbstractEventLoop, who: Principal, length: int,
                 meta: dict[str, str], declared: Declared) -> Feed:
        """A new upload of a whole file: size, quota and disk room refused here, before the body is read."""
        if declared.sha256:
            meta[wire.META_SHA256] = declared.sha256
        return cls(ctx, loop, who, uploads.create(ctx, who, length, meta), 0, length, declared)

    async def _body(self) -> AsyncIterator[bytes]:
        while True:
            item = await self._queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def _put(self, item: bytes | BaseException | None) -> None:
        put = asyncio.run_coroutine_threadsafe(self._queue.put(item), self.loop)
        waiting: list[concurrent.futures.Future[Any]] = [put, self._done]
        concurrent.futures.wait(waiting, return_when=concurrent.futures.FIRST_COMPLETED)
        if not put.done():
            # The receiver ended (refused the body): its answer is the request's.
            put.cancel()
            self._done.result()
            raise ProblemError(409, "conflict", "The upload ended before the body did.", "Send the file again.")

    def write(self, data: bytes) -> None:
        if self._seen + len(data) > self.expect:
            raise ProblemError(400, "bad_request", f"The body is longer than its Content-Length {self.expect}.",
                               "Send Content-Length with the exact size.")
        before = self._seen
        self._seen += len(data)
        for h in self._checks.values():
            h.update(data)
        if before < self.skip:
            data = data[self.skip - before:]
        self._buf += data
        if self._seen == self.expect:
            self._verify()
        if len(self._buf) >= BLOCK:
            self._put(bytes(self._buf))
            self._buf.clear()

    def _verify(self) -> None:
        for algo, h in self._checks.items():
            if h.digest() != self.declared.others[algo]:
                raise ChecksumError(f"The body's {algo.upper()} does not match the one the client sent; "
                                    "nothing was stored.")

    def finish(self) -> receive.Received:
        """What the upload holds once this body is stored (a whole file: its asset id); raises what the
        upload met, ``BodyInterrupted`` for a body shorter than announced."""
        if self._seen != self.expect:
            raise BodyInterrupted
        if self._buf:
            self._put(bytes(self._buf))
            self._buf.clear()
        self._put(None)
        got = self._done.result()
        if self.whole_file and got.asset_id is None:
            raise ProblemError(500, "internal", "The upload did not complete.", "Send the file again.")
        return got

    def abandon(self) -> None:
        """The body failed: stop the receiver (it keeps what arrived of a chunk), and end the upload of a
        whole file (a WebDAV PUT is not resumed)."""
        # Each step may meet the failure that brought us here; none of it may hide the request's answer.
        if not self._done.done():
            with contextlib.suppress(Exception):
                self._put(BodyInterrupted())
        with contextlib.suppress(BaseException):
            self._done.result(timeout=60)
        if not self.whole_file:
            return
        # Already discarded by a refusal, or still busy: then the expiry sweep ends it.
        with contextlib.suppress(Exception):
            uploads.terminate(self.ctx, self.who, self.state.id)
