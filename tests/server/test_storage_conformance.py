"""One suite for every ``BlobStore``: local, memory, and S3 against two servers (SeaweedFS and
``rclone serve s3``); add an implementation by adding a factory to ``STORES``."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from services.s3 import S3Service

from camroll.server.storage.base import (
    BlobNotFound,
    BlobStore,
    CopySpaceShort,
    CopyTooLarge,
    InvalidKey,
    Span,
    TempCopies,
)
from camroll.server.storage.local import LocalBlobStore
from camroll.server.storage.memory import MemoryBlobStore
from camroll.server.storage.s3 import S3BlobStore


def _s3(service: str) -> Callable[[pytest.FixtureRequest, Path], BlobStore]:
    def make(request: pytest.FixtureRequest, tmp: Path) -> BlobStore:
        svc: S3Service = request.getfixturevalue(service)
        s = svc.store()
        s.copies = TempCopies(tmp / "copies")
        # Small parts, so a few MiB already take the multipart path.
        s.multipart_threshold, s.multipart_chunk = 6 * 2**20, 5 * 2**20
        return s
    return make


STORES: dict[str, Callable[[pytest.FixtureRequest, Path], BlobStore]] = {
    "local": lambda _req, tmp: LocalBlobStore(tmp / "blobs"),
    "memory": lambda _req, tmp: MemoryBlobStore(TempCopies(tmp / "copies")),
    "seaweedfs": _s3("seaweedfs_s3"),
    "rclone": _s3("rclone_s3"),
}


@pytest.fixture(params=sorted(STORES))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    return STORES[request.param](request, tmp_path)


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


def _age(store: BlobStore, key: str) -> float:
    """Make the stored blob look old where the store lets a test say so; on S3, whose server sets
    LastModified (to the second), wait for the server's clock to pass the next whole second instead."""
    if isinstance(store, LocalBlobStore):
        own = store.root / key[:2] / key[2:4] / key
        if own.exists():
            os.utime(own, (1_000_000_000, 1_000_000_000))
        else:
            assert store.index.touch([key], 1_000_000_000.0) == {key}  # a member of a pack
        return 1_000_000_000.0
    if isinstance(store, MemoryBlobStore):
        store._put_at[key] = 1_000_000_000.0
        return 1_000_000_000.0
    first = store.stat(key).modified
    assert first is not None
    deadline = time.monotonic() + 3
    while time.time() < first + 1.05 and time.monotonic() < deadline:
        time.sleep(0.05)
    return first


def test_putting_an_existing_blob_again_refreshes_when_it_was_written(store: BlobStore, tmp_path: Path) -> None:
    # A new upload that re-uses a stored blob must be spared by the orphan sweep's grace age until its
    # asset row is committed, however old the blob is.
    key, src = _source(tmp_path, b"old bytes")
    store.put_file(key, src)
    old = _age(store, key)
    _, again = _source(tmp_path, b"old bytes", "again")
    store.put_file(key, again)
    (stat,) = store.list()
    assert stat.modified is not None and stat.modified > old
    with store.open(key) as f:  # type: ignore[attr-defined]
        assert f.read() == b"old bytes"  # the re-put left the bytes as they were


def test_ranges_at_and_past_the_end(store: BlobStore, tmp_path: Path) -> None:
    data = os.urandom(1000)
    key, src = _source(tmp_path, data)
    store.put_file(key, src)
    for offset, length, want in [(997, None, data[997:]), (998, 10, data[998:]), (999, 1, data[999:]),
                                 (1000, None, b""), (1000, 5, b""), (5000, None, b""), (0, 1000, data),
                                 (0, 5000, data)]:
        f = store.open(key, offset, length)
        try:
            assert f.read() == want, (offset, length)
        finally:
            f.close()


def test_open_of_a_missing_blob_with_a_range(store: BlobStore) -> None:
    key = "1" * 64
    for offset, length in [(0, None), (10, None), (0, 0), (5, 5)]:
        with pytest.raises(BlobNotFound):
            store.open(key, offset, length)


