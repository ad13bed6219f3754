"""End to end: the real CLI in subprocesses against a real ``camroll serve``."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from support.media import jpeg_bytes, mp4_bytes, png_bytes, write

from .helpers import Agent, run_camroll


def test_first_backup_then_nothing_then_edit(agent: Agent, photos: Path) -> None:
    a = write(photos / "2024" / "a.jpg", jpeg_bytes(1, (320, 240)))
    write(photos / "2024" / "b.png", png_bytes(2))
    video = mp4_bytes(300_000, seed=3)
    write(photos / "clip.mp4", video)
    write(photos / "readme.txt", b"not a photo")
    write(photos / ".trash" / "old.jpg", jpeg_bytes(9))

    s = agent.backup()
    assert s["ok"] and s["files_scanned"] == 4, s
    assert (s["files_uploaded"], s["files_skipped"], s["files_failed"]) == (3, 1, 0)
    assert s["bytes_uploaded"] == a.stat().st_size + (photos / "2024" / "b.png").stat().st_size + len(video)
    for data in (a.read_bytes(), video):
        asset = agent.server_has(data)
        assert asset is not None
        assert agent.api("GET", f"/assets/{asset}/original").content == data
    assert agent.server_has(jpeg_bytes(9)) is None  # hidden folders are not backed up

    st = agent.status()
    assert st["headline"] == "All 3 files backed up"
    assert st["files"]["skipped"] == 1
    assert "not a photo or video camroll recognises" in st["skipped"][0]["reason"]
    assert st["last_successful_backup_at"] is not None

    s = agent.backup()
    assert s["ok"] and s["files_uploaded"] == 0 and s["bytes_sent"] == 0 and s["files_new"] == 0

    time.sleep(0.01)
    edited = jpeg_bytes(5, (320, 240))
    a.write_bytes(edited)
    s = agent.backup()
    assert s["files_changed"] == 1 and s["files_uploaded"] == 1, s
    assert agent.server_has(edited) is not None

    human = agent.run("backup").stdout
    assert human.startswith("Everything is backed up")


def test_same_photo_in_two_folders_is_stored_once(agent: Agent, photos: Path, tmp_path: Path) -> None:
    data = jpeg_bytes(42, (200, 100))
    write(photos / "IMG_1.jpg", data)
    other = tmp_path / "whatsapp"
    write(other / "IMG-2024.jpg", data)
    agent.run("folder", "add", str(other))
    s = agent.backup()
    assert s["ok"] and s["files_uploaded"] == 1 and s["files_already_on_server"] == 1, s
    asset = agent.server_has(data)
    assert asset is not None
    r = agent.api("GET", f"/assets/{asset}")
    assert r.status_code == 200, r.text
    paths = {f["path"] for f in r.json()["files"]}
    assert paths == {str(photos / "IMG_1.jpg"), str(other / "IMG-2024.jpg")}
    assert agent.api("GET", "/me").json()["used_bytes"] == len(data)


def test_quota_exceeded_is_clear_and_nothing_partial(server: object, tmp_path: Path) -> None:
    srv = server
    pw = srv.add_user("bob", quota="1MB")  # type: ignore[attr-defined]
    agent = Agent(home=tmp_path / "bob-home", server=srv, password=pw, user="bob")
    agent.login()
    photos = tmp_path / "bob-photos"
    write(photos / "big.mp4", mp4_bytes(3_000_000, seed=1))
    agent.run("folder", "add", str(photos))
    r = agent.run("backup", "--json", check=False)
    assert r.returncode == 2, r
    import json

    s = json.loads(r.stdout)
    assert "quota" in s["stopped_reason"].lower()
    assert "Traceback" not in r.stderr and "quota" in r.stderr.lower()
    # Not the file's fault: it waits for space (and goes by itself once there is room).
    assert s["files_uploaded"] == 0 and s["files_failed"] == 0 and s["files_waiting"] == 1
    me = agent.api("GET", "/me").json()
    assert me["used_bytes"] == 0
    st = agent.status()
    assert st["headline"].startswith("Stopped: storage full, 0 B of 1.0 MB used.")
    assert "backup resumes by itself" in st["headline"] and st["stopped_code"] == "quota"


def test_errors_are_sentences(tmp_path: Path, server: object) -> None:
    env = {"CAMROLL_HOME": str(tmp_path / "nobody")}
    r = run_camroll("backup", env=env, check=False)
    assert r.returncode == 1 and r.stderr.strip() == "Not logged in. Run: camroll login URL --user NAME"
    pw = tmp_path / "pw"
    pw.write_text("wrong\n")
    url = server.url  # type: ignore[attr-defined]
    server.add_user("carol")  # type: ignore[attr-defined]
    r = run_camroll("login", url, "--user", "carol", "--password-file", str(pw), env=env, check=False)
    assert r.returncode == 1 and "did not accept user 'carol'" in r.stderr and "Traceback" not in r.stderr


def test_many_small_files_and_status_counts(agent: Agent, photos: Path) -> None:
    for i in range(60):
        write(photos / f"d{i % 6}" / f"{i}.png", png_bytes(i, (8, 8)))
    s = agent.backup()
    assert s["ok"] and s["files_uploaded"] == 60
    os.remove(photos / "d0" / "0.png")
    s = agent.backup()
    assert s["files_vanished"] == 1 and s["bytes_sent"] == 0
    st = agent.status()
    assert st["files"]["backed_up"] == 59 and st["files"]["vanished"] == 1
    assert hashlib.sha256(png_bytes(1, (8, 8))).hexdigest()
