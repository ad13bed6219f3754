"""``camroll restore`` and ``camroll verify`` against a real server, with libraries backed up by real agents.

A library of 500 files from two devices (photos, videos, the same photos on both, odd names: not UTF-8,
accents, CJK, 250-byte names) restored under DEST/<device>/<path>: every file's SHA-256 and mtime equal the
original's; a second run writes nothing; a file already at a place is never overwritten and a link under
DEST is never followed; kill -9 mid-restore, then the same command finishes without rewriting what was done
and resumes the half-downloaded video where it stopped."""

from __future__ import annotations

import hashlib
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support import blobs
from support.media import jpeg_bytes, mp4_bytes, write, write_mp4
from support.server import ServerProcess
from support.wait import wait_until

from .helpers import Agent
from .proxy import Proxy

MIB = 2**20
T2020 = 1_590_000_000 * 10**9
T2015 = 1_430_000_000 * 10**9
ODD = ["with space é.jpg", "日本語の写真.jpg", "-leading-dash.jpg", "two..dots.jpg", "x" * 246 + ".jpg"]

pytestmark = pytest.mark.slow


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """tests/conftest.py's, with the replica loop quick enough for a test to wait for a copy."""
    srv = ServerProcess(data=tmp_path / "server-data", env={"CAMROLL_REPLICA_INTERVAL": "0.2"})
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def _sha(path: Path | bytes) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(MIB):
            h.update(block)
    return h.hexdigest()


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def _second_device(server: object, tmp_path: Path, password: str) -> Agent:
    phone = Agent(home=tmp_path / "phone-home", server=server, password=password)
    pw = tmp_path / "phone.pw"
    pw.write_text(password + "\n")
    phone.run("login", phone.server.url, "--user", "ann", "--password-file", str(pw), "--device-name", "phone")
    (tmp_path / "phone").mkdir()
    phone.run("folder", "add", str(tmp_path / "phone"))
    return phone


def _library(photos: Path, phone_dir: Path) -> None:
    """500 files: 446 on the laptop (438 photos, 5 odd names, 1 name that is not UTF-8, 2 videos) and 54 on
    the phone (30 of them the laptop's bytes, 24 its own from 2015)."""
    for i in range(438):
        write(photos / "DCIM" / f"{100 + i // 100}CANON" / f"IMG_{i:04d}.JPG", jpeg_bytes(i))
    for i, name in enumerate(ODD):
        write(photos / "odd" / name, jpeg_bytes(10_000 + i))
    raw = os.fsencode(photos / "odd") + b"/caf\xe9-latin1.jpg"
    with open(raw, "wb") as f:
        f.write(jpeg_bytes(20_000))
    for i in range(2):
        write(photos / "video" / f"VID_{i}.mp4", mp4_bytes(3 * MIB, seed=i))
    for p in _files(photos):
        os.utime(p, ns=(T2020, T2020))
    os.utime(raw, ns=(T2020, T2020))
    for i in range(30):  # the same photos, also on the phone
        write(phone_dir / "Camera" / f"IMG_{i:04d}.JPG", jpeg_bytes(i))
    for i in range(24):
        p = write(phone_dir / "WhatsApp" / f"IMG-2015-{i:02d}.jpg", jpeg_bytes(30_000 + i))
        os.utime(p, ns=(T2015 + i * 10**9, T2015 + i * 10**9))
    for p in _files(phone_dir):
        if "Camera" in p.parts:
            os.utime(p, ns=(T2020, T2020))


def _expected(dest: Path, device: str, root: Path) -> dict[bytes, Path]:
    """Where each original under ``root`` must be restored: DEST/<device>/<its absolute path>."""
    out = {}
    for dirpath, _, names in os.walk(os.fsencode(root)):
        for n in names:
            src = os.path.join(dirpath, n)
            out[os.fsencode(dest) + b"/" + device.encode() + src] = Path(os.fsdecode(src))
    return out


