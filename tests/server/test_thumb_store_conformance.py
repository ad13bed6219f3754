"""One suite for every ``ThumbStore``: the local layout and S3 (SeaweedFS and ``rclone serve s3``)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from services.s3 import S3Service

from camroll.server.storage.base import BlobNotFound, InvalidKey
from camroll.server.storage.thumbs import SIZES, LocalThumbStore, S3ThumbStore, ThumbStore


def _s3(service: str) -> Callable[[pytest.FixtureRequest, Path], ThumbStore]:
    def make(request: pytest.FixtureRequest, tmp: Path) -> ThumbStore:
        svc: S3Service = request.getfixturevalue(service)
        return S3ThumbStore(svc.store(), tmp / "work")
    return make


STORES: dict[str, Callable[[pytest.FixtureRequest, Path], ThumbStore]] = {
    "local": lambda _req, tmp: LocalThumbStore(tmp / "thumbs"),
    "seaweedfs": _s3("seaweedfs_s3"),
    "rclone": _s3("rclone_s3"),
}
SHA = "c0ffee" + "0" * 58


@pytest.fixture(params=sorted(STORES))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ThumbStore:
    return STORES[request.param](request, tmp_path)


def _write(path: Path, data: bytes) -> None:
    # As the sandbox child does: a temp file renamed into place.
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _read(store: ThumbStore, size: str) -> bytes:
    stream, length = store.open(SHA, size)  # type: ignore[arg-type]
    try:
        data = stream.read()
    finally:
        stream.close()
    assert len(data) == length
    return data


def test_is_a_thumb_store(store: ThumbStore) -> None:
    assert isinstance(store, ThumbStore)


def test_made_thumbnails_are_stored_and_read_back(store: ThumbStore, tmp_path: Path) -> None:
    assert not store.has_all(SHA)
    with store.making(SHA) as paths:
        assert set(paths) == set(SIZES)
        for size, path in paths.items():
            _write(path, f"webp {size}".encode() * 100)
    assert store.has_all(SHA)
    for size in SIZES:
        assert _read(store, size) == f"webp {size}".encode() * 100
    # No temporary files are left behind by the S3 store.
    assert not (tmp_path / "work").exists() or list((tmp_path / "work").iterdir()) == []


def test_a_size_not_written_is_not_stored(store: ThumbStore) -> None:
    with store.making(SHA) as paths:
        _write(paths["grid"], b"grid only")
    assert not store.has_all(SHA)
    assert _read(store, "grid") == b"grid only"
    with pytest.raises(BlobNotFound):
        store.open(SHA, "preview")


def test_nothing_more_is_stored_when_making_fails(store: ThumbStore, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), store.making(SHA) as paths:
        _write(paths["grid"], b"half done")
        raise RuntimeError("the decoder crashed")
    if isinstance(store, S3ThumbStore):
        # Nothing was uploaded; the local store's writer put its file in place itself (atomically).
        with pytest.raises(BlobNotFound):
            store.open(SHA, "grid")
        assert list((tmp_path / "work").iterdir()) == []


def test_remaking_replaces_and_delete_removes(store: ThumbStore) -> None:
    for round_ in (b"first", b"second"):
        with store.making(SHA) as paths:
            for path in paths.values():
                _write(path, round_)
    assert _read(store, "preview") == b"second"
    store.delete(SHA)
    assert not store.has_all(SHA)
    with pytest.raises(BlobNotFound):
        store.open(SHA, "grid")
    store.delete(SHA)  # idempotent


def test_invalid_keys_are_refused(store: ThumbStore) -> None:
    for bad in ("", "../" + "0" * 61, "A" * 64):
        with pytest.raises(InvalidKey), store.making(bad):
            pass
        with pytest.raises(InvalidKey):
            store.open(bad, "grid")


def test_s3_layout(seaweedfs_s3: S3Service, tmp_path: Path) -> None:
    from camroll.media.thumbs import VERSION

    blobs = seaweedfs_s3.store()
    store = S3ThumbStore(blobs, tmp_path)
    with store.making(SHA) as paths:
        _write(paths["grid"], b"g")
    keys = [o["Key"] for o in blobs.client.list_objects_v2(Bucket=blobs.bucket, Prefix=blobs.prefix + "/")["Contents"]]
    assert keys == [f"{blobs.prefix}/thumbs/c0/{SHA}-grid-v{VERSION}.webp"]
    head = blobs.client.head_object(Bucket=blobs.bucket, Key=keys[0])
    assert head["ContentType"] == "image/webp"
    assert list(blobs.list()) == []  # thumbnails are not blobs
