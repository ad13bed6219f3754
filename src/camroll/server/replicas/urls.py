"""Replica URLs (``s3://BUCKET[/PREFIX]``, ``file:///PATH``, ``rclone:REMOTE:path``) and the target each one
names (``open_target``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from camroll.server.replicas.target import Kind, ReplicaTarget
from camroll.server.storage.s3config import S3Location, StorageConfigError, parse_storage_url

MAX_NAME = 64
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
URL_HELP = ("Give s3://BUCKET[/PREFIX] (any S3 service), file:///PATH (a local or mounted folder) or "
            "rclone:REMOTE:path (a remote from 'rclone config').")


class ReplicaConfigError(ValueError):
    """A replica URL, name or option that cannot work; the message names the problem and the fix."""


@dataclass(frozen=True)
class Parsed:
    kind: Kind
    url: str  # normalised
    s3: S3Location | None = None
    folder: Path | None = None
    remote: str | None = None


def check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME or not set(name) <= _NAME_CHARS:
        raise ReplicaConfigError(f"{name!r} is not a replica name: use 1 to {MAX_NAME} letters, digits, '-', '_' "
                                 f"or '.', e.g. b2 or usb-disk.")
    return name


def parse(url: str) -> Parsed:
    url = url.strip()
    if len(url) > 2000 or any(ord(c) < 32 for c in url):
        raise ReplicaConfigError(f"the replica URL is too long or has control characters. {URL_HELP}")
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "rclone":
        remote = url[len("rclone:"):]
        name, sep, _path = remote.partition(":")
        if not sep or not name or name.startswith("/"):
            raise ReplicaConfigError(f"{url!r} names no rclone remote; write rclone:REMOTE:path, e.g. "
                                     f"rclone:dropbox:camroll (REMOTE as 'rclone listremotes' shows it).")
        return Parsed(Kind.RCLONE, url, remote=remote)
    if scheme in ("s3", "file"):
        try:
            where = parse_storage_url(url)
        except StorageConfigError as exc:
            raise ReplicaConfigError(str(exc).replace("CAMROLL_STORAGE_URL=", "the replica URL ")) from None
        if isinstance(where, S3Location):
            return Parsed(Kind.S3, where.url, s3=where)
        path = Path(unquote(urlsplit(url).path))
        return Parsed(Kind.FOLDER, f"file://{path}", folder=path)
    raise ReplicaConfigError(f"{url!r} is not a replica URL. {URL_HELP}")


def open_target(url: str, options: dict[str, Any], *, create: bool = False) -> ReplicaTarget:
    """The target ``url`` names, configured by ``options``; makes no request (``check`` does)."""
    p = parse(url)
    if p.kind is Kind.S3:
        from camroll.server.replicas.s3 import S3Target

        assert p.s3 is not None
        try:
            return S3Target(p.s3, options)
        except StorageConfigError as exc:
            raise ReplicaConfigError(str(exc)) from None
    if p.kind is Kind.FOLDER:
        from camroll.server.replicas.folder import FolderTarget

        assert p.folder is not None
        return FolderTarget(p.folder, create=create)
    from camroll.server.replicas.rclone import RcloneTarget

    assert p.remote is not None
    return RcloneTarget(p.remote, options)


SECRET_OPTIONS = frozenset({"secret_access_key"})


def shown_options(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with secrets masked, for listings and logs."""
    return {k: ("***" if k in SECRET_OPTIONS and v else v) for k, v in sorted(options.items())}
