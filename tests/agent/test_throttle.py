"""bandwidth_limit against a real ``camroll serve`` on loopback: the token bucket paces real request bodies."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from support.media import mp4_bytes, write

from camroll.agent.backup.run import run_backup
from camroll.agent.paths import AgentPaths
from camroll.agent.settings.config import AgentConfig, PolicyConfig, ServerConfig

from .test_engine import _no_machine_probes  # noqa: F401  (autouse fixture)

MIB = 1024 * 1024


def _config(server: Any, photos: Path, **policy: Any) -> AgentConfig:
    pw = server.add_user("ann")
    token = server.device_token("ann", pw)
    return AgentConfig(
        server=ServerConfig(url=server.url, username="ann", device_id=1, device_name="d", token=token),
        folders=[str(photos)], policy=PolicyConfig(**policy),
    )


def test_bandwidth_limit_paces_a_real_upload(server: Any, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    write(photos / "a.mp4", mp4_bytes(MIB, seed=1))
    write(photos / "b.mp4", mp4_bytes(MIB, seed=2))
    # Two workers share one bucket: 2 MiB at 1 MiB/s takes about 2 s whatever the concurrency.
    cfg = _config(server, photos, bandwidth_limit="1MiB/s", upload_concurrency=2)
    started = time.monotonic()
    s = run_backup(AgentPaths.in_dir(tmp_path / "home"), cfg)
    took = time.monotonic() - started
    assert s.ok and s.files_uploaded == 2, s
    assert s.bytes_sent == 2 * MIB
    assert took >= 1.5, took
    assert took < 6, took
