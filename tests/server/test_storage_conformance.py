"""One suite for every ``BlobStore``; add an implementation by adding a factory to ``STORES``."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from camroll.server.storage.base import BlobNotFound, BlobStore, InvalidKey
from camroll.server.storage.local import LocalBlobStore
from camroll.server.storage.memory import MemoryBlobStore

STORES: dict[str, Callable[[Path], BlobStore]] = {
    "local": lambda tmp: LocalBlobStore(tmp / "blobs"),
    "memory": lambda tmp: MemoryBlobStore(),
}


@pytest.fixture(params=sorted(STORES))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    return STORES[request.param](tmp_path)


def _source(tmp_path: Path, data: bytes, name: str = "src") -> tuple[str, Path]:
    p = tmp_path / name
    p.write_bytes(data)
    return hashlib.sha256(data).hexdigest(), p


def test_is_a_blob_store(store: BlobStore) -> None:
    assert isinstance(store, BlobStore)


def test_put_then_read_back(store: BlobStore, tmp_path: Path) -> None:
    data = bytes(range(256)) * 1000
    key, src = _source(tmp_path, data)
    stat = store.put_file(key, src)
    assert (stat.sha256, stat.size) == (key, len(data))
    assert store.exists(key)
    assert store.stat(key).size == len(data)
    with store.open(key) as f:  # type: ignore[attr-defined]
        assert f.read() == data


def test_ranges(store: BlobStore, tmp_path: Path) -> None:
    data = bytes(range(256)) * 10
    key, src = _source(tmp_path, data)
    store.put_file(key, src)
    cases = [(0, None), (10, None), (10, 5), (0, 0), (len(data) - 1, 10), (len(data), None)]
    for offset, length in cases:
        f = store.open(key, offset, length)
        try:
            want = data[offset:] if length is None else data[offset:offset + length]
            assert f.read() == want, (offset, length)
        finally:
            f.close()
    f = store.open(key, 100, 50)
    try:
        assert f.read(20) + f.read(20) + f.read(20) + f.read() == data[100:150]
    finally:
        f.close()


def test_put_is_idempotent(store: BlobStore, tmp_path: Path) -> None:
    key, src = _source(tmp_path, b"same bytes")
    store.put_file(key, src)
    _, again = _source(tmp_path, b"same bytes", "again")
    assert store.put_file(key, again).size == len(b"same bytes")
    assert [s.sha256 for s in store.list()] == [key]


def test_empty_blob(store: BlobStore, tmp_path: Path) -> None:
    key, src = _source(tmp_path, b"")
    store.put_file(key, src)
    assert store.stat(key).size == 0
    f = store.open(key)
    try:
        assert f.read() == b""
    finally:
        f.close()


def test_missing_blob(store: BlobStore) -> None:
    key = "0" * 64
    assert not store.exists(key)
    with pytest.raises(BlobNotFound):
        store.stat(key)
    with pytest.raises(BlobNotFound):
        store.open(key)
    store.delete(key)  # idempotent


def test_delete(store: BlobStore, tmp_path: Path) -> None:
    key, src = _source(tmp_path, b"to be deleted")
    store.put_file(key, src)
    store.delete(key)
    assert not store.exists(key)
    assert list(store.list()) == []
    store.delete(key)


@pytest.mark.parametrize("key", ["", "abc", "A" * 64, "g" * 64, "../" + "0" * 61, "0" * 65])
def test_invalid_keys_rejected_before_io(store: BlobStore, tmp_path: Path, key: str) -> None:
    _, src = _source(tmp_path, b"x")
    with pytest.raises(InvalidKey):
        store.put_file(key, src)
    for call in (store.stat, store.exists, store.delete, store.open):
        with pytest.raises(InvalidKey):
            call(key)
    assert src.exists()


def test_list_sees_every_blob(store: BlobStore, tmp_path: Path) -> None:
    keys = set()
    for i in range(20):
        key, src = _source(tmp_path, f"blob {i}".encode(), f"s{i}")
        store.put_file(key, src)
        keys.add(key)
    assert {s.sha256 for s in store.list()} == keys


def test_list_says_when_each_blob_was_written(store: BlobStore, tmp_path: Path) -> None:
    # The orphan sweep spares blobs younger than its grace age, so every store must say.
    before = time.time() - 5
    key, src = _source(tmp_path, b"fresh")
    store.put_file(key, src)
    (stat,) = store.list()
    assert stat.modified is not None and before <= stat.modified <= time.time() + 5


def test_concurrent_readers_see_whole_blob_or_nothing(store: BlobStore, tmp_path: Path) -> None:
    data = b"z" * (4 * 2**20)
    key, src = _source(tmp_path, data)
    seen: list[int] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                f = store.open(key)
            except BlobNotFound:
                continue
            try:
                seen.append(len(f.read()))
            finally:
                f.close()
            return

    t = threading.Thread(target=reader)
    t.start()
    store.put_file(key, src)
    t.join(10)
    stop.set()
    assert seen == [len(data)]


def test_local_layout_is_sharded(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    key, src = _source(tmp_path, b"layout")
    store.put_file(key, src)
    assert (tmp_path / "blobs" / key[:2] / key[2:4] / key).read_bytes() == b"layout"
    assert not src.exists()  # moved, not copied


def test_putting_an_existing_blob_again_refreshes_when_it_was_written(store: BlobStore, tmp_path: Path) -> None:
    # A new upload that re-uses a stored blob must be spared by the orphan sweep's grace age until its
    # asset row is committed, however old the blob is.
    key, src = _source(tmp_path, b"old bytes")
    store.put_file(key, src)
    if isinstance(store, LocalBlobStore):
        path = store.root / key[:2] / key[2:4] / key
        os.utime(path, (1_000_000_000, 1_000_000_000))
    else:
        assert isinstance(store, MemoryBlobStore)
        store._put_at[key] = 1_000_000_000.0
    before = time.time() - 5
    _, again = _source(tmp_path, b"old bytes", "again")
    store.put_file(key, again)
    (stat,) = store.list()
    assert stat.modified is not None and stat.modified >= before
