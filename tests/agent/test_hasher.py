from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest
from support.media import jpeg_bytes, mp4_bytes

from camroll.agent.backup import hasher
from camroll.agent.backup.hasher import FileChanged, NotMedia, describe_head, hash_file


def test_hash_and_sniff(tmp_path: Path) -> None:
    data = jpeg_bytes(1)
    p = tmp_path / "a.jpg"
    p.write_bytes(data)
    r = hash_file(str(p))
    assert r.sha256 == hashlib.sha256(data).hexdigest()
    assert r.media_type.mime == "image/jpeg"
    assert r.stat_key[0] == len(data)


def test_large_multi_read(tmp_path: Path) -> None:
    data = mp4_bytes(3 * hasher.READ_SIZE + 17)
    p = tmp_path / "v.mp4"
    p.write_bytes(data)
    r = hash_file(str(p))
    assert r.sha256 == hashlib.sha256(data).hexdigest() and r.media_type.kind == "video"


def test_not_media_and_empty(tmp_path: Path) -> None:
    p = tmp_path / "notes.jpg"
    p.write_text("hello world, not a photo")
    with pytest.raises(NotMedia, match=r"not a photo or video camroll recognises \(first bytes look like t"):
        hash_file(str(p))
    (tmp_path / "e.jpg").write_bytes(b"")
    with pytest.raises(NotMedia, match="empty file"):
        hash_file(str(tmp_path / "e.jpg"))
    assert describe_head(b"%PDF-1.7") == "a PDF document"
    assert describe_head(bytes(range(200, 216))).startswith("bytes c8 c9")


def test_changed_while_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "v.mp4"
    p.write_bytes(mp4_bytes(4 * hasher.READ_SIZE))
    calls = {"n": 0}
    done = threading.Event()

    orig = hasher.hashlib.sha256

    class Appending:
        def __init__(self) -> None:
            self.h = orig()

        def update(self, b: memoryview) -> None:
            calls["n"] += 1
            if calls["n"] == 2 and not done.is_set():
                done.set()
                with open(p, "ab") as f:
                    f.write(b"more")
            self.h.update(b)

        def hexdigest(self) -> str:
            return self.h.hexdigest()

    monkeypatch.setattr(hasher.hashlib, "sha256", Appending)
    with pytest.raises(FileChanged):
        hash_file(str(p))


@pytest.mark.parametrize("size", [3 * 1024 * 1024, 3 * 1024 * 1024 + 17, 700_001])
@pytest.mark.parametrize("chunk", [1024 * 1024, 300_000])
def test_chunk_digests_in_the_same_read(tmp_path: Path, size: int, chunk: int) -> None:
    data = mp4_bytes(size, seed=size)
    p = tmp_path / "v.mp4"
    p.write_bytes(data)
    r = hash_file(str(p), chunk)
    assert r.sha256 == hashlib.sha256(data).hexdigest()
    if size <= chunk:
        assert (r.chunk_digests, r.chunk_size) == ((), 0)
        return
    want = tuple(hashlib.sha256(data[i:i + chunk]).digest() for i in range(0, size, chunk))
    assert r.chunk_digests == want and r.chunk_size == chunk


def test_no_chunk_digests_for_a_one_chunk_file(tmp_path: Path) -> None:
    data = jpeg_bytes(2)
    p = tmp_path / "a.jpg"
    p.write_bytes(data)
    r = hash_file(str(p), len(data))
    assert r.sha256 == hashlib.sha256(data).hexdigest()
    assert (r.chunk_digests, r.chunk_size) == ((), 0)