def test_a_large_blob_streams_in_pieces(store: BlobStore, tmp_path: Path) -> None:
    # Large enough for the S3 stores' multipart path (parts of 5 MiB above 6 MiB).
    data = os.urandom(1 << 16) * 200  # 12.5 MiB
    key, src = _source(tmp_path, data)
    assert store.put_file(key, src).size == len(data)
    assert store.stat(key).size == len(data)
    h = hashlib.sha256()
    f = store.open(key)
    try:
        while block := f.read(1 << 20):
            assert len(block) <= 1 << 20
            h.update(block)
    finally:
        f.close()
    assert h.hexdigest() == key
    f = store.open(key, 7 * 2**20 - 3, 10)
    try:
        assert f.read() == data[7 * 2**20 - 3:7 * 2**20 + 7]
    finally:
        f.close()


def test_put_file_consumes_its_source(store: BlobStore, tmp_path: Path) -> None:
    # The caller may not use the source again; whatever happens to that path afterwards (reused for the
    # next upload, overwritten, removed) the stored blob keeps its own bytes.
    data = b"kept as stored"
    key, src = _source(tmp_path, data)
    store.put_file(key, src)
    src.write_bytes(b"the next upload writes here")
    with store.open(key) as f:  # type: ignore[attr-defined]
        assert f.read() == data
    src.unlink()
    assert store.stat(key).size == len(data)


