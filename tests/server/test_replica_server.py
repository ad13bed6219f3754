"""A real ``camroll serve`` with a folder replica: a photo uploaded over tus is copied by the server's own
background loop, the storage page's API shows the backlog drained, and the asset's details say where the
copy is; after scrub repairs the primary, a download over HTTP hashes right."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.server import ServerProcess, database_env

from .conftest import jpeg, make_user, upload


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    srv = ServerProcess(data=tmp_path / "data", env={"CAMROLL_REPLICA_INTERVAL": "0.2"})
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def _cli(srv: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run([sys.executable, "-m", "camroll", "admin", *args, "--data", str(srv.data)],
                          capture_output=True, text=True, timeout=60, env={**os.environ, **database_env(srv.data)})


def test_the_server_copies_uploads_and_scrub_repairs_them(server: ServerProcess, tmp_path: Path) -> None:
    from camroll.server.context import build
    from camroll.server.replicas import admin
    from camroll.server.replicas.scrub import Scrubber
    from camroll.server.settings import Settings

    ctx = build(Settings.for_data_dir(server.data))  # in-process: a camroll subprocess costs seconds here
    admin.add(ctx, "usb", f"file://{tmp_path / 'usb'}", {})
    u = make_user(server)
    try:
        data = jpeg(300_000, seed=11)
        sha = hashlib.sha256(data).hexdigest()
        asset_id = upload(u.client, data)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            copies = u.session.get(f"/api/v1/assets/{asset_id}").json()["copies"]
            if copies and copies[0]["state"] in ("copied", "verified"):
                break
            time.sleep(0.2)
        assert copies == [{"replica": "usb", "state": "copied", "reason": None,
                           "copied_at": copies[0]["copied_at"], "verified_at": None}]
        assert (tmp_path / "usb" / sha[:2] / sha[2:4] / sha).read_bytes() == data
        status = _cli(server, "replica", "status", "--json")
        assert status.returncode == 0 and '"backlog_files": 0' in status.stdout
        blob = server.data / "blobs" / sha[:2] / sha[2:4] / sha
        blob.write_bytes(data[:1000])  # truncated on the primary
        report = Scrubber(ctx).run()
        assert report.repaired == 1 and report.unrepaired == 0, report
        got = u.session.get(f"/api/v1/assets/{asset_id}/original")
        assert got.status_code == 200 and hashlib.sha256(got.content).hexdigest() == sha
        detail = u.session.get(f"/api/v1/assets/{asset_id}").json()
        assert detail["verified_at"] is not None and detail["copies"][0]["state"] == "verified"
    finally:
        u.close()
        ctx.engine.dispose()
