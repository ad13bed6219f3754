"""A deterministic Google Takeout export for tests: several zip (or tgz) parts holding real JPEG/HEIC/MOV
files and JSON sidecars with every naming quirk camroll's matcher handles.

``make_export(dir)`` returns an :class:`Export`: the part files plus what each photo must become
(capture time, albums, which sidecar and matcher), so tests compare against it rather than against
numbers copied by hand.  Most photos carry no EXIF date, so a wrong sidecar match shows up as a wrong
capture time; the two with EXIF have a sidecar time a day off, which must *not* win.
"""

from __future__ import annotations

import io
import json
import random
import subprocess
import tarfile
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from PIL import ExifTags, Image

ROOT = "Takeout/Google Photos"
FIXED_ZIP_TIME = (2024, 1, 2, 3, 4, 6)


@dataclass
class Expect:
    """One photo or video the import must produce."""

    name: str  # member name inside the parts
    sha256: str
    taken_at: datetime  # the capture time the server must show
    albums: list[str] = field(default_factory=list)
    sidecar: str | None = None  # member name of its sidecar
    match: str | None = None  # MatchKind value
    exif: bool = False
    favorited: bool = False
    description: str = ""
    gps: tuple[float, float] | None = None


@dataclass
class Export:
    parts: list[Path]
    expect: dict[str, Expect]  # by member name
    skipped: dict[str, str]  # member name -> SkipReason value
    unused_json: list[str]
    albums: dict[str, str]  # folder -> title

    def by_sha(self) -> dict[str, Expect]:
        return {e.sha256: e for e in self.expect.values()}


def _picture(seed: int, size: tuple[int, int] = (96, 64)) -> Image.Image:
    rng = random.Random(seed)
    img = Image.new("RGB", size, (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    for _ in range(40):
        x, y = rng.randrange(size[0] - 8), rng.randrange(size[1] - 8)
        img.paste((rng.randrange(256), rng.randrange(256), rng.randrange(256)), (x, y, x + 8, y + 8))
    return img


def jpeg(seed: int, exif_time: datetime | None = None) -> bytes:
    """A real JPEG; with ``exif_time`` it carries DateTimeOriginal (UTC offset) like a camera's."""
    kw: dict[str, object] = {"quality": 85}
    if exif_time is not None:
        ex = Image.Exif()
        ex[ExifTags.Base.Make] = "Google"
        ex[ExifTags.Base.Model] = "Pixel 7"
        sub = ex.get_ifd(ExifTags.IFD.Exif)
        sub[ExifTags.Base.DateTimeOriginal] = exif_time.strftime("%Y:%m:%d %H:%M:%S")
        sub[ExifTags.Base.OffsetTimeOriginal] = "+00:00"
        kw["exif"] = ex.tobytes()
    buf = io.BytesIO()
    _picture(seed).save(buf, "JPEG", **kw)
    return buf.getvalue()


def heic(seed: int) -> bytes:
    import pillow_heif

    pillow_heif.register_heif_opener()
    buf = io.BytesIO()
    _picture(seed).save(buf, "HEIF", quality=50)
    return buf.getvalue()


def mov(tmp: Path) -> bytes:
    """A real QuickTime clip without a creation time (its date must come from the still's sidecar)."""
    out = tmp / "live.mov"
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=64x48:rate=10:duration=0.5", "-c:v", "libx264", "-preset", "ultrafast",
                    "-pix_fmt", "yuv420p", "-f", "mov", "-map_metadata", "-1", str(out)], check=True)
    data = out.read_bytes()
    out.unlink()
    return data


def sidecar(title: str, taken: datetime, *, lat: float = 0.0, lon: float = 0.0, description: str = "",
            favorited: bool = False, trashed: bool = False) -> bytes:
    doc: dict[str, object] = {
        "title": title,
        "description": description,
        "imageViews": "3",
        "creationTime": {"timestamp": "1700000000", "formatted": "Nov 14, 2023"},
        "photoTakenTime": {"timestamp": str(int(taken.timestamp())), "formatted": "whatever"},
        "geoData": {"latitude": 0.0, "longitude": 0.0, "altitude": 0.0},
        "geoDataExif": {"latitude": lat, "longitude": lon, "altitude": 10.0},
        "url": "https://photos.google.com/photo/x",
    }
    if favorited:
        doc["favorited"] = True
    if trashed:
        doc["trashed"] = True
    return json.dumps(doc, indent=2).encode()