def _start_partial(store: BlobStore, key: str, data: bytes) -> Callable[[], None]:
    """Leave a blob half-written the way this store could be caught mid-put; returns the clean-up."""
    if isinstance(store, LocalBlobStore):
        tmp = store.root / ".tmp" / f"{key}.partial"
        tmp.write_bytes(data[: len(data) // 2])
        return tmp.unlink
    if isinstance(store, S3BlobStore):
        c = store.client
        up = c.create_multipart_upload(Bucket=store.bucket, Key=store.key_for(key))
        c.upload_part(Bucket=store.bucket, Key=store.key_for(key), UploadId=up["UploadId"], PartNumber=1,
                      Body=data[: len(data) // 2])
        return lambda: c.abort_multipart_upload(Bucket=store.bucket, Key=store.key_for(key),
                                                UploadId=up["UploadId"])
    assert isinstance(store, MemoryBlobStore)
    return lambda: None  # a dict assignment has no half-written state


def test_list_never_yields_a_partially_written_blob(store: BlobStore, tmp_path: Path) -> None:
    whole, src = _source(tmp_path, b"whole blob")
    store.put_file(whole, src)
    data = os.urandom(6 * 2**20)
    partial = hashlib.sha256(data).hexdigest()
    cleanup = _start_partial(store, partial, data)
    try:
        assert [s.sha256 for s in store.list()] == [whole]
        assert not store.exists(partial)
        with pytest.raises(BlobNotFound):
            store.open(partial)
    finally:
        cleanup()


def test_list_ignores_objects_that_are_not_blobs(store: BlobStore, tmp_path: Path) -> None:
    key, src = _source(tmp_path, b"a blob")
    store.put_file(key, src)
    if isinstance(store, LocalBlobStore):
        (store.root / key[:2] / key[2:4] / "notes.txt").write_text("x")
        (store.root / "README").write_text("x")
    elif isinstance(store, S3BlobStore):
        for stray in (store.key("blobs", "README"), store.key("blobs", key[:2], key[2:4], key + ".bak"),
                      store.key("blobs", "00", "00", key)):
            store.client.put_object(Bucket=store.bucket, Key=stray, Body=b"x")
    assert [s.sha256 for s in store.list()] == [key]


def test_local_file_holds_the_blob(store: BlobStore, tmp_path: Path) -> None:
    data = os.urandom(100_000)
    key, src = _source(tmp_path, data)
    store.put_file(key, src)
    with store.local_file(key) as path:
        assert path.read_bytes() == data
        with open(path, "rb") as f:  # seekable, as decoders want
            f.seek(50_000)
            assert f.read(10) == data[50_000:50_010]
        is_copy = not isinstance(store, LocalBlobStore)
        if is_copy:
            assert path.is_relative_to(tmp_path / "copies")
            assert not os.access(path, os.W_OK) or os.geteuid() == 0
            assert path.stat().st_mode & 0o222 == 0  # read only
    if is_copy:
        assert not path.exists()
        assert list((tmp_path / "copies").iterdir()) == []
    assert store.exists(key)  # the blob itself stays, of course


def test_local_file_of_a_missing_blob(store: BlobStore, tmp_path: Path) -> None:
    with pytest.raises(BlobNotFound), store.local_file("2" * 64):
        pass


def test_local_file_copy_is_removed_on_error(store: BlobStore, tmp_path: Path) -> None:
    key, src = _source(tmp_path, b"decoder crashed")
    store.put_file(key, src)
    seen: list[Path] = []
    with pytest.raises(RuntimeError), store.local_file(key) as path:
        seen.append(path)
        raise RuntimeError("decoder failed")
    assert seen[0].exists() == isinstance(store, LocalBlobStore)


def test_local_file_copy_is_bounded(store: BlobStore, tmp_path: Path) -> None:
    if isinstance(store, LocalBlobStore):
        pytest.skip("the local store hands out the blob itself: no copy to bound")
    assert isinstance(store, MemoryBlobStore | S3BlobStore)
    key, src = _source(tmp_path, b"x" * 5000)
    store.put_file(key, src)
    store.copies = TempCopies(tmp_path / "copies", max_bytes=4999)
    with pytest.raises(CopyTooLarge, match="larger than") as too_large, store.local_file(key):
        pass
    assert "CAMROLL_LOCAL_COPY_MAX" in too_large.value.fix
    store.copies = TempCopies(tmp_path / "copies", reserve_bytes=2**62)
    with pytest.raises(CopySpaceShort, match="does not fit") as short, store.local_file(key):
        pass
    from camroll.server.diskspace import is_out_of_space

    assert is_out_of_space(short.value)  # so the job queue waits for disk space instead of failing the file
    assert list((tmp_path / "copies").iterdir()) == []


def test_s3_errors_name_the_problem_and_the_fix(seaweedfs_s3: S3Service, tmp_path: Path) -> None:
    from camroll.server.storage.base import StorageAccessDenied, StorageBucketMissing, StorageFailure

    svc = seaweedfs_s3
    assert svc.readonly_keys is not None
    writer = svc.store()
    key, src = _source(tmp_path, b"readable")
    writer.put_file(key, src)
    reader = svc.store(writer.prefix, keys=svc.readonly_keys)
    with reader.open(key) as f:  # type: ignore[attr-defined]
        assert f.read() == b"readable"
    assert [s.sha256 for s in reader.list()] == [key]
    _, again = _source(tmp_path, b"new bytes", "new")
    with pytest.raises(StorageAccessDenied) as denied:
        reader.put_file(hashlib.sha256(b"new bytes").hexdigest(), again)
    assert "answered 403 to store blob" in denied.value.problem and "no write access" in denied.value.problem
    assert "write permission" in denied.value.fix and not denied.value.transient
    with pytest.raises(StorageAccessDenied, match="no delete access"):
        reader.delete(key)
    gone = svc.store(bucket="no-such-bucket")
    for call in (gone.check, lambda: list(gone.list()), lambda: gone.open(key)):
        with pytest.raises(StorageBucketMissing, match="has no bucket 'no-such-bucket'") as missing:
            call()
        assert "Create the bucket" in missing.value.fix
    assert issubclass(StorageBucketMissing, StorageFailure)


@pytest.mark.parametrize("service", ["seaweedfs_s3", "rclone_s3"])
def test_s3_re_put_survives_the_blob_vanishing_between_head_and_copy(service: str, request: pytest.FixtureRequest,
                                                                      tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    svc: S3Service = request.getfixturevalue(service)
    store = svc.store()
    key, src = _source(tmp_path, b"swept in between")
    store.put_file(key, src)
    real_head = store._head

    def head_then_sweep(k: str, sha: str) -> dict[str, object] | None:
        found = real_head(k, sha)
        store.client.delete_object(Bucket=store.bucket, Key=k)  # the orphan sweep, just then
        return found

    monkeypatch.setattr(store, "_head", head_then_sweep)
    _, again = _source(tmp_path, b"swept in between", "again")
    store.put_file(key, again)
    monkeypatch.undo()
    with store.open(key) as f:  # type: ignore[attr-defined]
        assert f.read() == b"swept in between"


def _staged(tmp_path: Path, parts: list[bytes], name: str = "staged") -> tuple[Path, list[Span]]:
    """A batch's staging file: the parts one after another, and where each is."""
    path = tmp_path / name
    spans, at = [], 0
    with open(path, "wb") as f:
        for data in parts:
            f.write(data)
            spans.append(Span(hashlib.sha256(data).hexdigest(), at, len(data)))
            at += len(data)
    return path, spans


def test_put_batch_stores_each_span_as_its_own_blob(store: BlobStore, tmp_path: Path) -> None:
    parts = [os.urandom(n) for n in (0, 1, 5000, 70_000, 123)]
    source, spans = _staged(tmp_path, parts)
    assert store.put_batch(source, spans) == set()
    assert not source.exists()  # consumed, as put_file's source
    listed = {s.sha256: s for s in store.list()}
    assert set(listed) == {s.sha256 for s in spans}
    for data, span in zip(parts, spans, strict=True):
        assert store.exists(span.sha256)
        assert store.stat(span.sha256).size == len(data)
        assert listed[span.sha256].size == len(data) and listed[span.sha256].modified is not None
        with store.open(span.sha256) as f:  # type: ignore[attr-defined]
            assert f.read() == data
    big = parts[3]
    key = spans[3].sha256
    for offset, length in [(10, 5), (0, 0), (len(big) - 1, 10), (len(big), None), (len(big) + 7, 3), (69_000, None)]:
        f = store.open(key, offset, length)
        try:
            assert f.read() == (big[offset:] if length is None else big[offset:offset + length]), (offset, length)
        finally:
            f.close()
    with store.local_file(key) as path:
        assert path.read_bytes() == big


def test_put_batch_reports_blobs_already_stored_and_a_repeated_key_once(store: BlobStore, tmp_path: Path) -> None:
    before, src = _source(tmp_path, b"stored before")
    store.put_file(before, src)
    old = _age(store, before)
    source, spans = _staged(tmp_path, [b"new one", b"stored before", b"new one", b"another"])
    assert store.put_batch(source, spans) == {before}
    listed = [s.sha256 for s in store.list()]
    assert sorted(listed) == sorted({s.sha256 for s in spans})  # each key once
    (again,) = [s for s in store.list() if s.sha256 == before]
    assert again.modified is not None and again.modified > old  # re-used: the sweep's grace starts again
    # And a second batch of the same: all re-used, refreshed, nothing written twice.
    newer = _age(store, spans[0].sha256)
    source, spans = _staged(tmp_path, [b"new one", b"another"], "second")
    assert store.put_batch(source, spans) == {spans[0].sha256, spans[1].sha256}
    (refreshed,) = [s for s in store.list() if s.sha256 == spans[0].sha256]
    assert refreshed.modified is not None and refreshed.modified > newer
    with store.open(spans[0].sha256) as f:  # type: ignore[attr-defined]
        assert f.read() == b"new one"


def test_blobs_of_a_batch_are_deleted_one_by_one(store: BlobStore, tmp_path: Path) -> None:
    parts = [os.urandom(3000) for _ in range(6)]
    source, spans = _staged(tmp_path, parts)
    store.put_batch(source, spans)
    for i, span in enumerate(spans):
        store.delete(span.sha256)
        store.delete(span.sha256)  # idempotent
        assert not store.exists(span.sha256)
        with pytest.raises(BlobNotFound):
            store.open(span.sha256)
        rest = spans[i + 1:]
        assert sorted(s.sha256 for s in store.list()) == sorted(s.sha256 for s in rest)
        for data, other in zip(parts[i + 1:], rest, strict=True):  # the others are whole, however stored
            with store.open(other.sha256) as f:  # type: ignore[attr-defined]
                assert f.read() == data
    # A deleted key can be stored again.
    source, spans = _staged(tmp_path, parts[:1], "again")
    assert store.put_batch(source, spans) == set()
    with store.open(spans[0].sha256) as f:  # type: ignore[attr-defined]
        assert f.read() == parts[0]


def test_put_batch_checks_every_key_before_any_io(store: BlobStore, tmp_path: Path) -> None:
    source, spans = _staged(tmp_path, [b"good"])
    with pytest.raises(InvalidKey):
        store.put_batch(source, [*spans, Span("../" + "0" * 61, 0, 1)])
    assert list(store.list()) == []
