"""Chunked uploads under ``/dav/uploads/USER/FOLDER/`` (Nextcloud chunking v2, as rclone's ``nextcloud``
vendor and the Nextcloud clients speak it): MKCOL the folder, PUT the chunks, MOVE ``FOLDER/.file`` to
the file's path, DELETE the folder to give up.

One folder is one upload row: each chunk is appended through ``receive.receive`` (so its bytes are in
the part store, local or S3, durable before they count, and the upload expires with the existing sweep
once abandoned).  The total is unknown until the MOVE (rclone sends no OC-Total-Length), so the row's
length is kept one byte past the bytes received (``uploads.resize``): no chunk completes it; the MOVE
sets the length to the bytes received, the path from Destination, and completes it like a tus upload.

Chunk names: rclone's byte ranges (``%015d-%015d``, first and last byte) or v2's numbers (1-10000, in
order).  A chunk sent again after a cut has its already stored start dropped and the rest appended; a
chunk whose start is past the bytes received (one missing) is refused with 409."""

from __future__ import annotations

import re
import secrets
import time
from functools import partial
from typing import Any

from sqlalchemy import delete, insert, select, update
from wsgidav.dav_error import HTTP_BAD_REQUEST, HTTP_CONFLICT, HTTP_FORBIDDEN, DAVError
from wsgidav.dav_provider import DAVCollection, DAVNonCollection

from camroll import wire
from camroll.server.dav import paths
from camroll.server.dav.ingest import ChecksumError, Feed, parse_checksums, whole_body
from camroll.server.dav.provider import Caller, Sink, caller, dav_error, own_tree, placed
from camroll.server.models import DavChunk, DavUpload, utcnow
from camroll.server.problems import ProblemError
from camroll.server.services import quota, uploads
from camroll.server.services.receive import BodyInterrupted

_RANGE = re.compile(r"^([0-9]{15})-([0-9]{15})$")
_NUMBER = re.compile(r"^[0-9]{1,5}$")
MAX_CHUNKS = 10_000
MAX_UPLOAD_FOLDERS = 1000
ASSEMBLE = ".file"
# A retry that arrives while this server still writes the cut request's bytes waits this long for it.
BUSY_WAIT_SECONDS = 10.0


def _row(c: Caller, name: str) -> Any:
    with c.ctx.conn() as conn:
        return conn.execute(select(DavUpload.id, DavUpload.upload_id, DavUpload.total_length).where(
            DavUpload.device_id == c.device_id, DavUpload.name == name)).first()


def _chunks(c: Caller, dav_id: int) -> dict[str, tuple[int, int]]:
    with c.ctx.conn() as conn:
        return {n: (int(s), int(z)) for n, s, z in conn.execute(
            select(DavChunk.name, DavChunk.start, DavChunk.size).where(DavChunk.dav_upload_id == dav_id))}


def _wait_idle(c: Caller, upload_id: str) -> None:
    deadline = time.monotonic() + BUSY_WAIT_SECONDS
    while upload_id in c.ctx.busy or uploads.writing_elsewhere(c.ctx, upload_id):
        if time.monotonic() > deadline:
            raise DAVError(423, "Another request is still writing to this upload. Fix: retry shortly.")
        time.sleep(0.05)