def test_restore_writes_every_file_byte_for_byte_and_never_twice(
        agent: Agent, photos: Path, tmp_path: Path) -> None:
    phone = _second_device(agent.server, tmp_path, agent.password)
    _library(photos, tmp_path / "phone")
    assert agent.backup()["files_failed"] == 0
    assert phone.backup()["files_failed"] == 0
    dest = tmp_path / "restored"
    expected = {**_expected(dest, "e2e-device", photos), **_expected(dest, "phone", tmp_path / "phone")}
    assert len(expected) == 500
    pw = tmp_path / "ann.pw"
    pw.write_text(agent.password + "\n")

    # What is already under DEST stays as it is: a different file at a planned place, and a link
    # standing where a folder must be (nothing may be written where it points).
    foreign_at = next(k for k in expected if k.endswith(b"/IMG_0005.JPG") and b"/phone/" in k)
    os.makedirs(os.path.dirname(foreign_at))
    with open(foreign_at, "wb") as f:
        f.write(b"the user's own file")
    outside = tmp_path / "outside"
    outside.mkdir()
    linked_dir = os.fsencode(dest) + b"/e2e-device" + os.fsencode(photos) + b"/video"
    os.makedirs(os.path.dirname(linked_dir))
    os.symlink(outside, linked_dir)

    out = agent.run("restore", str(dest), "--user", "ann", "--password-file", str(pw), "--json", check=False)
    assert out.returncode == 1, out.stderr  # the two videos behind the link fail, alone
    report = json.loads(out.stdout)
    c = report["counts"]
    assert (c["restored"], c["failed"]) == (498, 2), c
    failed = [r for r in report["results"] if r["outcome"] == "failed"]
    assert all("symbolic link" in r["reason"] and "/video/" in r["path"] for r in failed), failed
    assert list(outside.iterdir()) == []
    with open(foreign_at, "rb") as f:
        assert f.read() == b"the user's own file"
    moved = next(r for r in report["results"] if "written_to" in r)
    assert moved["written_to"].endswith("IMG_0005 (restored).JPG"), moved

    os.unlink(linked_dir)
    second = json.loads(agent.run("restore", str(dest), "--user", "ann", "--password-file", str(pw),
                                  "--json").stdout)["counts"]
    assert (second["restored"], second["earlier_run"], second["failed"]) == (2, 498, 0), second

    for where, src in expected.items():
        if where == foreign_at:
            where = where.replace(b"IMG_0005.JPG", b"IMG_0005 (restored).JPG")
        assert _sha(where) == _sha(src), where
        assert os.stat(where).st_mtime_ns == src.stat().st_mtime_ns, where
    restored = [p for p in _files(dest) if ".camroll-restore" not in p.parts]
    assert len(restored) == 501  # and the user's own file
    before = {p: (p.stat().st_ino, p.stat().st_ctime_ns) for p in restored}

    third = json.loads(agent.run("restore", str(dest), "--user", "ann", "--password-file", str(pw),
                                 "--json").stdout)["counts"]
    assert (third["restored"], third["earlier_run"]) == (0, 500), third
    assert {p: (p.stat().st_ino, p.stat().st_ctime_ns) for p in restored} == before  # nothing written again
    dry = json.loads(agent.run("restore", str(dest), "--dry-run", "--json", "--user", "ann", "--password-file",
                               str(pw)).stdout)["counts"]
    assert (dry["earlier_run"], dry["would_restore"]) == (500, 0), dry

    # The choices narrow what is restored: one device, a span of capture dates.
    only_phone = json.loads(agent.run("restore", str(tmp_path / "p"), "--device", "phone", "--dry-run", "--json",
                                      "--user", "ann", "--password-file", str(pw)).stdout)
    assert only_phone["counts"]["would_restore"] == 54
    assert all(r["path"].startswith("phone/") for r in only_phone["results"])
    in_2015 = json.loads(agent.run("restore", str(tmp_path / "y"), "--since", "2015-01-01", "--until", "2015-12-31",
                                   "--dry-run", "--json", "--user", "ann", "--password-file", str(pw)).stdout)
    assert in_2015["counts"]["would_restore"] == 24, in_2015["counts"]
    unknown = agent.run("restore", str(tmp_path / "z"), "--device", "tablet", "--user", "ann",
                        "--password-file", str(pw), check=False)
    assert unknown.returncode == 1 and "no device named 'tablet'" in unknown.stderr, unknown.stderr
    assert "Traceback" not in unknown.stderr


