"""``camroll up`` end to end: a real server child process, the real agent, real photos."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from conftest import free_port, run_camroll


def _up(root: Path, *args: str) -> dict[str, object]:
    proc = run_camroll("up", *args, "--data", str(root), "--listen", f"127.0.0.1:{free_port()}", "--json",
                       timeout=180)
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def test_up_example_backs_up_then_sends_nothing(tmp_path: Path) -> None:
    root = tmp_path / "camroll"
    first = _up(root, "--example")
    assert first["ok"] is True
    assert first["files_uploaded"] == 25
    blobs = [p for p in (root / "server" / "blobs").rglob("*") if p.is_file()]
    assert len(blobs) == 25
    creds = root / "credentials"
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600
    # The library holds exactly the bytes of the example photos, named by their SHA-256.
    import hashlib

    photos = sorted(p for p in (root / "example-photos").rglob("*") if p.is_file())
    assert {hashlib.sha256(p.read_bytes()).hexdigest() for p in photos} == {b.name for b in blobs}

    # Again, on another port: same user and device, nothing re-sent.
    second = _up(root, "--example")
    assert second["ok"] is True
    assert second["files_uploaded"] == 0
    assert second["bytes_sent"] == 0


def test_up_adds_a_new_folder_and_keeps_the_old(tmp_path: Path) -> None:
    from PIL import Image

    root = tmp_path / "camroll"
    pics = tmp_path / "pics"
    pics.mkdir()
    Image.new("RGB", (64, 48), (10, 200, 30)).save(pics / "a.jpg", quality=90)
    assert _up(root, str(pics))["files_uploaded"] == 1
    more = tmp_path / "more"
    more.mkdir()
    Image.new("RGB", (64, 48), (200, 10, 30)).save(more / "b.png")
    out = _up(root, str(more))
    assert out["files_uploaded"] == 1
    assert out["files_scanned"] == 2


def test_up_without_a_folder_says_what_to_do(tmp_path: Path) -> None:
    proc = run_camroll("up", "--data", str(tmp_path / "x"), check=False)
    assert proc.returncode == 1
    assert "camroll up --example" in proc.stderr
    assert "Traceback" not in proc.stderr
    missing = run_camroll("up", str(tmp_path / "nope"), "--data", str(tmp_path / "x"), check=False)
    assert missing.returncode == 1
    assert "does not exist" in missing.stderr