class Home(DAVCollection):
    """``/dav/uploads/USER/``: the device's chunked uploads in progress."""

    def __init__(self, path: str, environ: dict[str, Any]) -> None:
        super().__init__(path, environ)
        self.c = caller(environ)

    def get_member_names(self) -> list[str]:
        with self.c.ctx.conn() as conn:
            return list(conn.scalars(select(DavUpload.name).where(DavUpload.device_id == self.c.device_id)
                                     .order_by(DavUpload.id).limit(MAX_UPLOAD_FOLDERS)))

    def get_member(self, name: str) -> Any:
        return resource(f"{self.path.rstrip('/')}/{name}", self.environ, name)

    def create_collection(self, name: str) -> None:
        if _NUMBER.match(name) is None and len(name) > 200:
            raise DAVError(HTTP_BAD_REQUEST, "An upload folder name is at most 200 characters.")
        total: int | None = None
        if (text := self.environ.get("HTTP_OC_TOTAL_LENGTH")) is not None:
            try:
                total = wire.parse_int64(text.strip())
            except ValueError:
                raise DAVError(HTTP_BAD_REQUEST, "OC-Total-Length must be a byte count.") from None
        if len(self.get_member_names()) >= MAX_UPLOAD_FOLDERS:
            raise DAVError(HTTP_FORBIDDEN, f"This device has {MAX_UPLOAD_FOLDERS} chunked uploads open; "
                           "finish or delete some first.")
        with self.c.ctx.conn() as conn:
            if total is not None:
                # The early check chunking v2 promises: a file that cannot fit is refused before any chunk.
                try:
                    quota.ensure_fits(conn, self.c.who.user_id, total)
                except ProblemError as exc:
                    raise dav_error(exc) from None
            conn.execute(insert(DavUpload).values(device_id=self.c.device_id, name=name, total_length=total,
                                                  created_at=utcnow()))

    def get_etag(self) -> None:
        return None

    def support_etag(self) -> bool:
        return False


class Folder(DAVCollection):
    """One chunked upload: its chunks, and ``.file`` to MOVE."""

    def __init__(self, path: str, environ: dict[str, Any], name: str, row: Any) -> None:
        super().__init__(path, environ)
        self.c = caller(environ)
        self.folder, self.row = name, row

    def get_member_names(self) -> list[str]:
        return sorted(_chunks(self.c, self.row.id))

    def get_member(self, name: str) -> Any:
        return resource(f"{self.path.rstrip('/')}/{name}", self.environ, f"{self.folder}/{name}")

    def create_empty_resource(self, name: str) -> Chunk:
        return Chunk(f"{self.path.rstrip('/')}/{name}", self.environ, self.row, name, None)

    def create_collection(self, name: str) -> None:
        raise DAVError(HTTP_FORBIDDEN, "An upload folder holds chunks only.")

    def support_recursive_delete(self) -> bool:
        return True

    def delete(self) -> None:
        if self.row.upload_id is not None:
            try:
                uploads.terminate(self.c.ctx, self.c.who, self.row.upload_id)
            except ProblemError as exc:
                if exc.status != 404:
                    raise dav_error(exc) from None
        with self.c.ctx.conn() as conn:
            conn.execute(delete(DavUpload).where(DavUpload.id == self.row.id))

    def get_etag(self) -> None:
        return None

    def support_etag(self) -> bool:
        return False


def _start_of(name: str, chunks: dict[str, tuple[int, int]], length: int) -> int:
    if (m := _RANGE.match(name)) is not None:
        first, last = int(m.group(1)), int(m.group(2))
        if last - first + 1 != length:
            raise DAVError(HTTP_BAD_REQUEST, f"Chunk {name} names {last - first + 1} bytes but carries {length}.")
        return first
    if _NUMBER.match(name) is None or not 1 <= int(name) <= MAX_CHUNKS:
        raise DAVError(HTTP_BAD_REQUEST, f"A chunk is named 1 to {MAX_CHUNKS} or FIRST-LAST (15 digits each), "
                       f"not {name[:40]!r}.")
    if name in chunks:
        return chunks[name][0]
    numbered = {int(n): v for n, v in chunks.items() if _NUMBER.match(n)}
    if numbered and int(name) < max(numbered):
        raise DAVError(HTTP_CONFLICT, f"Chunk {name} arrived after a later one; send chunks in order.")
    if int(name) > 1 and int(name) - 1 not in numbered:
        raise DAVError(HTTP_CONFLICT, f"Chunk {int(name) - 1} is missing: chunks are numbered from 1 and sent in "
                       "order. Fix: send the chunks in order.")
    return sum(size for _, size in numbered.values())


