"""wsgidav's view of camroll: the DAV resources of ``/dav/`` over a device's tree.

``/dav/`` and ``/dav/files/`` list only the caller's own name; ``/dav/files/USER/`` is the tree of the
device whose app password authenticated the request (tree.py); ``/dav/uploads/USER/`` holds chunked
uploads (chunks.py).  A device sees and changes only its own tree: a phone's app password cannot reach
another device's files, nor the library."""

from __future__ import annotations

import asyncio
import io
import logging
from dataclasses import dataclass
from typing import Any

from wsgidav.dav_error import (
    HTTP_BAD_REQUEST,
    HTTP_CONFLICT,
    HTTP_FORBIDDEN,
    HTTP_NOT_FOUND,
    DAVError,
)
from wsgidav.dav_provider import DAVCollection, DAVNonCollection, DAVProvider

from camroll import wire
from camroll.server.context import Context
from camroll.server.dav import health, tree
from camroll.server.dav.ingest import ChecksumError, Feed, parse_checksums
from camroll.server.dav.paths import Area, DavPath, DavPathError, parse
from camroll.server.problems import ProblemError
from camroll.server.repositories import users as users_repo
from camroll.server.services import trash, uploads
from camroll.server.services.auth import Principal
from camroll.server.services.receive import BodyInterrupted
from camroll.server.storage.base import ReadStream

log = logging.getLogger("camroll.server.dav")

SCOPE_KEY = "camroll.dav"


@dataclass(frozen=True)
class Caller:
    """What the door proved about a request, handed to wsgidav inside the ASGI scope."""

    ctx: Context
    who: Principal
    loop: asyncio.AbstractEventLoop

    @property
    def device_id(self) -> int:
        assert self.who.device_id is not None, "the door lets only device tokens in"
        return self.who.device_id


def caller(environ: dict[str, Any]) -> Caller:
    found = environ["asgi.scope"].get(SCOPE_KEY)
    if not isinstance(found, Caller):
        raise DAVError(HTTP_FORBIDDEN, "This request was not authenticated.")
    return found


def dav_error(exc: ProblemError) -> DAVError:
    """A camroll refusal as the WebDAV status clients know: quota and disk full are 507."""
    status = exc.status
    if exc.code in ("quota_exceeded", "storage_full"):
        status = 507
    elif status == wire.STATUS_CHECKSUM_MISMATCH:
        status = HTTP_BAD_REQUEST
    return DAVError(status, f"{exc.detail} Fix: {exc.fix}")


def _join(base: str, name: str) -> str:
    return f"{base}/{name}" if base else name


def _quota(c: Caller) -> tuple[int, int | None]:
    with c.ctx.conn() as conn:
        used = users_repo.used_bytes_core(conn, c.who.user_id)
        limit = users_repo.quota_of(conn, c.who.user_id)
    return used, None if limit is None else max(0, limit - used)


class Virtual(DAVCollection):
    """``/dav/``, ``/dav/files/``, ``/dav/uploads/``: fixed folders leading to the caller's trees."""

    def __init__(self, path: str, environ: dict[str, Any], members: list[str]) -> None:
        super().__init__(path, environ)
        self._members = members

    def get_member_names(self) -> list[str]:
        return self._members

    def get_member(self, name: str) -> Any:
        return self.provider.get_resource_inst(_join(self.path.rstrip("/"), name), self.environ)

    def get_display_name(self) -> str:
        return self.name or "dav"

    def get_etag(self) -> None:
        return None

    def support_etag(self) -> bool:
        return False

    def get_last_modified(self) -> None:
        return None