def test_restore_killed_mid_way_resumes_without_rewriting(agent: Agent, photos: Path, tmp_path: Path) -> None:
    for i in range(150):
        write(photos / f"IMG_{i:04d}.JPG", jpeg_bytes(i, size=(320, 240)))
    big = write_mp4(photos / "VID_LONG.mp4", 24 * MIB, seed=7)
    assert agent.backup()["files_failed"] == 0
    dest = tmp_path / "restored"
    pw = tmp_path / "ann.pw"
    pw.write_text(agent.password + "\n")
    partial = dest / ".camroll-restore" / "partial" / f"{_sha(big)}.part"

    proxy = Proxy(agent.server.port, down_rate=4 * MIB)
    try:
        run = agent.popen("restore", str(dest), "--server", proxy.url, "--user", "ann", "--password-file", str(pw),
                          "--workers", "2")
        wait_until(lambda: partial.exists() and partial.stat().st_size > 6 * MIB
                   and len(_files(dest / "e2e-device")) >= 20, 120, what="a restore half done")
        # The same command again while the first runs: refused at once, naming the first, writing nothing.
        second = agent.run("restore", str(dest), "--server", proxy.url, "--user", "ann", "--password-file",
                           str(pw), check=False)
        assert second.returncode == 1, second.stderr
        assert f"Another 'camroll restore' (process {run.pid}) is writing to {dest}" in second.stderr, second.stderr
        assert "Traceback" not in second.stderr
        run.send_signal(signal.SIGKILL)
        run.communicate(timeout=30)
    finally:
        proxy.close()
    done = [p for p in _files(dest) if ".camroll-restore" not in p.parts]
    assert 20 <= len(done) < 151
    before = {p: (p.stat().st_ino, p.stat().st_ctime_ns) for p in done}
    kept = partial.stat().st_size

    proxy = Proxy(agent.server.port)
    try:
        out = agent.run("restore", str(dest), "--server", proxy.url, "--user", "ann", "--password-file", str(pw),
                        "--json")
        down = proxy.bytes_down
    finally:
        proxy.close()
    c = json.loads(out.stdout)["counts"]
    assert c["failed"] == 0 and c["restored"] + c["earlier_run"] + c["already_there"] == 151, c
    assert {p: (p.stat().st_ino, p.stat().st_ctime_ns) for p in done} == before  # not written again
    left = sum(p.stat().st_size for p in _files(photos)) - sum(p.stat().st_size for p in done)
    # The video went on from its partial file: only what was missing came down (plus the listing).
    assert down < left - kept + MIB, (down, left, kept)
    for src in _files(photos):
        where = Path(os.fsdecode(os.fsencode(dest) + b"/e2e-device" + os.fsencode(src)))
        assert _sha(where) == _sha(src) and where.stat().st_mtime_ns == src.stat().st_mtime_ns, where
    assert not partial.exists()