class Chunk(DAVNonCollection):
    def __init__(self, path: str, environ: dict[str, Any], row: Any, name: str, have: tuple[int, int] | None) -> None:
        super().__init__(path, environ)
        self.c = caller(environ)
        self.row, self.chunk, self.have = row, name, have
        self._feed: Feed | None = None
        self._start = 0
        self._length = 0

    def get_content_length(self) -> int:
        return self.have[1] if self.have else 0

    def get_content(self) -> Any:
        raise DAVError(HTTP_FORBIDDEN, "Chunks cannot be read back; MOVE .file assembles them.")

    def get_etag(self) -> None:
        return None

    def support_etag(self) -> bool:
        return False

    def delete(self) -> None:
        raise DAVError(HTTP_FORBIDDEN, "A single chunk cannot be deleted; DELETE the upload folder.")

    def begin_write(self, *, content_type: str | None = None) -> Any:
        c = self.c
        try:
            length = wire.parse_int64(self.environ.get("CONTENT_LENGTH") or "")
        except ValueError:
            raise DAVError(411, "A chunk needs Content-Length.") from None
        chunks = _chunks(c, self.row.id)
        if len(chunks) >= MAX_CHUNKS and self.chunk not in chunks:
            raise DAVError(HTTP_FORBIDDEN, f"An upload has at most {MAX_CHUNKS} chunks.")
        start = _start_of(self.chunk, chunks, length)
        try:
            declared = parse_checksums(self.environ.get("HTTP_OC_CHECKSUM"), self.environ.get("HTTP_CONTENT_MD5"),
                                       self.environ.get("HTTP_DIGEST"))
        except ChecksumError as exc:
            raise DAVError(HTTP_BAD_REQUEST, str(exc)) from None
        try:
            upload_id = self.row.upload_id
            if upload_id is None:
                if start != 0:
                    raise DAVError(HTTP_CONFLICT, "The first chunk must start at byte 0.")
                state = uploads.create(c.ctx, c.who, length + 1, {wire.META_FILENAME: self.chunk})
                upload_id = state.id
                with c.ctx.conn() as conn:
                    conn.execute(update(DavUpload).where(DavUpload.id == self.row.id).values(upload_id=upload_id))
            _wait_idle(c, upload_id)
            state = uploads.status(c.ctx, c.who, upload_id)
            if start > state.offset:
                raise DAVError(HTTP_CONFLICT, f"Chunk {self.chunk} starts at byte {start}, but only {state.offset} "
                               "bytes arrived: a chunk before it is missing. Fix: send the chunks in order.")
            if start + length + 1 > state.length:
                state = uploads.resize(c.ctx, upload_id, start + length + 1)
        except ProblemError as exc:
            raise dav_error(exc) from None
        skip = min(length, state.offset - start)
        self._start, self._length = start, length
        self._feed = Feed(c.ctx, c.loop, c.who, state, state.offset, length,
                          declared if skip == 0 else whole_body(declared), skip=skip, whole_file=False)
        return Sink(self._feed)

    def end_write(self, *, with_errors: bool) -> None:
        feed, self._feed = self._feed, None
        if feed is None:
            return
        if with_errors:
            feed.abandon()
            return
        try:
            feed.finish()
        except BodyInterrupted:
            feed.abandon()
            raise DAVError(HTTP_BAD_REQUEST, "The chunk ended before its Content-Length; what arrived is kept. "
                           "Fix: send the chunk again.") from None
        except ProblemError as exc:
            feed.abandon()
            raise dav_error(exc) from None
        with self.c.ctx.conn() as conn:
            conn.execute(delete(DavChunk).where(DavChunk.dav_upload_id == self.row.id, DavChunk.name == self.chunk))
            conn.execute(insert(DavChunk).values(dav_upload_id=self.row.id, name=self.chunk, start=self._start,
                                                 size=self._length))


