"""The local store's packs (storage/packs.py): layout, repack, a lost or damaged index, leftovers, and
kill -9 in the middle of pack writes and repacks."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from camroll.server.storage.base import BlobNotFound, Span, StorageFailure
from camroll.server.storage.local import LocalBlobStore
from camroll.server.storage.packs import INDEX_NAME, read_trailer


def _staged(folder: Path, parts: list[bytes], name: str = "staged") -> tuple[Path, list[Span]]:
    path = folder / name
    spans, at = [], 0
    with open(path, "wb") as f:
        for data in parts:
            f.write(data)
            spans.append(Span(hashlib.sha256(data).hexdigest(), at, len(data)))
            at += len(data)
    return path, spans


def _packs(store: LocalBlobStore) -> list[Path]:
    return sorted((store.root / "packs").glob("*.pack"))


def _read(store: LocalBlobStore, key: str) -> bytes:
    with store.open(key) as f:  # type: ignore[attr-defined]
        return bytes(f.read())


def test_a_batch_is_one_pack_that_names_its_members(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    parts = [os.urandom(2000 + i) for i in range(50)]
    source, spans = _staged(tmp_path, parts)
    store.put_batch(source, spans)
    (pack,) = _packs(store)
    assert [d.name for d in store.root.iterdir() if len(d.name) == 2] == []  # no shard folders at all
    assert read_trailer(pack) == spans  # self-describing: the index can be rebuilt from it
    assert {s.sha256 for s in store.list()} == {s.sha256 for s in spans}
    path, offset, size = store.where(spans[7].sha256)
    assert path == pack and (offset, size) == (spans[7].offset, spans[7].size)


def test_a_batch_of_mostly_stored_blobs_copies_only_the_new_ones(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    old = [os.urandom(10_000) for _ in range(9)]
    source, spans = _staged(tmp_path, old)
    store.put_batch(source, spans)
    fresh = os.urandom(10_000)
    source, spans = _staged(tmp_path, [*old, fresh], "second")
    assert store.put_batch(source, spans) == {s.sha256 for s in spans[:9]}
    second = [p for p in _packs(store) if any(s.sha256 == spans[9].sha256 for s in read_trailer(p))]
    assert len(second) == 1 and second[0].stat().st_size < 11_000  # not the 100 KB staged file
    assert _read(store, spans[9].sha256) == fresh


def test_a_pack_is_rewritten_once_most_of_it_is_dead_and_removed_when_empty(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    parts = [os.urandom(10_000) for _ in range(10)]
    source, spans = _staged(tmp_path, parts)
    store.put_batch(source, spans)
    (first,) = _packs(store)
    for span in spans[:4]:
        store.delete(span.sha256)
    assert _packs(store) == [first]  # most of it live: left as it is
    store.delete(spans[4].sha256)
    store.delete(spans[5].sha256)
    (second,) = _packs(store)
    assert second != first and second.stat().st_size < 55_000  # rewritten with the live ones only
    for data, span in zip(parts[6:], spans[6:], strict=True):
        assert _read(store, span.sha256) == data
    for span in spans[6:]:
        store.delete(span.sha256)
    assert _packs(store) == []
    assert list(store.list()) == []


def test_readers_during_repacks_get_whole_blobs(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    parts = [os.urandom(4000) for _ in range(200)]
    source, spans = _staged(tmp_path, parts)
    store.put_batch(source, spans)
    keep = {s.sha256: d for s, d in zip(spans, parts, strict=True) if int(s.sha256, 16) % 5 == 0}
    errors: list[str] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            for key, data in keep.items():
                try:
                    if _read(store, key) != data:
                        errors.append(f"{key}: wrong bytes")
                except BlobNotFound:
                    errors.append(f"{key}: not found")

    readers = [threading.Thread(target=read) for _ in range(3)]
    for t in readers:
        t.start()
    try:
        for span in spans:
            if span.sha256 not in keep:
                store.delete(span.sha256)
    finally:
        stop.set()
        for t in readers:
            t.join()
    assert errors == []
    assert sum(p.stat().st_size for p in _packs(store)) < 2 * 4000 * len(keep) + 10_000  # the space came back


def test_a_lost_index_is_rebuilt_from_the_packs(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    parts = [os.urandom(3000) for _ in range(20)]
    for i in range(2):
        source, spans = _staged(tmp_path, parts[i * 10:(i + 1) * 10], f"s{i}")
        store.put_batch(source, spans)
    keys = [hashlib.sha256(p).hexdigest() for p in parts]
    store.index.close()
    for p in (store.root / "packs").glob(f"{INDEX_NAME}*"):
        p.unlink()
    (store.root / "packs" / "junk.pack").write_bytes(b"not a pack at all")  # skipped, not fatal
    again = LocalBlobStore(tmp_path / "blobs")
    assert {s.sha256 for s in again.list()} == set(keys)
    assert all(_read(again, k) == p for k, p in zip(keys, parts, strict=True))


def test_a_damaged_index_is_named_with_the_fix(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    source, spans = _staged(tmp_path, [b"x" * 100])
    store.put_batch(source, spans)
    store.index.close()
    (store.root / "packs" / INDEX_NAME).write_bytes(b"garbage " * 1000)
    for p in (store.root / "packs").glob(f"{INDEX_NAME}-*"):
        p.unlink()
    with pytest.raises(StorageFailure) as failure:
        LocalBlobStore(tmp_path / "blobs").check()
    assert INDEX_NAME in failure.value.problem and "rebuilds the index" in failure.value.fix


def test_a_pack_whose_index_commit_never_happened_is_invisible_then_swept(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    source, spans = _staged(tmp_path, [b"kept" * 100])
    store.put_batch(source, spans)

    def crash(*_args: object) -> None:
        raise KeyboardInterrupt  # as if the process died between the pack's rename and its rows

    monkeypatch.setattr(store.index, "add", crash)
    source, lost = _staged(tmp_path, [b"lost" * 100], "second")
    with pytest.raises(KeyboardInterrupt):
        store.put_batch(source, lost)
    monkeypatch.undo()
    assert len(_packs(store)) == 2
    assert not store.exists(lost[0].sha256) and [s.sha256 for s in store.list()] == [spans[0].sha256]
    assert store.sweep_leftovers(time.time() - 3600) == 0  # young: may still be getting its rows
    assert store.sweep_leftovers(time.time() + 1) == 1
    assert len(_packs(store)) == 1 and _read(store, spans[0].sha256) == b"kept" * 100


_WRITER = textwrap.dedent("""
    import hashlib, os, random, sys
    from pathlib import Path
    from camroll.server.storage.base import Span
    from camroll.server.storage.local import LocalBlobStore

    root, work, seed = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    store = LocalBlobStore(root)
    rng = random.Random(seed)
    n = 0
    while True:
        parts = [rng.randbytes(rng.randrange(100, 20_000)) for _ in range(rng.randrange(1, 60))]
        path, spans, at = work / f"staged-{n}", [], 0
        with open(path, "wb") as f:
            for data in parts:
                f.write(data)
                spans.append(Span(hashlib.sha256(data).hexdigest(), at, len(data)))
                at += len(data)
        store.put_batch(path, spans)
        print("stored", n, flush=True)
        for s in spans:  # most go again at once: repacks all the time
            if rng.random() < 0.7:
                store.delete(s.sha256)
        n += 1
