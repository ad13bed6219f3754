"""No byte of a file the server will refuse is sent: the agent sends a body with the tus creation only
when the last /assets/check said there is room for it; otherwise the upload is created first and a
refusal (quota here) comes before the body.  The recording proxy counts every request body on the wire."""

from __future__ import annotations

import hashlib
from pathlib import Path

from support.media import jpeg_bytes, mp4_bytes, write

from camroll import wire

from .helpers import Agent
from .proxy import Proxy

MIB = 2**20


def _upload_bodies(proxy: Proxy) -> list[tuple[str, str, int]]:
    return [r for r in proxy.requests() if r[1].startswith(wire.UPLOADS_PATH) and r[0] in ("POST", "PATCH")]


def test_a_file_over_the_quota_is_refused_before_any_byte_is_sent(server: object, agent: Agent,
                                                                  photos: Path) -> None:
    server.run_admin("user", "set", "ann", "--quota", "3MB")  # type: ignore[attr-defined]
    small = jpeg_bytes(1, (320, 240))
    write(photos / "IMG_0001.jpg", small)
    video = mp4_bytes(5 * MIB, seed=7)  # fits in one chunk: it used to travel whole in the POST
    write(photos / "VID_0002.mp4", video)
    proxy = Proxy(server.port, record=True)  # type: ignore[attr-defined]
    try:
        agent.set_server_url(proxy.url)
        first = agent.backup(check=False)
        # The photo fits and goes (with its creation); the video waits for quota, not failed.
        assert agent.server_has(small) is not None
        assert agent.server_has(video) is None
        assert first["files_failed"] == 0, first
        st = agent.status()
        assert "quota" in st["headline"].lower() or "storage full" in st["headline"].lower(), st["headline"]
        assert st["files"]["waiting"] == 1, st["files"]
        bodies = _upload_bodies(proxy)
        photo_sent = sum(n for _, _, n in bodies)
        # The photo's bytes once (a batch adds its manifest: well under a KiB here), and nothing of the video.
        assert len(small) <= photo_sent < len(small) + 4096, bodies
        # A second (and third) pass re-asks and is refused again without sending the video.
        before = len(proxy.requests())
        for _ in range(2):
            agent.backup(check=False)
        again = [r for r in proxy.requests()[before:] if r[1].startswith(wire.UPLOADS_PATH)]
        assert again and all(n == 0 for _, _, n in again), again
        assert agent.status()["files"]["waiting"] == 1
        # Room again: the video goes, once.
        server.run_admin("user", "set", "ann", "--quota", "1GB")  # type: ignore[attr-defined]
        done = agent.backup()
        assert done["files_uploaded"] == 1, done
        assert agent.server_has(hashlib.sha256(video).hexdigest()) is not None
        total = sum(n for _, _, n in _upload_bodies(proxy))
        assert len(small) + len(video) <= total < len(small) + len(video) + 4096  # each once, plus a manifest
    finally:
        proxy.close()
