"""``camroll import folder`` against a real ``camroll serve``: a plain export with XMP sidecars in both
naming styles, a hostile sidecar, a sidecar without its photo and a folder that becomes an album; the
sidecar's time and place are used where the photo has none, EXIF wins where it has; a re-run sends nothing.
And the XMP reader alone, on what photo managers write and on hostile input."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from support.media import photo, write

from camroll.agent.imports import xmp
from tests.e2e.helpers import Agent

XMP = """<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description xmlns:exif="http://ns.adobe.com/exif/1.0/" xmlns:xmp="http://ns.adobe.com/xap/1.0/"
  xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/"
  {attrs}>
  <dc:description><rdf:Alt><rdf:li xml:lang="x-default">{caption}</rdf:li></rdf:Alt></dc:description>
</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>"""
BOMB = b"""<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><d exif:DateTimeOriginal="&lol2;"/></x:xmpmeta>"""


def _xmp(caption: str = "", **attrs: str) -> bytes:
    return XMP.format(attrs=" ".join(f'{k}="{v}"' for k, v in attrs.items()), caption=caption).encode()


def test_a_long_caption_is_read_in_linear_time() -> None:
    started = time.perf_counter()
    found = xmp.parse(_xmp("line\n" * 150_000), "a.jpg")
    assert found is not None and len(found.description) <= 2000
    assert time.perf_counter() - started < 5  # quadratic took minutes; linear takes well under a second


def test_the_reader_takes_what_photo_managers_write() -> None:
    s = xmp.parse(_xmp("Tour Eiffel", **{"exif:DateTimeOriginal": "2011-07-14T18:30:05+02:00",
                                          "exif:GPSLatitude": "48,51.5034N", "exif:GPSLongitude": "2,17.67E",
                                          "exif:GPSAltitude": "350/10", "xmp:Rating": "5"}), "a.jpg")
    assert s is not None
    assert s.taken_at == datetime(2011, 7, 14, 16, 30, 5, tzinfo=UTC)
    assert (s.latitude, s.longitude, s.altitude) == (48.85839, 2.2945, 35.0)
    assert (s.description, s.favorited) == ("Tour Eiffel", True)
    south = xmp.parse(_xmp(**{"photoshop:DateCreated": "2020-02-03", "exif:GPSLatitude": "33,52,4.4S",
                              "exif:GPSLongitude": "151.2093", "xmp:Rating": "3"}), "b.jpg")
    assert south is not None and south.taken_at == datetime(2020, 2, 3, tzinfo=UTC)
    assert south.latitude is not None and round(south.latitude, 4) == -33.8679 and not south.favorited


@pytest.mark.parametrize("data", [
    BOMB, b"<not xml", b"", b"x" * (xmp.MAX_BYTES + 1), _xmp(**{"exif:GPSLatitude": "91,0N"}),
    _xmp(**{"exif:DateTimeOriginal": "yesterday", "exif:GPSAltitude": "1/0"}),
    _xmp(**{"xmp:Rating": "\u00b2"}),  # a digit to str.isdigit, not to int()
])
def test_the_reader_ignores_what_it_cannot_use(data: bytes) -> None:
    assert xmp.parse(data, "x.jpg") is None


@pytest.fixture
def agent(server: Any, tmp_path: Path) -> Agent:
    a = Agent(home=tmp_path / "agent-home", server=server, password=server.add_user("ann"))
    a.login()
    return a


def _import(agent: Agent, *args: str) -> dict[str, Any]:
    r = agent.run("import", "folder", *args, "--json", check=False)
    assert r.returncode == 0, r.stderr
    return dict(json.loads(r.stdout))


def _metadata(agent: Agent, asset_id: int) -> dict[str, Any]:
    end = time.monotonic() + 60
    while time.monotonic() < end:
        d = agent.api("GET", f"/assets/{asset_id}").json()
        if d["metadata"].get("width") is not None or d["metadata"].get("error"):
            return dict(d)
        time.sleep(0.2)
    raise AssertionError(f"no metadata for {asset_id}")


def test_an_export_with_xmp_sidecars_imports_with_their_time_place_and_albums(agent: Agent, tmp_path: Path) -> None:
    ex = tmp_path / "OneDrive export"
    write(ex / "IMG_1.JPG", photo(None, color=(1, 2, 3)))
    write(ex / "IMG_1.JPG.xmp", _xmp("At the tower", **{"exif:DateTimeOriginal": "2011-07-14T18:30:00Z",
                                                         "exif:GPSLatitude": "48,51.5034N",
                                                         "exif:GPSLongitude": "2,17.67E", "xmp:Rating": "5"}))
    write(ex / "IMG_2.jpg", photo(None, color=(4, 5, 6)))
    write(ex / "IMG_2.xmp", _xmp(**{"photoshop:DateCreated": "2015-03-01T10:00:00Z"}))
    write(ex / "IMG_3.JPG", photo(datetime(2019, 5, 1, 9, 0), color=(7, 8, 9)))  # its EXIF wins
    write(ex / "IMG_3.JPG.xmp", _xmp(**{"exif:DateTimeOriginal": "2000-01-01T00:00:00Z"}))
    write(ex / "IMG_4.JPG", photo(None, color=(10, 11, 12)))
    write(ex / "IMG_4.JPG.xmp", BOMB)  # refused: the photo comes without it
    write(ex / "lonely.xmp", _xmp(**{"exif:DateTimeOriginal": "2011-07-14T18:30:00Z"}))
    write(ex / "notes.txt", b"not a photo")
    write(ex / "Holidays 2019" / "IMG_9.jpg", photo(None, color=(13, 14, 15)))

    dry = _import(agent, str(ex), "--albums-from-folders", "--dry-run")
    assert dry["counts"]["would_import"] == 5
    report = _import(agent, str(ex), "--albums-from-folders")
    items = {i["name"]: i for i in report["items"]}
    assert set(items) == {"IMG_1.JPG", "IMG_2.jpg", "IMG_3.JPG", "IMG_4.JPG", "Holidays 2019/IMG_9.jpg"}
    assert all(i["outcome"] == "imported" for i in items.values()), items
    assert {s["name"] for s in report["skipped"]} == {"notes.txt"}
    assert {u["name"]: u["why"] for u in report["unused_json"]} == {
        "lonely.xmp": "an XMP sidecar without its photo",
        "IMG_4.JPG.xmp": "not XMP camroll can read (or it says nothing camroll uses)"}

    one = _metadata(agent, items["IMG_1.JPG"]["asset_id"])
    assert one["metadata"]["capture_time_source"] == "sidecar"
    assert datetime.fromisoformat(one["metadata"]["capture_time"]) == datetime(2011, 7, 14, 18, 30, tzinfo=UTC)
    assert round(one["metadata"]["latitude"], 4) == 48.8584 and one["favorite"] and one["description"] == "At the tower"
    two = _metadata(agent, items["IMG_2.jpg"]["asset_id"])
    assert datetime.fromisoformat(two["metadata"]["capture_time"]) == datetime(2015, 3, 1, 10, tzinfo=UTC)
    three = _metadata(agent, items["IMG_3.JPG"]["asset_id"])
    assert three["metadata"]["capture_time_source"] == "exif"
    four = _metadata(agent, items["IMG_4.JPG"]["asset_id"])
    assert four["metadata"]["capture_time_source"] != "sidecar"
    albums = {a["name"]: a for a in agent.api("GET", "/albums").json()}
    assert set(albums) == {"Holidays 2019"} and albums["Holidays 2019"]["item_count"] == 1

    again = _import(agent, str(ex), "--albums-from-folders")
    assert again["counts"]["earlier_run"] == 5 and again["counts"]["imported"] == 0
    missing = agent.run("import", "folder", str(tmp_path / "nope"), check=False)
    assert missing.returncode == 1 and "does not exist" in missing.stderr and "Traceback" not in missing.stderr


def test_a_second_import_at_once_is_refused_and_names_the_first(agent: Agent, tmp_path: Path) -> None:
    """Two imports for one device would send the same items and resume each other's uploads: the second
    is refused before it reads or sends anything, and says which process has the lock."""
    from camroll.agent.paths import AgentPaths
    from camroll.agent.service.lock import exclusive

    ex = tmp_path / "export"
    write(ex / "IMG_1.JPG", photo(None, color=(9, 9, 9)))
    lock = AgentPaths.in_dir(agent.home).state_db.parent / "imports.lock"
    with exclusive(lock, lambda pid: AssertionError("the test could not take the lock")):
        r = agent.run("import", "folder", str(ex), check=False)
    assert r.returncode == 1, r.stderr
    assert f"Another 'camroll import' (process {os.getpid()}) is running for this device" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert agent.api("GET", "/assets").json()["items"] == []
    assert _import(agent, str(ex))["counts"]["imported"] == 1  # and once the first is done, it runs