class Assembled(DAVNonCollection):
    """``FOLDER/.file``: MOVE it to the file's path to assemble the chunks into an asset."""

    def __init__(self, path: str, environ: dict[str, Any], row: Any) -> None:
        super().__init__(path, environ)
        self.c = caller(environ)
        self.row = row

    def get_content_length(self) -> int:
        return 0

    def get_content(self) -> Any:
        raise DAVError(HTTP_FORBIDDEN, "MOVE .file to the file's path to assemble the chunks.")

    def get_etag(self) -> None:
        return None

    def support_etag(self) -> bool:
        return False

    def handle_copy(self, dest_path: str, *, depth_infinity: bool) -> bool:
        raise DAVError(HTTP_FORBIDDEN, "MOVE .file (not COPY) to assemble the chunks.")

    def delete(self) -> None:
        raise DAVError(HTTP_FORBIDDEN, "DELETE the upload folder to give up.")

    def handle_move(self, dest_path: str) -> bool:
        c = self.c
        dest = own_tree(c, dest_path)
        if self.row.upload_id is None:
            raise DAVError(HTTP_BAD_REQUEST, "This upload has no chunks yet. Fix: PUT the chunks first.")
        upload_id = self.row.upload_id
        try:
            _wait_idle(c, upload_id)
            state = uploads.status(c.ctx, c.who, upload_id)
            # A MOVE whose answer was lost, sent again, finds the asset made.
            asset_id = state.asset_id or self._complete(upload_id, state.offset, dest.rel)
        except ProblemError as exc:
            raise dav_error(exc) from None
        placed(c, dest.rel, asset_id)
        with c.ctx.conn() as conn:
            conn.execute(delete(DavUpload).where(DavUpload.id == self.row.id))
        return True

    def _complete(self, upload_id: str, size: int, rel: str) -> int:
        c, env = self.c, self.environ
        if (text := env.get("HTTP_OC_TOTAL_LENGTH")) is not None and text.strip() != str(size):
            raise DAVError(HTTP_BAD_REQUEST, f"OC-Total-Length says {text.strip()[:20]} bytes, but the chunks hold "
                           f"{size}. Fix: send the missing chunks.")
        if size == 0:
            raise DAVError(HTTP_BAD_REQUEST, "The chunks hold no bytes.")
        meta = {wire.META_PATH: rel, wire.META_FILENAME: rel.rsplit("/", 1)[-1], wire.META_SIZE: str(size)}
        if (mtime := env.get("HTTP_X_OC_MTIME")) is not None:
            try:
                meta[wire.META_MTIME_NS] = str(wire.parse_int64(mtime.strip()) * 10**9)
            except ValueError:
                raise DAVError(HTTP_BAD_REQUEST, "X-OC-Mtime must be whole seconds since 1970.") from None
        uploads.resize(c.ctx, upload_id, size, meta)
        hasher = c.ctx.hashes.take(upload_id, size)
        if not c.ctx.parts.shared:
            c.ctx.busy.add(upload_id)
            try:
                return uploads.complete(c.ctx, upload_id, hasher)
            finally:
                c.ctx.busy.discard(upload_id)
        writer = secrets.token_hex(8)
        offset, before = uploads.take_lease(c.ctx, upload_id, writer)
        try:
            if before.parts and before.tail_size:
                # The last chunk's rest is a tail object (no chunk knew it was the last): it becomes the
                # multipart upload's last part now, so the assembled object holds every byte.
                w = c.ctx.parts.writer(upload_id, offset, offset, before,
                                       partial(uploads.renew_lease, c.ctx, upload_id, writer))
                try:
                    after = w.finish(True)
                    uploads.record_parts(c.ctx, upload_id, offset, before, after, writer)
                except BaseException:
                    w.abandon()
                    raise
                w.settle()
                before = after
            return uploads.complete(c.ctx, upload_id, hasher, recorded=before, writer=writer)
        finally:
            uploads.release_lease(c.ctx, upload_id, writer)


def resource(path: str, environ: dict[str, Any], rel: str) -> Any:
    """The resource at ``/dav/uploads/USER/<rel>`` for the calling device, or None."""
    c = caller(environ)
    if not rel:
        return Home(path, environ)
    name, _, chunk = rel.partition("/")
    paths.check_segment(name)
    row = _row(c, name)
    if row is None:
        return None
    if not chunk:
        return Folder(path, environ, name, row)
    if chunk == ASSEMBLE:
        return Assembled(path, environ, row)
    have = _chunks(c, row.id).get(chunk)
    return None if have is None else Chunk(path, environ, row, chunk, have)