class Folder(DAVCollection):
    """A folder of the device's tree ("" is its root, ``/dav/files/USER/``)."""

    def __init__(self, path: str, environ: dict[str, Any], rel: str) -> None:
        super().__init__(path, environ)
        self.rel = rel
        self.c = caller(environ)
        self._listing: tuple[set[str], dict[str, tree.File]] | None = None

    def _list(self) -> tuple[set[str], dict[str, tree.File]]:
        if self._listing is None:
            try:
                with self.c.ctx.conn() as conn:
                    self._listing = tree.children(conn, self.c.device_id, self.rel)
            except tree.TooLarge as exc:
                raise DAVError(HTTP_FORBIDDEN, f"This folder holds {exc}; list a subfolder instead.") from None
        return self._listing

    def get_member_names(self) -> list[str]:
        folders, files = self._list()
        return sorted(folders) + sorted(files)

    def get_member(self, name: str) -> Any:
        folders, files = self._list()
        path = _join(self.path.rstrip("/"), name)
        if name in files:
            return File(path, self.environ, _join(self.rel, name), files[name])
        if name in folders:
            return Folder(path, self.environ, _join(self.rel, name))
        return None

    def get_display_name(self) -> str:
        return str(self.name)

    def get_etag(self) -> None:
        return None

    def support_etag(self) -> bool:
        return False

    def get_last_modified(self) -> None:
        return None

    def get_used_bytes(self) -> int:
        return _quota(self.c)[0]

    def get_available_bytes(self) -> int | None:
        return _quota(self.c)[1]

    def create_empty_resource(self, name: str) -> NewFile:
        return NewFile(_join(self.path.rstrip("/"), name), self.environ, _join(self.rel, name))

    def create_collection(self, name: str) -> None:
        with self.c.ctx.conn() as conn:
            tree.make_folder(conn, self.c.device_id, _join(self.rel, name))

    def support_recursive_delete(self) -> bool:
        return True

    def delete(self) -> None:
        if not self.rel:
            raise DAVError(HTTP_FORBIDDEN, "The device's root folder cannot be deleted.")
        with self.c.ctx.conn() as conn:
            try:
                files = tree.files_under(conn, self.c.device_id, self.rel, tree.MAX_TREE_CHANGE)
            except tree.TooLarge as exc:
                raise DAVError(HTTP_FORBIDDEN, f"This folder holds {exc}; delete its subfolders first.") from None
            tree.drop_folders(conn, self.c.device_id, self.rel)
        _trash(self.c, [f.asset_id for f in files.values()])

    def support_recursive_move(self, dest_path: str) -> bool:
        return True

    def handle_move(self, dest_path: str) -> bool:
        dest = own_tree(self.c, dest_path)
        if not self.rel or dest.rel.startswith(self.rel + "/") or dest.rel == self.rel:
            raise DAVError(HTTP_FORBIDDEN, "A folder cannot move into itself, nor can the root move.")
        try:
            with self.c.ctx.conn() as conn:
                tree.move(conn, self.c.device_id, self.rel, dest.rel, folder=True)
                if not tree.is_folder(conn, self.c.device_id, dest.rel):
                    tree.make_folder(conn, self.c.device_id, dest.rel)
        except tree.TooLarge as exc:
            raise DAVError(HTTP_FORBIDDEN, f"This folder holds {exc}; move its subfolders one by one.") from None
        return True

    def move_recursive(self, dest_path: str) -> None:
        self.handle_move(dest_path)

    def handle_copy(self, dest_path: str, *, depth_infinity: bool) -> bool:
        dest = own_tree(self.c, dest_path)
        if dest.rel.startswith(self.rel + "/") or dest.rel == self.rel:
            raise DAVError(HTTP_FORBIDDEN, "A folder cannot be copied into itself.")
        try:
            with self.c.ctx.conn() as conn:
                if depth_infinity:
                    tree.copy(conn, self.c.device_id, self.rel, dest.rel, folder=True)
                else:
                    tree.make_folder(conn, self.c.device_id, dest.rel)
        except tree.TooLarge as exc:
            raise DAVError(HTTP_FORBIDDEN, f"This folder holds {exc}; copy its subfolders one by one.") from None
        return True

    def copy_move_single(self, dest_path: str, *, is_move: bool) -> None:
        dest = own_tree(self.c, dest_path)
        with self.c.ctx.conn() as conn:
            if not tree.is_folder(conn, self.c.device_id, dest.rel):
                tree.make_folder(conn, self.c.device_id, dest.rel)

    def set_property_value(self, name: str, value: Any, *, dry_run: bool = False) -> None:
        _accept_property(name)


def _accept_property(name: str) -> None:
    # No dead-property store: clients (Finder, Windows, rclone) set times and flags they do not read
    # back; refusing them makes copies fail, so they are accepted and dropped.  Live DAV: properties
    # other than the times stay protected.
    if name.startswith("{DAV:}") and name not in ("{DAV:}getlastmodified", "{DAV:}lastmodified",
                                                  "{DAV:}creationdate", "{DAV:}displayname"):
        raise DAVError(HTTP_FORBIDDEN)


def _trash(c: Caller, asset_ids: list[int]) -> None:
    if asset_ids:
        trash.trash(c.ctx, c.who, asset_ids)


