"""Import hints (a Takeout sidecar's date, place, caption, favourite flag and albums) through the real API:
with a tus creation and with a hash check for a photo the server has; the file's own metadata wins where it
has any; bad hints are refused with the reason before any byte is sent."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from support.media import photo, wait_for_jobs
from support.server import ServerProcess

from camroll import wire

from .conftest import TUS, User, assert_problem, upload

API = wire.API_PREFIX
WHEN = datetime(2011, 7, 14, 18, 30, tzinfo=UTC)


def _hints(**values: object) -> str:
    return wire.ImportHints.model_validate(values).model_dump_json(exclude_defaults=True)


def _albums(s: httpx.Client) -> dict[str, list[int]]:
    out = {}
    for a in s.get(f"{API}/albums").json():
        page = wire.TimelinePage.model_validate(s.get(f"{API}/albums/{a['id']}/items").json())
        out[a["name"]] = sorted(i.id for d in page.days for i in d.items)
    return out


def test_hints_fill_albums_mark_favourites_and_give_the_time_and_place(shared_server: ServerProcess,
                                                                      user: User) -> None:
    bare = photo(None, color=(10, 200, 30))  # no EXIF time, no GPS: the sidecar knows both
    dated = photo(datetime(2019, 5, 1, 9, 0), color=(200, 10, 30))  # its own EXIF time wins
    a = upload(user.client, bare, filename="bare.jpg", path="/t/bare.jpg",
               hints=_hints(taken_at=WHEN, latitude=48.8584, longitude=2.2945, altitude=35.0, favorite=True,
                            description="Tour Eiffel", albums=["Paris 2011", "Best of"]))
    b = upload(user.client, dated, filename="dated.jpg", path="/t/dated.jpg",
               hints=_hints(taken_at=WHEN, latitude=1.5, longitude=2.5, albums=["Paris 2011"]))
    details = wait_for_jobs(user.session, [a, b])
    meta_a, meta_b = details[a].metadata, details[b].metadata
    assert (meta_a.capture_time, meta_a.capture_time_source) == (WHEN, "sidecar")
    assert (meta_a.latitude, meta_a.longitude, meta_a.altitude) == (48.8584, 2.2945, 35.0)
    assert (details[a].favorite, details[a].description) == (True, "Tour Eiffel")
    assert meta_b.capture_time_source == "exif" and meta_b.capture_time is not None
    assert meta_b.capture_time.replace(tzinfo=None) == datetime(2019, 5, 1, 9, 0)
    assert (meta_b.latitude, details[b].favorite, details[b].description) == (1.5, False, None)
    assert _albums(user.session) == {"Best of": [a], "Paris 2011": sorted([a, b])}

    # A photo the server has: the check adds the importer's albums and flags, never undoing any.
    r = user.client.post(f"{API}/assets/check", json={"items": [
        {"sha256": details[b].sha256, "hints": {"favorite": True, "description": "Spring", "albums": ["Best of"]}},
        {"sha256": details[a].sha256, "hints": {"favorite": False, "description": "other words"}}]})
    assert r.status_code == 200, r.text
    again = {i: wire.AssetDetail.model_validate(user.session.get(f"{API}/assets/{i}").json()) for i in (a, b)}
    assert (again[b].favorite, again[b].description) == (True, "Spring")
    assert (again[a].favorite, again[a].description) == (True, "Tour Eiffel")
    assert _albums(user.session) == {"Best of": sorted([a, b]), "Paris 2011": sorted([a, b])}


def test_bad_hints_are_refused_before_any_byte(user: User) -> None:
    for bad, words in ((_hints_raw('{"latitude": 91}'), "latitude"), (_hints_raw("not json"), "hints"),
                       (_hints_raw('{"albums": [""]}'), "albums"),
                       (_hints_raw('{"albums": ' + str(["a"] * 101).replace("'", '"') + "}"), "albums")):
        r = user.client.post(wire.UPLOADS_PATH, headers={**TUS, "Upload-Length": "10", "Upload-Metadata": bad})
        body = assert_problem(r, 400, "bad_request")
        assert words in str(body["detail"]), body


def _hints_raw(text: str) -> str:
    return wire.encode_upload_metadata({"filename": "x.jpg", "hints": text})


def test_a_check_may_not_fill_too_many_albums(user: User) -> None:
    from camroll.server.services.hints import MAX_ALBUMS_PER_REQUEST

    items = [{"sha256": f"{i:064x}", "hints": {"albums": [f"album {i}-{j}" for j in range(100)]}}
             for i in range(MAX_ALBUMS_PER_REQUEST // 100 + 1)]
    body = assert_problem(user.client.post(f"{API}/assets/check", json={"items": items}), 400, "bad_request")
    assert "albums" in str(body["detail"])
    assert user.session.get(f"{API}/albums").json() == []


def test_a_listing_never_carries_a_hash_that_could_be_a_path() -> None:
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        wire.AssetInfo.model_validate({"id": 1, "sha256": "../../../home/u/x", "size": 0, "mime": None,
                                       "filename": "x", "created_at": "2024-01-01T00:00:00Z", "files": []})


def test_hints_for_a_photo_already_read_apply_at_once(user: User) -> None:
    """Backed up from the phone first (its job has read it: no EXIF time, no GPS), then found in the
    Takeout export: the sidecar's time and place apply without another job."""
    data = photo(None, color=(90, 91, 92))
    asset = upload(user.client, data, filename="phone.jpg", path="/DCIM/phone.jpg")
    before = wait_for_jobs(user.session, [asset])[asset]
    assert before.metadata.capture_time_source != "sidecar" and before.metadata.latitude is None
    r = user.client.post(f"{API}/assets/check", json={"items": [{"sha256": before.sha256, "hints": {
        "taken_at": WHEN.isoformat(), "latitude": 10.5, "longitude": 20.25}}]})
    assert r.status_code == 200, r.text
    after = wire.AssetDetail.model_validate(user.session.get(f"{API}/assets/{asset}").json())
    assert (after.metadata.capture_time, after.metadata.capture_time_source) == (WHEN, "sidecar")
    assert (after.metadata.latitude, after.metadata.longitude) == (10.5, 20.25)
    page = wire.TimelinePage.model_validate(user.session.get(f"{API}/timeline").json())
    [item] = [i for d in page.days for i in d.items if i.id == asset]
    assert item.capture_time == WHEN