""")


def test_kill_9_during_pack_writes_and_repacks_leaves_every_indexed_blob_whole(tmp_path: Path) -> None:
    root, work = tmp_path / "blobs", tmp_path / "work"
    work.mkdir()
    rng = random.Random(20261202)
    for round_ in range(4):
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(root), str(work), str(round_)],
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        for _ in range(rng.randrange(3, 12)):
            assert proc.stdout.readline().startswith("stored"), "the writer died on its own"
        time.sleep(rng.uniform(0, 0.05))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        store = LocalBlobStore(root)
        listed = list(store.list())
        assert listed, f"round {round_}: nothing survived"
        for b in listed:
            assert hashlib.sha256(_read(store, b.sha256)).hexdigest() == b.sha256, f"round {round_}"
        store.sweep_leftovers(time.time() + 1)  # nothing runs now: every pack without rows is garbage
        assert {p.name for p in _packs(store)} == store.index.packs(), f"round {round_}"
        assert {b.sha256 for b in store.list()} == {b.sha256 for b in listed}  # the sweep took no blob
        store.index.close()


def test_a_staging_file_on_another_filesystem_is_copied_into_the_pack(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    store = LocalBlobStore(tmp_path / "blobs")
    parts = [os.urandom(5000) for _ in range(5)]
    source, spans = _staged(tmp_path, parts)
    real = os.replace

    def across(src: str | Path, dst: str | Path) -> None:
        if Path(src) == source:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real(src, dst)

    monkeypatch.setattr(os, "replace", across)
    store.put_batch(source, spans)
    monkeypatch.undo()
    assert not source.exists()
    assert list((store.root / ".tmp").iterdir()) == []
    assert all(_read(store, s.sha256) == d for s, d in zip(spans, parts, strict=True))