def test_verify_says_what_is_not_backed_up(agent: Agent, photos: Path) -> None:
    for i in range(20):
        write(photos / f"IMG_{i:04d}.JPG", jpeg_bytes(i))
    write(photos / ".hidden.jpg", jpeg_bytes(99))
    write(photos / "notes.txt", b"not a photo")
    assert agent.backup()["files_failed"] == 0
    ok = json.loads(agent.run("verify", "--json").stdout)
    assert (ok["ok"], ok["backed_up"], ok["missing"], ok["left_out"], ok["not_media"]) == (True, 20, [], 1, 1), ok

    write(photos / "new" / "IMG_NEW.JPG", jpeg_bytes(500))
    changed = photos / "IMG_0003.JPG"
    data = bytearray(changed.read_bytes())
    data[len(data) // 2] ^= 0xFF  # the same name, other bytes: not what the server holds
    changed.write_bytes(bytes(data))
    bad = agent.run("verify", str(photos), check=False)
    assert bad.returncode == 1
    assert "2 of 21 photos and videos" in bad.stdout and "IMG_NEW.JPG" in bad.stdout, bad.stdout
    assert str(changed) in bad.stdout and "camroll backup" in bad.stdout
    # In the server's trash is not safe: it is purged after the trash period.
    trashed = agent.server_has(_sha(photos / "IMG_0007.JPG"))
    assert trashed is not None
    agent.api("POST", "/assets/trash", json={"ids": [trashed]}).raise_for_status()
    in_trash = json.loads(agent.run("verify", "--json", check=False).stdout)
    assert in_trash["in_trash"] == [str(photos / "IMG_0007.JPG")] and not in_trash["ok"], in_trash
    missing = agent.run("verify", "/nonexistent/folder", check=False)
    assert missing.returncode == 1 and "is not a folder" in missing.stderr and "Traceback" not in missing.stderr


def test_restore_needs_the_password_and_says_so(agent: Agent, tmp_path: Path) -> None:
    pw = tmp_path / "wrong.pw"
    pw.write_text("not the password\n")
    out = agent.run("restore", str(tmp_path / "d"), "--password-file", str(pw), check=False)
    assert out.returncode == 1 and "did not accept user 'ann'" in out.stderr, out.stderr
    assert not (tmp_path / "d").exists()


def test_a_damaged_primary_is_refused_and_the_replica_restores_it(agent: Agent, photos: Path, tmp_path: Path) -> None:
    """The server's copy of one photo goes bad on its disk: the restore refuses those bytes (their SHA-256
    is wrong) and says what to do; ``--from-replica`` then restores it from the replica's good copy."""
    srcs = [write(photos / f"IMG_{i}.JPG", jpeg_bytes(700 + i)) for i in range(3)]
    assert agent.backup()["files_failed"] == 0
    agent.server.run_admin("replica", "add", "usb", f"file://{tmp_path / 'usb'}")
    session = agent.session()

    def copied() -> bool:
        r = httpx.get(f"{agent.server.url}/api/v1/assets", headers={"Authorization": f"Bearer {session}"})
        ids = [a["id"] for a in r.json()["items"]]
        states = [httpx.get(f"{agent.server.url}/api/v1/assets/{i}", headers={"Authorization": f"Bearer {session}"})
                  .json()["copies"] for i in ids]
        return len(ids) == 3 and all(c and c[0]["state"] in ("copied", "verified") for c in states)

    wait_until(copied, 60, what="the replica holds every photo")
    sha = _sha(srcs[1])
    blobs.damage(agent.server.data, sha, 100)
    pw = tmp_path / "ann.pw"
    pw.write_text(agent.password + "\n")
    dest = tmp_path / "restored"

    bad = agent.run("restore", str(dest), "--user", "ann", "--password-file", str(pw), "--json", check=False)
    assert bad.returncode == 1
    report = json.loads(bad.stdout)
    assert (report["counts"]["restored"], report["counts"]["failed"]) == (2, 1), report["counts"]
    [failed] = [r for r in report["results"] if r["outcome"] == "failed"]
    assert failed["sha256"] == sha and "do not match their SHA-256" in failed["reason"]
    assert "--from-replica" in failed["reason"], failed
    assert not list(dest.rglob("IMG_1.JPG"))  # no damaged file left in place

    good = json.loads(agent.run("restore", str(dest), "--from-replica", "usb", "--user", "ann",
                                "--password-file", str(pw), "--json").stdout)
    assert (good["counts"]["restored"], good["counts"]["earlier_run"]) == (1, 2), good["counts"]
    [where] = list(dest.rglob("IMG_1.JPG"))
    assert _sha(where) == sha
    nothing = agent.run("restore", str(tmp_path / "x"), "--from-replica", "nas", "--user", "ann",
                        "--password-file", str(pw), "--json", check=False)
    assert nothing.returncode == 1
    assert "no replica named 'nas'" in json.loads(nothing.stdout)["results"][0]["reason"]