def own_tree(c: Caller, dest_path: str) -> DavPath:
    try:
        dest = parse("/dav" + dest_path if not dest_path.startswith("/dav") else dest_path)
    except DavPathError as exc:
        raise DAVError(HTTP_BAD_REQUEST, str(exc)) from None
    if dest.area is not Area.FILES or dest.user != c.who.username or not dest.rel:
        raise DAVError(HTTP_FORBIDDEN, f"Destination must be inside /dav/files/{c.who.username}/.")
    return dest


def _start_feed(c: Caller, environ: dict[str, Any], rel: str) -> Feed:
    length_text = environ.get("CONTENT_LENGTH") or environ.get("HTTP_X_EXPECTED_ENTITY_LENGTH")
    try:
        length = wire.parse_int64(length_text or "")
    except ValueError:
        raise DAVError(411, "This PUT has no Content-Length (nor X-Expected-Entity-Length); camroll needs the "
                       "size before the body to check the quota. Fix: send Content-Length.") from None
    meta = {wire.META_PATH: rel, wire.META_FILENAME: rel.rsplit("/", 1)[-1], wire.META_SIZE: str(length)}
    mtime = environ.get("HTTP_X_OC_MTIME")
    if mtime:
        try:
            meta[wire.META_MTIME_NS] = str(wire.parse_int64(mtime.strip()) * 10**9)
        except ValueError:
            raise DAVError(HTTP_BAD_REQUEST, "X-OC-Mtime must be whole seconds since 1970.") from None
    try:
        declared = parse_checksums(environ.get("HTTP_OC_CHECKSUM"), environ.get("HTTP_CONTENT_MD5"),
                                   environ.get("HTTP_DIGEST"))
        uploads.parse_metadata(wire.encode_upload_metadata(meta))  # the same bounds as a tus upload
        return Feed.new_file(c.ctx, c.loop, c.who, length, meta, declared)
    except ChecksumError as exc:
        raise DAVError(HTTP_BAD_REQUEST, str(exc)) from None
    except ProblemError as exc:
        raise dav_error(exc) from None


class _Writable:
    """What PUT streams into: shared by new and existing files."""

    environ: dict[str, Any]
    rel: str
    c: Caller
    _feed: Feed | None = None
    asset_id: int | None = None

    def begin_write(self, *, content_type: str | None = None) -> Any:
        if (self.environ.get("CONTENT_LENGTH") or "").strip() == "0":
            # Finder, Explorer and davfs2 create an empty placeholder before the real upload; an empty
            # file is no photo, so nothing is stored and the real PUT follows.
            return io.BytesIO()
        self._feed = _start_feed(self.c, self.environ, self.rel)
        return Sink(self._feed)

    def end_write(self, *, with_errors: bool) -> None:
        feed, self._feed = self._feed, None
        if feed is None:
            return
        if with_errors:
            feed.abandon()
            return
        try:
            self.asset_id = feed.finish().asset_id
        except BodyInterrupted:
            feed.abandon()
            raise DAVError(HTTP_BAD_REQUEST, "The body ended before its Content-Length; nothing was "
                           "stored. Fix: send the file again.") from None
        except ProblemError as exc:
            feed.abandon()
            raise dav_error(exc) from None
        assert self.asset_id is not None
        placed(self.c, self.rel, self.asset_id)


def placed(c: Caller, rel: str, asset_id: int) -> None:
    """The path now names this asset; a trashed asset put back by its device leaves the trash."""
    with c.ctx.conn() as conn:
        tree.drop_other_rows(conn, c.device_id, rel, asset_id)
    with c.ctx.db() as db:
        trashed = tree.trashed_asset_at(db, c.device_id, rel, asset_id)
    if trashed:
        trash.restore(c.ctx, c.who, [asset_id])
    health.uploaded(c.ctx, c.device_id)


class Sink:
    def __init__(self, feed: Feed) -> None:
        self._feed = feed

    def write(self, data: bytes) -> None:
        try:
            self._feed.write(data)
        except ChecksumError as exc:
            raise DAVError(HTTP_BAD_REQUEST, str(exc)) from None
        except ProblemError as exc:
            raise dav_error(exc) from None

    def close(self) -> None:
        pass


class NewFile(_Writable, DAVNonCollection):
    """A path a PUT is creating: nothing exists until the upload became an asset."""

    def __init__(self, path: str, environ: dict[str, Any], rel: str) -> None:
        DAVNonCollection.__init__(self, path, environ)
        self.rel = rel
        self.c = caller(environ)

    def get_content_length(self) -> int:
        return 0

    def get_content(self) -> Any:
        raise DAVError(HTTP_NOT_FOUND)

    def get_etag(self) -> str | None:
        return None

    def support_etag(self) -> bool:
        return True

    def get_etag_after(self) -> str | None:
        return None


