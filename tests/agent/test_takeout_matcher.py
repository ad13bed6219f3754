"""The Takeout matcher, the archive readers and the sidecar parser: pure functions and real archives."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from camroll.agent.imports import sidecar
from camroll.agent.imports.archive import (
    MAX_COMPONENT_BYTES,
    Member,
    RefusedReason,
    open_source,
    read_bounded,
    safe_name,
)
from camroll.agent.imports.run import index
from camroll.agent.imports.takeout import (
    FolderKind,
    MatchKind,
    SkipReason,
    folder_kind,
    parse_json_name,
    parse_media_name,
    plan,
)

from .takeout_maker import make_export


def _sc(title: str = "x", ts: int = 1_600_000_000, **extra: object) -> bytes:
    return json.dumps({"title": title, "photoTakenTime": {"timestamp": str(ts)}, **extra}).encode()


def _plan(files: dict[str, bytes]) -> tuple[dict[str, object], object]:
    members = [Member("p.zip", n, len(d), n) for n, d in files.items()]
    jsons = {n: sidecar.parse(d) for n, d in files.items() if n.endswith(".json")}
    p = plan(members, jsons)
    return {i.name: i for i in p.items}, p


# --- names ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "safe"), [
    ("../../etc/passwd", "etc/passwd"),
    ("/abs/path.jpg", "abs/path.jpg"),
    ("C:\\Users\\x\\a.jpg", "Users/x/a.jpg"),
    ("a/./b/../c.jpg", "a/b/c.jpg"),
    ("nul\x00byte.jpg", "nulbyte.jpg"),
    ("ctl\x1b[31m.jpg", "ctl[31m.jpg"),
    ("..", None),
    ("/", None),
    ("\x00\x01", None),
])
def test_hostile_names_are_made_safe(raw: str, safe: str | None) -> None:
    assert safe_name(raw) == safe


def test_over_long_names_are_cut() -> None:
    name = safe_name("d/" + "é" * 400 + ".jpg")
    assert name is not None
    assert len(name.split("/")[1].encode()) <= MAX_COMPONENT_BYTES
    assert len(safe_name("a/" * 5000 + "b") or "") <= 4096


@pytest.mark.parametrize(("name", "base", "counter", "supplemental"), [
    ("IMG.jpg.json", "IMG.jpg", None, False),
    ("IMG.jpg(1).json", "IMG.jpg", 1, False),
    ("IMG.jpg.supplemental-metadata.json", "IMG.jpg", None, True),
    ("IMG.jpg.supplemental-metad.json", "IMG.jpg", None, True),
    ("IMG.jpg.suppl.json", "IMG.jpg", None, True),
    ("IMG.jpg.s.json", "IMG.jpg", None, True),
    ("Scan35.jpg.supplemental-metadata(2).json", "Scan35.jpg", 2, True),
    ("metadata.json", "metadata", None, False),
])
def test_json_names(name: str, base: str, counter: int | None, supplemental: bool) -> None:
    j = parse_json_name(name)
    assert j is not None and (j.base, j.counter, j.supplemental) == (base, counter, supplemental)


def test_media_names() -> None:
    m = parse_media_name("IMG(1).jpg")
    assert (m.title, m.counter, m.original) == ("IMG.jpg", 1, None)
    assert parse_media_name("IMG-edited.jpg").original == "IMG.jpg"
    assert parse_media_name("IMG-bearbeitet.JPG").original == "IMG.JPG"
    assert parse_media_name("IMG-modifié(2).jpg").original == "IMG.jpg"
    assert parse_media_name("-edited.jpg").original is None


@pytest.mark.parametrize(("folder", "kind"), [
    ("Takeout/Google Photos/Photos from 2023", FolderKind.YEAR),
    ("Takeout/Google Fotos/Fotos von 2023", FolderKind.YEAR),
    ("Takeout/Google Photos/Photos de 2023", FolderKind.YEAR),
    ("Takeout/Google Foto/Foto dal 2023", FolderKind.YEAR),
    ("Takeout/Google Photos/Holiday 2023 in Rome", FolderKind.OTHER),
])
def test_folder_kinds(folder: str, kind: FolderKind) -> None:
    assert folder_kind(folder, None) is kind


def test_a_year_folder_with_a_title_is_still_a_year_folder() -> None:
    assert folder_kind("Photos from 2019", "Photos from 2019") is FolderKind.YEAR
    assert folder_kind("Rome", "Rome") is FolderKind.ALBUM


# --- matching ---------------------------------------------------------------------------------------

def test_counter_on_the_other_side_picks_the_right_sidecar() -> None:
    items, _ = _plan({"Y 2019/IMG.jpg": b"a", "Y 2019/IMG(1).jpg": b"bb",
                      "Y 2019/IMG.jpg.json": _sc(ts=1), "Y 2019/IMG.jpg(1).json": _sc(ts=2)})
    a, b = items["Y 2019/IMG.jpg"], items["Y 2019/IMG(1).jpg"]  # type: ignore[index]
    assert a.sidecar_name == "Y 2019/IMG.jpg.json" and a.match is MatchKind.EXACT  # type: ignore[attr-defined]
    assert b.sidecar_name == "Y 2019/IMG.jpg(1).json" and b.match is MatchKind.COUNTER  # type: ignore[attr-defined]


def test_counter_kept_in_the_json_name_is_exact() -> None:
    items, _ = _plan({"d/IMG(1).jpg": b"a", "d/IMG(1).jpg.json": _sc()})
    assert items["d/IMG(1).jpg"].match is MatchKind.EXACT  # type: ignore[attr-defined]


@pytest.mark.parametrize("cut", [45, 46, 47])
def test_truncated_json_names(cut: int) -> None:
    title = "x" * 40 + "_holiday_in_the_mountains.jpg"
    items, _ = _plan({f"d/{title}": b"a", f"d/{title[:cut]}.json": _sc()})
    assert items[f"d/{title}"].match is MatchKind.TRUNCATED  # type: ignore[attr-defined]


def test_truncated_supplemental_names() -> None:
    title = "MVIMG_20191230_232926.jpg"
    items, _ = _plan({f"d/{title}": b"a", f"d/{(title + '.supplemental-metadata')[:46]}.json": _sc()})
    assert items[f"d/{title}"].match is MatchKind.SUPPLEMENTAL  # type: ignore[attr-defined]


def test_a_short_name_is_not_matched_by_a_prefix() -> None:
    # "IMG.json" is not cut (short), so it is no sidecar of "IMG_0001.jpg".
    items, p = _plan({"d/IMG_0001.jpg": b"a", "d/IMG.json": _sc()})
    assert items["d/IMG_0001.jpg"].sidecar is None  # type: ignore[attr-defined]
    assert [u.member.name for u in p.unused_json] == ["d/IMG.json"]  # type: ignore[attr-defined]


def test_edited_shares_the_original_sidecar() -> None:
    items, _ = _plan({"d/IMG.jpg": b"a", "d/IMG-edited.jpg": b"bb", "d/IMG.jpg.json": _sc()})
    e = items["d/IMG-edited.jpg"]
    assert e.match is MatchKind.EDITED and e.sidecar_name == "d/IMG.jpg.json"  # type: ignore[attr-defined]
    assert e.edited_of == "d/IMG.jpg"  # type: ignore[attr-defined]


def test_live_photo_pair_and_motion_part() -> None:
    items, p = _plan({"d/IMG_1.HEIC": b"a", "d/IMG_1.MOV": b"bb", "d/IMG_1.HEIC.json": _sc(),
                      "d/MVIMG_2.jpg": b"c", "d/MVIMG_2.MP": b"dd"})
    still, clip = items["d/IMG_1.HEIC"], items["d/IMG_1.MOV"]
    assert still.live_partner == "d/IMG_1.MOV" and clip.live_partner == "d/IMG_1.HEIC"  # type: ignore[attr-defined]
    assert clip.match is MatchKind.LIVE_PARTNER  # type: ignore[attr-defined]
    assert "d/MVIMG_2.MP" not in items and items["d/MVIMG_2.jpg"].motion_part == "d/MVIMG_2.MP"  # type: ignore[attr-defined]
    assert [(s.member.name, s.reason) for s in p.skipped] == [("d/MVIMG_2.MP", SkipReason.MOTION_PART)]  # type: ignore[attr-defined]


def test_album_copy_is_one_item_with_memberships() -> None:
    items, p = _plan({"Photos from 2020/a.jpg": b"same", "Rome/a.jpg": b"same", "Rome/metadata.json":
                      json.dumps({"title": "Rome"}).encode(), "Paris/a.jpg": b"same",
                      "Paris/Metadaten.json": json.dumps({"title": "Paris"}).encode(),
                      "Rome/b.jpg": b"b", "Photos from 2020/a.jpg.json": _sc()})
    assert set(items) == {"Photos from 2020/a.jpg", "Rome/b.jpg"}
    assert sorted(items["Photos from 2020/a.jpg"].albums) == ["Paris", "Rome"]  # type: ignore[attr-defined]
    assert items["Rome/b.jpg"].albums == ["Rome"]  # type: ignore[attr-defined]
    assert p.albums == {"Rome": "Rome", "Paris": "Paris"}  # type: ignore[attr-defined]


def test_two_year_folders_are_never_folded_by_name() -> None:
    items, _ = _plan({"Photos from 2019/a.jpg": b"xx", "Photos from 2020/a.jpg": b"yy"})
    assert len(items) == 2


def test_trashed_and_non_media_are_skipped_with_reasons() -> None:
    _, p = _plan({"d/t.jpg": b"a", "d/t.jpg.json": _sc(trashed=True), "d/index.html": b"<html>"})
    assert {(s.member.name, s.reason) for s in p.skipped} == {  # type: ignore[attr-defined]
        ("d/t.jpg", SkipReason.TRASHED), ("d/index.html", SkipReason.NOT_MEDIA)}


# --- sidecars -----------------------------------------------------------------------------------------

def test_sidecar_fields() -> None:
    s = sidecar.parse(json.dumps({
        "title": "a.jpg", "description": "hi", "favorited": True, "photoTakenTime": {"timestamp": "1600000000"},
        "creationTime": {"timestamp": "1700000000"},
        "geoData": {"latitude": 1.0, "longitude": 2.0}, "geoDataExif": {"latitude": 0.0, "longitude": 0.0},
    }).encode())
    assert isinstance(s, sidecar.Sidecar)
    assert s.taken_at == datetime.fromtimestamp(1_600_000_000, UTC)  # photoTakenTime, never creationTime
    assert (s.latitude, s.longitude) == (1.0, 2.0)  # geoDataExif is 0,0: geoData
    assert s.favorited and s.description == "hi"


@pytest.mark.parametrize("ts", ["0", "abc", "99999999999999999999", True, None])
def test_unusable_times_are_none(ts: object) -> None:
    s = sidecar.parse(json.dumps({"photoTakenTime": {"timestamp": ts}}).encode())
    assert isinstance(s, sidecar.Sidecar) and s.taken_at is None


@pytest.mark.parametrize("data", [b"\xff\xfe", b"[1]", b"{", b"[" * 100000 + b"]" * 100000, None])
def test_bad_json_is_not_usable(data: bytes | None) -> None:
    assert isinstance(sidecar.parse(data), sidecar.NotUsable)


def test_album_metadata_and_wrapper() -> None:
    assert sidecar.parse(b'{"title": "Rome"}') == sidecar.AlbumMeta("Rome")
    assert sidecar.parse(b'{"albumData": {"title": "Rome"}}') == sidecar.AlbumMeta("Rome")


# --- archives -----------------------------------------------------------------------------------------

def test_hostile_zip_members_are_safe_and_links_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("../../escape.jpg", b"a")
        z.writestr("/etc/abs.jpg", b"b")
        z.writestr("..", b"c")
        z.writestr("ctl/nul\x00\x07bell.jpg", b"d")  # zipfile cuts a name at NUL; the bell goes
        z.writestr("long/" + "x" * 60000 + ".jpg", b"e")
        link = zipfile.ZipInfo("link.jpg")
        link.external_attr = (0o120777 << 16)
        z.writestr(link, "/etc/passwd")
    src = open_source(path)
    names = sorted(m.name for m in src.members())
    assert names[:3] == ["ctl/nul", "escape.jpg", "etc/abs.jpg"]
    assert names[3].startswith("long/x") and len(names[3].encode()) <= 5 + MAX_COMPONENT_BYTES
    assert {r.reason for r in src.refused} == {RefusedReason.UNSAFE_NAME, RefusedReason.LINK}
    assert not (tmp_path.parent / "escape.jpg").exists()


def test_tar_links_and_devices_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.tgz"
    with tarfile.open(path, "w:gz") as t:
        info = tarfile.TarInfo("a/x.jpg")
        info.size = 3
        t.addfile(info, io.BytesIO(b"abc"))
        for kind, name in ((tarfile.SYMTYPE, "a/s.jpg"), (tarfile.LNKTYPE, "a/h.jpg"), (tarfile.CHRTYPE, "a/dev")):
            i = tarfile.TarInfo(name)
            i.type, i.linkname = kind, "/etc/passwd"
            t.addfile(i)
    src = open_source(path)
    (m,) = list(src.members())
    with src.open(m) as f:
        assert f.read() == b"abc"
    with src.open(m) as f:  # reopened: read again from the start
        assert f.read() == b"abc"
    assert {r.reason for r in src.refused} == {RefusedReason.LINK, RefusedReason.SPECIAL}


def test_zip_bomb_reads_are_bounded(tmp_path: Path) -> None:
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("Takeout/huge.json", b"{" + b" " * (50 * 2**20) + b"}")
    src = open_source(path)
    (m,) = list(src.members())
    assert read_bounded(src, m, sidecar.MAX_JSON_BYTES) is None  # not even decompressed
    assert isinstance(sidecar.parse(None), sidecar.NotUsable)


def test_generated_export_plans_like_its_manifest(tmp_path: Path) -> None:
    for fmt in ("zip", "tgz"):
        ex = make_export(tmp_path / fmt, fmt=fmt, with_video=False)
        idx = index(ex.parts)
        try:
            items = {i.name: i for i in idx.plan.items}
            assert set(items) == set(ex.expect)
            for name, want in ex.expect.items():
                got = items[name]
                assert got.sidecar_name == want.sidecar, name
                assert (got.match.value if got.match else None) == want.match, name
                assert got.albums == want.albums, name
            assert {s.member.name: s.reason.value for s in idx.plan.skipped} == ex.skipped
            assert idx.plan.albums == ex.albums
        finally:
            idx.close()
