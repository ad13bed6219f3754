from __future__ import annotations

import os
from pathlib import Path

from camroll.agent.backup.scanner import FILE_GONE, FOLDER_REMOVED, normalise_folders, scan
from camroll.agent.state.db import StateDB


def _state(db: StateDB) -> dict[str, str]:
    return {p: r[4] for p, r in db.index().items()}


def test_new_unchanged_changed_vanished(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    a = root / "a.jpg"
    a.write_bytes(b"aaaa")
    (root / "sub" / "b.jpg").write_bytes(b"bbbb")
    (root / ".hidden.jpg").write_bytes(b"x")
    (root / ".thumbs").mkdir()
    (root / ".thumbs" / "c.jpg").write_bytes(b"c")
    with StateDB(tmp_path / "s.db") as db:
        r = scan(db, [str(root)])
        # A hidden file is recorded (the file rules leave it out by choice); a hidden folder is not walked.
        assert (r.files_seen, r.new, r.changed, r.vanished) == (3, 3, 0, 0)
        assert set(_state(db)) == {str(a), str(root / "sub" / "b.jpg"), str(root / ".hidden.jpg")}
        for fid, *_ in db.index().values():
            db.set_backed_up(fid, 1, "ok")
        r = scan(db, [str(root)])
        assert not r.anything_changed
        # Modified in place, same size: only mtime differs.
        st = a.stat()
        a.write_bytes(b"AAAA")
        os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
        assert a.stat().st_size == st.st_size
        r = scan(db, [str(root)])
        assert r.changed == 1 and r.new == 0
        assert _state(db)[str(a)] == "pending"
        (root / "sub" / "b.jpg").unlink()
        r = scan(db, [str(root)])
        assert r.vanished == 1
        row = db.get(db.index()[str(root / "sub" / "b.jpg")][0])
        assert row.state == "vanished" and row.reason == FILE_GONE
        # Vanished rows are not re-reported.
        assert scan(db, [str(root)]).vanished == 0


def test_replaced_file_same_size_same_mtime_new_inode(tmp_path: Path) -> None:
    root = tmp_path / "p"
    root.mkdir()
    a = root / "a.jpg"
    a.write_bytes(b"1111")
    with StateDB(tmp_path / "s.db") as db:
        scan(db, [str(root)])
        st = a.stat()
        tmp = root / "tmp.part"
        tmp.write_bytes(b"2222")
        os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
        keep = root / ".keep"
        os.link(a, keep)  # hold the old inode so the new file cannot reuse its number
        os.replace(tmp, a)
        r = scan(db, [str(root)])
        assert r.changed == 1


def test_missing_folder_is_not_a_deletion(tmp_path: Path) -> None:
    root = tmp_path / "card"
    root.mkdir()
    (root / "a.jpg").write_bytes(b"a")
    with StateDB(tmp_path / "s.db") as db:
        scan(db, [str(root)])
        root.rename(tmp_path / "unplugged")
        r = scan(db, [str(root)])
        assert r.missing_folders == [(str(root), "does not exist")]
        assert r.vanished == 0
        assert _state(db)[str(root / "a.jpg")] == "pending"


def test_removed_folder_marks_vanished_with_reason(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "1.jpg").write_bytes(b"1")
    (b / "2.jpg").write_bytes(b"2")
    with StateDB(tmp_path / "s.db") as db:
        scan(db, [str(a), str(b)])
        r = scan(db, [str(a)])
        assert r.vanished == 1
        assert db.get(db.index()[str(b / "2.jpg")][0]).reason == FOLDER_REMOVED


def test_symlink_loop_and_nested_folders(tmp_path: Path) -> None:
    root = tmp_path / "r"
    (root / "d").mkdir(parents=True)
    (root / "d" / "x.jpg").write_bytes(b"x")
    os.symlink(root, root / "d" / "loop")
    os.symlink(tmp_path / "nowhere", root / "dangling.jpg")
    with StateDB(tmp_path / "s.db") as db:
        r = scan(db, [str(root), str(root / "d")])
        assert r.files_seen == 1
        assert r.unreadable == []
    assert normalise_folders(["/a/b", "/a", "/ab"]) == ["/a", "/ab"]


def test_undecodable_name_is_recorded_byte_for_byte_and_symlink_loop_reported(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    root.mkdir()
    (root / "ok.jpg").write_bytes(b"\xff\xd8\xffok")
    fd = os.open(os.fsencode(root) + b"/caf\xe9.jpg", os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, b"\xff\xd8\xffcafe")
    os.close(fd)
    os.symlink(root / "loop_b", root / "loop_a")
    os.symlink(root / "loop_a", root / "loop_b")
    with StateDB(tmp_path / "s.db") as db:
        r = scan(db, [str(root)])
        bad = os.fsdecode(os.fsencode(root) + b"/caf\xe9.jpg")
        assert set(_state(db)) == {str(root / "ok.jpg"), bad}
        # Stored as its exact bytes, and an unchanged rescan finds it again (no new row, no change).
        assert db.find(bad) is not None and os.path.exists(db.find(bad).path)  # type: ignore[union-attr]
        assert not scan(db, [str(root)]).anything_changed
        reasons = dict(r.unreadable)
        assert bad not in reasons
        assert {f"{root}/loop_a", f"{root}/loop_b"} <= set(reasons)
