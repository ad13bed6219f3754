"""Where a restore writes each device path: always a plain relative path under DEST, whatever the server
sends (absolute, ``..``, NUL, Windows paths, over-long names, bytes that are not UTF-8)."""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from camroll import wire
from camroll.agent.restore.names import (
    MAX_COMPONENT,
    MAX_RELATIVE,
    NO_DEVICE,
    WORK_DIR,
    component,
    device_path,
    numbered,
    relative,
)
from camroll.agent.restore.run import plan


def _safe(rel: bytes) -> None:
    parts = rel.split(b"/")
    assert not rel.startswith(b"/") and b"\0" not in rel
    assert all(p not in (b"", b".", b"..") and len(p) <= MAX_COMPONENT for p in parts), rel
    assert len(rel) <= MAX_RELATIVE + MAX_COMPONENT + 40


@pytest.mark.parametrize(("device", "path", "want"), [
    ("laptop", b"/home/ann/Pictures/IMG_1.jpg", b"laptop/home/ann/Pictures/IMG_1.jpg"),
    ("laptop", b"/home/ann/../../etc/passwd", b"laptop/home/ann/__/__/etc/passwd"),
    ("laptop", b"../../../x.jpg", b"laptop/__/__/__/x.jpg"),
    ("pc", b"C:\\Users\\Ann\\Pictures\\IMG.jpg", b"pc/C/Users/Ann/Pictures/IMG.jpg"),
    ("phone", b"/sdcard/DCIM/a\0b.jpg", b"phone/sdcard/DCIM/a_b.jpg"),
    ("phone", b"/sdcard/./DCIM//x.jpg", b"phone/sdcard/DCIM/x.jpg"),
    ("../evil", b"/x.jpg", b".._evil/x.jpg"),
    ("..", b"/x.jpg", b"__/x.jpg"),
    (WORK_DIR, b"/x.jpg", b"_" + WORK_DIR.encode() + b"/x.jpg"),
    (None, b"", NO_DEVICE + b"/IMG.jpg"),
    ("laptop", b"/", b"laptop/IMG.jpg"),
])
def test_paths_stay_under_dest(device: str | None, path: bytes, want: bytes) -> None:
    rel = relative(device, path, "IMG.jpg")
    assert rel == want
    _safe(rel)


def test_a_name_too_long_is_cut_keeping_its_extension_and_whole_characters() -> None:
    name = ("写" * 120 + ".jpeg").encode()  # 365 bytes
    cut = component(name)
    assert len(cut) <= MAX_COMPONENT and cut.endswith(b".jpeg")
    cut.decode("utf-8")  # no half character
    assert component(("写" * 119 + "x.jpeg").encode()) != cut  # the digest keeps different names apart


def test_a_path_too_long_keeps_its_file_name() -> None:
    path = b"/" + b"/".join([b"d" * 200] * 30) + b"/IMG_9.jpg"
    rel = relative("laptop", path, "IMG_9.jpg")
    assert rel.startswith(b"laptop/long-paths/") and rel.endswith(b"/IMG_9.jpg")
    _safe(rel)


def test_names_that_are_not_utf8_come_back_as_their_bytes() -> None:
    raw = b"/photos/caf\xe9.jpg"
    info = wire.AssetFileInfo(device_id=1, device_name="d", path="/photos/caf\\xe9.jpg", filename="caf\\xe9.jpg",
                              mtime_ns=1, path_raw=base64.b64encode(raw).decode())
    assert device_path(info) == raw
    assert relative("d", device_path(info), info.filename) == b"d/photos/caf\xe9.jpg"


def test_numbered_names() -> None:
    assert numbered(b"a/IMG.jpg", 2) == b"a/IMG (2).jpg"
    assert numbered(b"a/IMG.jpg", 1, b"restored") == b"a/IMG (restored).jpg"
    assert numbered(b"a/IMG.jpg", 3, b"restored") == b"a/IMG (restored 3).jpg"
    assert numbered(b"a/README", 2) == b"a/README (2)"
    long = b"a/" + b"x" * 250 + b".jpg"
    assert len(numbered(long, 2).rsplit(b"/", 1)[1]) <= MAX_COMPONENT


def _asset(i: int, sha: str, *files: tuple[str | None, str]) -> wire.AssetInfo:
    return wire.AssetInfo(id=i, sha256=sha, size=10, mime="image/jpeg", filename="IMG.jpg",
                          created_at=datetime(2024, 1, 1, tzinfo=UTC),
                          files=[wire.AssetFileInfo(device_id=1 if d == "laptop" else 2, device_name=d, path=p,
                                                    filename=os.path.basename(p), mtime_ns=5) for d, p in files])


def test_the_plan_keeps_different_files_at_one_path_apart_and_writes_each_place_once() -> None:
    a, b, c = "a" * 64, "b" * 64, "c" * 64
    entries = plan([
        _asset(3, c, ("laptop", "/p/IMG.jpg")),  # the same path, later bytes
        _asset(1, a, ("laptop", "/p/IMG.jpg"), ("laptop", "/p/IMG.jpg"), ("phone", "/DCIM/IMG.jpg")),
        _asset(2, b, ("laptop", "/p/IMG.jpg")),
        _asset(4, "d" * 64),  # uploaded in the browser: no device path
    ])
    assert [(e.asset_id, e.rel) for e in entries] == [
        (1, b"laptop/p/IMG.jpg"), (1, b"phone/DCIM/IMG.jpg"), (2, b"laptop/p/IMG (2).jpg"),
        (3, b"laptop/p/IMG (3).jpg"), (4, NO_DEVICE + b"/IMG.jpg")]
    assert [e.rel for e in plan([_asset(1, a, ("laptop", "/p/IMG.jpg"), ("phone", "/x.jpg"))], device_id=2)] == [
        b"phone/x.jpg"]


@given(st.binary(max_size=600), st.text(max_size=80))
def test_any_path_from_the_server_is_safe(path: bytes, device: str) -> None:
    _safe(relative(device or None, path, "f.jpg"))
