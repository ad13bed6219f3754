from __future__ import annotations

import time
from pathlib import Path

from camroll.agent.state.db import NewFile, StateDB


def test_schema_and_meta(tmp_path: Path) -> None:
    with StateDB(tmp_path / "s.db") as db:
        assert db.get_meta("schema_version") == "2"
        db.set_meta("k", "v")
    with StateDB(tmp_path / "s.db") as db:
        assert db.get_meta("k") == "v"
        assert db._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_lifecycle(tmp_path: Path) -> None:
    with StateDB(tmp_path / "s.db") as db:
        new = [NewFile("/f/a.jpg", "/f", 10, 111, 7), NewFile("/f/b.jpg", "/f", 20, 222, 8)]
        db.apply_scan(new, [], [], [])
        idx = db.index()
        assert set(idx) == {"/f/a.jpg", "/f/b.jpg"}
        aid = idx["/f/a.jpg"][0]
        work = db.work_items(time.time())
        assert [w.path for w in work] == ["/f/a.jpg", "/f/b.jpg"]
        assert work[0].state == "pending" and work[0].reason == "new file"
        db.set_hashed(aid, "ab" * 32, "image/jpeg", (10, 111, 7))
        db.set_upload(aid, "/api/v1/uploads/x", 0)
        row = db.get(aid)
        assert row.state == "uploading" and row.upload_url == "/api/v1/uploads/x"
        db.set_backed_up(aid, 42, "uploaded")
        row = db.get(aid)
        assert (row.state, row.asset_id, row.upload_url) == ("backed_up", 42, None)
        # Failed files wait for their retry time unless asked.
        bid = idx["/f/b.jpg"][0]
        assert db.set_failed(bid, "boom", time.time() + 60) == 1
        assert db.work_items(time.time()) == []
        assert [w.id for w in db.work_items(time.time(), include_parked=True)] == [bid]
        assert db.parked_count(time.time()) == 1
        assert db.set_failed(bid, "boom again", None) == 2
        c = db.counts()
        assert c.files == {"backed_up": 1, "failed": 1}
        assert c.bytes == {"backed_up": 10, "failed": 20}


def test_changed_clears_hash_keeps_upload_url(tmp_path: Path) -> None:
    with StateDB(tmp_path / "s.db") as db:
        db.apply_scan([NewFile("/f/a.jpg", "/f", 10, 111, 7)], [], [], [])
        fid = db.index()["/f/a.jpg"][0]
        db.set_hashed(fid, "ab" * 32, "image/jpeg", (10, 111, 7))
        db.set_upload(fid, "/u/1", 5)
        db.apply_scan([], [(fid, 10, 999, 7)], [], [])
        row = db.get(fid)
        assert row.state == "pending" and row.sha256 is None and row.upload_url == "/u/1"
        assert row.mtime_ns == 999


def test_reset_for_new_server(tmp_path: Path) -> None:
    with StateDB(tmp_path / "s.db") as db:
        db.apply_scan([NewFile("/f/a.jpg", "/f", 10, 111, 7)], [], [], [])
        fid = db.index()["/f/a.jpg"][0]
        db.set_hashed(fid, "ab" * 32, "image/jpeg", (10, 111, 7))
        db.set_backed_up(fid, 1, "ok")
        db.reset_for_new_server()
        row = db.get(fid)
        assert row.state == "uploading" and row.sha256 == "ab" * 32 and row.asset_id is None


def test_batch_keeps_updates_when_the_caller_fails(tmp_path: Path) -> None:
    import pytest

    with StateDB(tmp_path / "s.db") as db:
        db.apply_scan([NewFile("/f/a.jpg", "/f", 10, 111, 7)], [], [], [])
        fid = db.index()["/f/a.jpg"][0]
        with pytest.raises(RuntimeError), db.batch():
            db.set_backed_up(fid, 3, "ok")
            with db.batch():  # nested: part of the outer transaction
                db.set_meta("x", "1")
            raise RuntimeError("aborted")
        assert db.get(fid).state == "backed_up" and db.get_meta("x") == "1"
