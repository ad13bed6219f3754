"""One suite for every replica target (server/replicas/target.py): a folder, an S3 bucket on SeaweedFS, and
an rclone remote (``rclone serve webdav`` on loopback); add a target by adding a factory to ``TARGETS``."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
from services.s3 import S3Service

from camroll.server.replicas.folder import FolderTarget
from camroll.server.replicas.rclone import RcloneTarget
from camroll.server.replicas.s3 import S3Target
from camroll.server.replicas.target import ReplicaTarget
from camroll.server.storage.base import BlobNotFound, InvalidKey, StorageFailure
from camroll.server.storage.s3config import S3Location

from .replica_fixtures import WebDav, rclone_webdav

_ = rclone_webdav


def _s3(request: pytest.FixtureRequest, tmp: Path) -> ReplicaTarget:
    svc: S3Service = request.getfixturevalue("seaweedfs_s3")
    return S3Target(S3Location(svc.bucket, svc.new_prefix()), {}, client=svc.client())


def _rclone(request: pytest.FixtureRequest, tmp: Path) -> ReplicaTarget:
    dav: WebDav = request.getfixturevalue("rclone_webdav")
    return RcloneTarget(f"camtest:{tmp.name}", {"config": str(dav.config)})


TARGETS: dict[str, Callable[[pytest.FixtureRequest, Path], ReplicaTarget]] = {
    "folder": lambda _req, tmp: FolderTarget(tmp / "replica", create=True),
    "s3": _s3,
    "rclone": _rclone,
}


@pytest.fixture(params=sorted(TARGETS))
def target(request: pytest.FixtureRequest, tmp_path: Path) -> ReplicaTarget:
    t = TARGETS[request.param](request, tmp_path)
    yield t
    t.close()


def _file(tmp: Path, data: bytes, name: str = "src") -> tuple[str, Path]:
    p = tmp / name
    p.write_bytes(data)
    return hashlib.sha256(data).hexdigest(), p


def _read(t: ReplicaTarget, sha: str) -> bytes:
    s = t.open(sha)
    try:
        out = b""
        while block := s.read(1 << 16):
            out += block
        return out
    finally:
        s.close()


def test_is_a_target(target: ReplicaTarget) -> None:
    assert isinstance(target, ReplicaTarget)
    target.check()


def test_put_read_stat_list(target: ReplicaTarget, tmp_path: Path) -> None:
    data = bytes(range(256)) * 4000
    sha, src = _file(tmp_path, data)
    target.put(sha, src)
    assert src.read_bytes() == data, "the source is never moved or changed"
    assert target.stat(sha).size == len(data)
    assert _read(target, sha) == data
    assert [b.sha256 for b in target.list()] == [sha], "only blob keys are listed (no probe, no partial)"
    got = target.checksum(sha)
    assert got in (None, sha)


def test_put_replaces(target: ReplicaTarget, tmp_path: Path) -> None:
    sha, src = _file(tmp_path, b"the right bytes")
    bad = tmp_path / "bad"
    bad.write_bytes(b"other bytes!!")
    target.put(sha, bad)
    target.put(sha, src)
    assert _read(target, sha) == b"the right bytes"
    assert target.stat(sha).size == len(b"the right bytes")


def test_empty(target: ReplicaTarget, tmp_path: Path) -> None:
    sha, src = _file(tmp_path, b"")
    target.put(sha, src)
    assert target.stat(sha).size == 0
    assert _read(target, sha) == b""


def test_missing_and_delete(target: ReplicaTarget, tmp_path: Path) -> None:
    missing = "ab" * 32
    for op in (target.stat, target.open, target.checksum):
        with pytest.raises(BlobNotFound):
            op(missing)
    target.delete(missing)  # idempotent
    sha, src = _file(tmp_path, b"to delete")
    target.put(sha, src)
    target.delete(sha)
    with pytest.raises(BlobNotFound):
        target.stat(sha)
    assert list(target.list()) == []


def test_invalid_keys(target: ReplicaTarget, tmp_path: Path) -> None:
    _, src = _file(tmp_path, b"x")
    for key in ("../../etc/passwd", "AB" * 32, "a" * 63, ""):
        with pytest.raises(InvalidKey):
            target.put(key, src)
        with pytest.raises(InvalidKey):
            target.stat(key)


def test_gone_target_fails_with_a_sentence(tmp_path: Path) -> None:
    """A folder whose disk is not mounted, an S3 endpoint and an rclone remote that do not answer: each a
    transient StorageFailure naming the place and a fix, never a traceback, and no folder is created."""
    from support.env import free_port

    port = free_port()
    conf = tmp_path / "rclone.conf"
    conf.write_text(f"[dead]\ntype = webdav\nurl = http://127.0.0.1:{port}/\n")
    from camroll.server.replicas.s3 import make_client

    gone: list[ReplicaTarget] = [
        FolderTarget(tmp_path / "not-mounted"),
        S3Target(S3Location("bucket", "p"), {}, client=make_client(
            {"endpoint": f"http://127.0.0.1:{port}", "access_key_id": "k", "secret_access_key": "s",
             "region": "us-east-1"})),
        RcloneTarget("dead:x", {"config": str(conf)}),
    ]
    _, src = _file(tmp_path, b"x")
    for t in gone:
        with pytest.raises(StorageFailure) as info:
            t.put(hashlib.sha256(b"x").hexdigest(), src)
        assert info.value.transient, (t.where, info.value)
        assert info.value.fix
    assert not (tmp_path / "not-mounted").exists()