def album_json(title: str) -> bytes:
    return json.dumps({"title": title, "description": "", "access": "protected",
                       "date": {"timestamp": "1600000000"}}).encode()


def _t(y: int, mo: int, d: int, h: int = 12, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=UTC)


def make_export(out: Path, *, parts: int = 3, fmt: str = "zip", with_video: bool = True) -> Export:
    """Write the export's parts into ``out`` and return what the import must find in them."""
    import hashlib

    out.mkdir(parents=True, exist_ok=True)
    files: list[tuple[str, bytes, int]] = []  # (member name, bytes, part index)
    expect: dict[str, Expect] = {}
    seed = iter(range(1000, 2000))

    def add(name: str, data: bytes, part: int) -> str:
        files.append((f"{ROOT}/{name}", data, part % parts))
        return f"{ROOT}/{name}"

    def photo(folder: str, base: str, taken: datetime, *, part: int, json_name: str | None,
              json_part: int | None = None, match: str | None = None, exif_time: datetime | None = None,
              data: bytes | None = None, **side: object) -> bytes:
        data = data if data is not None else jpeg(next(seed), exif_time)
        name = add(f"{folder}/{base}", data, part)
        sc = None
        if json_name is not None:
            sc = add(f"{folder}/{json_name}", sidecar(base, taken, **side), part if json_part is None else json_part)  # type: ignore[arg-type]
        lat, lon = float(side.get("lat", 0.0)), float(side.get("lon", 0.0))  # type: ignore[arg-type]
        expect[name] = Expect(name, hashlib.sha256(data).hexdigest(), exif_time or taken, sidecar=sc,
                              match=match if sc else None, exif=exif_time is not None,
                              favorited=bool(side.get("favorited")), description=str(side.get("description", "")),
                              gps=(lat, lon) if (lat or lon) else None)
        return data

    y19, y87, y21 = "Photos from 2019", "Fotos von 1987", "Photos de 2021"
    # Plain name, EXIF date (wins over the sidecar's, a day off), GPS, favourite, description.
    rome = photo(y19, "IMG_0001.jpg", _t(2019, 3, 5, 10), part=0, json_name="IMG_0001.jpg.json", match="exact",
                 exif_time=_t(2019, 3, 4, 10), lat=41.9, lon=12.5, favorited=True, description="Colosseum")
    # Two photos of one name: the counter moves to the other side of the extension in the JSON.
    photo(y19, "IMG_0002.jpg", _t(2019, 4, 1, 9), part=0, json_name="IMG_0002.jpg.json", match="exact")
    photo(y19, "IMG_0002(1).jpg", _t(2019, 4, 2, 9), part=1, json_name="IMG_0002.jpg(1).json", match="counter")
    photo(y19, "Scan35(2).jpg", _t(2019, 4, 3, 9), part=1,
          json_name="Scan35.jpg.supplemental-metadata(2).json", match="counter")
    # Long titles: the JSON's name cut to 46 characters before ".json".
    long1 = "a_very_long_file_name_from_a_messaging_app_export_holiday.jpg"
    photo(y19, long1, _t(2019, 5, 1, 8), part=0, json_name=long1[:46] + ".json", match="truncated")
    long2 = "another_long_name_sent_by_a_friend_with_a_phone.jpeg"
    photo(y19, long2, _t(2019, 5, 2, 8), part=2,
          json_name=(long2 + ".supplemental-metadata")[:46] + ".json", match="truncated")
    # supplemental-metadata and its cuts.
    photo(y19, "beach.jpg", _t(2019, 6, 1, 7), part=1, json_name="beach.jpg.supplemental-metadata.json",
          match="supplemental")
    photo(y19, "forest.jpg", _t(2019, 6, 2, 7), part=1, json_name="forest.jpg.supplemental-metad.json",
          match="supplemental")
    photo(y19, "lake.jpg", _t(2019, 6, 3, 7), part=2, json_name="lake.jpg.suppl.json", match="supplemental",
          json_part=0)  # the JSON in another part than its photo
    # An edited copy shares the original's sidecar (and has no EXIF of its own).
    photo(y19, "IMG_0003.jpg", _t(2019, 7, 1, 6), part=2, json_name="IMG_0003.jpg.json", match="exact",
          json_part=1)
    edited = add(f"{y19}/IMG_0003-edited.jpg", ed := jpeg(next(seed)), 0)
    expect[edited] = Expect(edited, hashlib.sha256(ed).hexdigest(), _t(2019, 7, 1, 6),
                            sidecar=f"{ROOT}/{y19}/IMG_0003.jpg.json", match="edited")
    # A scan with no EXIF and no date in its name: only the sidecar knows it was 1987.
    photo(y87, "grandma scan.jpg", _t(1987, 6, 15, 12), part=1, json_name="grandma scan.jpg.json", match="exact",
          lat=48.85, lon=2.35)
    # A Motion Photo: its separate .MP video is left out (the JPEG carries it).
    photo(y19, "MVIMG_20190808_101010.jpg", _t(2019, 8, 8, 10), part=0, json_name="MVIMG_20190808_101010.jpg.json",
          match="exact", exif_time=_t(2019, 8, 8, 10, 10))
    mp = add(f"{y19}/MVIMG_20190808_101010.MP", b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 200, 0)
    # A photo in Google's trash: skipped.
    trashed = add(f"{y19}/deleted.jpg", jpeg(next(seed)), 0)
    add(f"{y19}/deleted.jpg.json", sidecar("deleted.jpg", _t(2019, 9, 1), trashed=True), 0)
    # A photo without a sidecar (its EXIF still dates it).
    photo(y19, "lonely.jpg", _t(2019, 10, 1), part=2, json_name=None, exif_time=_t(2019, 10, 1, 11))
    # A Live Photo: HEIC + MOV of one stem; only the HEIC has a sidecar.
    if with_video:
        photo(y21, "IMG_0100.HEIC", _t(2021, 2, 3, 4), part=1, json_name="IMG_0100.HEIC.json", match="exact",
              data=heic(next(seed)))
        clip = add(f"{y21}/IMG_0100.MOV", c := mov(out), 2)
        expect[clip] = Expect(clip, hashlib.sha256(c).hexdigest(), _t(2021, 2, 3, 4),
                              sidecar=f"{ROOT}/{y21}/IMG_0100.HEIC.json", match="live_partner")
    # Albums: a copy of IMG_0001 (same bytes: one item), a photo only in the album, a localised metadata name.
    add("Trip to Rome/metadata.json", album_json("Trip to Rome"), 2)
    add("Trip to Rome/IMG_0001.jpg", rome, 2)
    add("Trip to Rome/IMG_0001.jpg.json", sidecar("IMG_0001.jpg", _t(2019, 3, 5, 10)), 2)
    photo("Trip to Rome", "only_in_album.jpg", _t(2019, 3, 6, 15), part=1, json_name="only_in_album.jpg.json",
          match="exact")
    expect[f"{ROOT}/{y19}/IMG_0001.jpg"].albums.append("Trip to Rome")
    expect[f"{ROOT}/Trip to Rome/only_in_album.jpg"].albums.append("Trip to Rome")
    add("Famille/métadonnées.json", album_json("Famille"), 0)
    add("Famille/IMG_0002.jpg", next(d for n, d, _ in files if n.endswith(f"{y19}/IMG_0002.jpg")), 0)
    expect[f"{ROOT}/{y19}/IMG_0002.jpg"].albums.append("Famille")
    # Not photos: Takeout's own files.
    add("print-subscriptions.json", json.dumps({"subscriptions": []}).encode(), 0)
    files.append(("Takeout/archive_browser.html", b"<html></html>", 0))

    paths = _write_parts(out, files, parts, fmt)
    return Export(
        parts=paths, expect=expect,
        skipped={mp: "motion_part", trashed: "trashed", "Takeout/archive_browser.html": "not_media"},
        unused_json=[f"{ROOT}/print-subscriptions.json"],
        albums={f"{ROOT}/Trip to Rome": "Trip to Rome", f"{ROOT}/Famille": "Famille"},
    )


def _write_parts(out: Path, files: list[tuple[str, bytes, int]], parts: int, fmt: str) -> list[Path]:
    paths: list[Path] = []
    for p in range(parts):
        members = sorted((n, d) for n, d, i in files if i == p)
        if fmt == "zip":
            path = out / f"takeout-20240102T030405Z-{p + 1:03d}.zip"
            with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
                for name, data in members:
                    z.writestr(zipfile.ZipInfo(name, FIXED_ZIP_TIME), data, zipfile.ZIP_DEFLATED)
        else:
            path = out / f"takeout-20240102T030405Z-{p + 1:03d}.tgz"
            with tarfile.open(path, "w:gz", compresslevel=1) as t:
                for name, data in members:
                    info = tarfile.TarInfo(name)
                    info.size, info.mtime = len(data), 1704164645
                    t.addfile(info, io.BytesIO(data))
        paths.append(path)
    return paths