class File(_Writable, DAVNonCollection):
    """A file of the device's tree: an asset at a path.  ETag = the asset's SHA-256."""

    def __init__(self, path: str, environ: dict[str, Any], rel: str, f: tree.File) -> None:
        DAVNonCollection.__init__(self, path, environ)
        self.rel = rel
        self.f = f
        self.c = caller(environ)

    def get_content_length(self) -> int:
        return self.f.size

    def get_content_type(self) -> str:
        return self.f.mime or "application/octet-stream"

    def get_etag(self) -> str:
        return self.f.sha256

    def support_etag(self) -> bool:
        return True

    def support_ranges(self) -> bool:
        return False

    def get_last_modified(self) -> float:
        if self.f.mtime_ns is not None:
            return self.f.mtime_ns / 1e9
        return (self.f.recorded_at or self.f.created_at).timestamp()

    def get_creation_date(self) -> float:
        return self.f.created_at.timestamp()

    def get_content(self) -> ReadStream:
        return self.c.ctx.blobs.open(self.f.sha256)

    def set_last_modified(self, dest_path: str, time_stamp: float, *, dry_run: bool) -> bool:
        if not dry_run:
            with self.c.ctx.conn() as conn:
                tree.set_mtime(conn, self.f.row_id, int(time_stamp) * 10**9)
        return True

    def set_property_value(self, name: str, value: Any, *, dry_run: bool = False) -> None:
        _accept_property(name)

    def delete(self) -> None:
        _trash(self.c, [self.f.asset_id])

    def handle_delete(self) -> bool:
        self.delete()
        return True

    def handle_move(self, dest_path: str) -> bool:
        dest = own_tree(self.c, dest_path)
        with self.c.ctx.conn() as conn:
            _check_parent(conn, self.c, dest.rel)
            tree.drop_other_rows(conn, self.c.device_id, dest.rel, self.f.asset_id)
            tree.move(conn, self.c.device_id, self.rel, dest.rel, folder=False)
        return True

    def handle_copy(self, dest_path: str, *, depth_infinity: bool) -> bool:
        dest = own_tree(self.c, dest_path)
        with self.c.ctx.conn() as conn:
            _check_parent(conn, self.c, dest.rel)
            tree.drop_other_rows(conn, self.c.device_id, dest.rel, self.f.asset_id)
            tree.copy(conn, self.c.device_id, self.rel, dest.rel, folder=False)
        return True

    def copy_move_single(self, dest_path: str, *, is_move: bool) -> None:
        if is_move:
            self.handle_move(dest_path)
        else:
            self.handle_copy(dest_path, depth_infinity=False)


def _check_parent(conn: Any, c: Caller, rel: str) -> None:
    parent = rel.rsplit("/", 1)[0] if "/" in rel else ""
    if not tree.is_folder(conn, c.device_id, parent):
        raise DAVError(HTTP_CONFLICT, "The destination's folder does not exist; MKCOL it first.")


class Provider(DAVProvider):
    """Resources for paths under the share ``/dav`` (wsgidav passes them without the share prefix)."""

    def is_readonly(self) -> bool:
        return False

    def get_resource_inst(self, path: str, environ: dict[str, Any]) -> Any:
        self._count_get_resource_inst += 1
        c = caller(environ)
        try:
            p = parse("/dav" + path.rstrip("/") if path not in ("", "/") else "/dav")
        except DavPathError as exc:
            raise DAVError(HTTP_BAD_REQUEST, str(exc)) from None
        name = c.who.username
        if p.area is Area.ROOT:
            return Virtual("/", environ, ["files", "uploads"])
        if p.area in (Area.FILES_ROOT, Area.UPLOADS_ROOT):
            return Virtual(path.rstrip("/"), environ, [name])
        if p.user != name:
            return None
        if p.area is Area.UPLOADS:
            from camroll.server.dav import chunks

            return chunks.resource(path.rstrip("/"), environ, p.rel)
        with c.ctx.conn() as conn:
            f = tree.file_at(conn, c.device_id, p.rel) if p.rel else None
            if f is not None:
                return File(path.rstrip("/"), environ, p.rel, f)
            if tree.is_folder(conn, c.device_id, p.rel):
                return Folder(path.rstrip("/") or "/", environ, p.rel)
        return None

