"""Two replicas behind the shipped nginx config, sharing PostgreSQL, S3 and Redis, with one worker.

The agent's upload of a large video lands on one replica (uploads are routed by device token); that
replica is killed with SIGKILL mid-file; the agent finishes through the other one without sending again
what was stored.  Then: every original downloads with its SHA-256 from either replica, no replica keeps
a blob, a part file or a thumbnail on its own disk, every thumbnail was written once, and a silent
device is reported once although both replicas check for stalls.  Last, the shipped HAProxy config in
front of the same replicas checks their /readyz and keeps answering while one dies."""

from __future__ import annotations

import hashlib
import json
import os
import ssl
import struct
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e.helpers import Agent, sha_of_file
from e2e.proxy import Proxy
from server.receiver import Receiver, receiver  # noqa: F401 - the module-scoped alert receiver fixture
from services import nginx
from support.media import photo, video, wait_for_jobs

from .conftest import PASSWORD, Cluster

MIB = 1024 * 1024
CHUNK_MIB = 8
BIG = 48 * MIB
# HTTP headers, TLS records, HEADs and checks around the bodies.
SLACK = MIB
UPLOADS = "/api/v1/uploads"

pytestmark = pytest.mark.timeout(240)


class ClusterAgent(Agent):
    """The real agent CLI, trusting the load balancer's test certificate."""

    cafile: Path = Path()

    @property
    def env(self) -> dict[str, str]:
        return {"CAMROLL_HOME": str(self.home), "SSL_CERT_FILE": str(self.cafile)}


class _Entry:
    """What Agent needs of a server: its URL (here the byte-counting proxy in front of nginx)."""

    def __init__(self, url: str) -> None:
        self.url = url


def big_video(path: Path, size: int) -> Path:
    """A real H.264 clip followed by a ``free`` box of random bytes up to ``size``: a valid MP4 whose
    poster ffmpeg can read, large enough for a mid-file moment."""
    clip = video(path.parent, "2024-05-01T10:00:00Z", name="clip-for-big.mp4")
    (path.parent / "clip-for-big.mp4").unlink()
    pad = size - len(clip) - 8
    with open(path, "wb") as f:
        f.write(clip)
        f.write(struct.pack(">I4s", pad + 8, b"free"))
        left = pad
        while left:
            n = min(left, 4 * MIB)
            f.write(os.urandom(n))
            left -= n
    return path


def small_roll(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(4):
        p = folder / f"IMG_{i:04d}.jpg"
        p.write_bytes(photo(datetime(2024, 5, 1 + i, 9, 0, tzinfo=UTC), color=(40 * i, 90, 160)))
        out.append(p)
    clip = folder / "VID_0001.mp4"
    clip.write_bytes(video(folder.parent, "2024-05-06T12:00:00Z", name="v1.mp4"))
    (folder.parent / "v1.mp4").unlink()
    out.append(clip)
    return out


def trusting(cafile: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cafile))


def session(url: str, cafile: Path) -> httpx.Client:
    r = httpx.post(f"{url}/api/v1/auth/login", json={"username": "ann", "password": PASSWORD},
                   verify=trusting(cafile))
    r.raise_for_status()
    return httpx.Client(base_url=url, verify=trusting(cafile), timeout=60,
                        headers={"Authorization": f"Bearer {r.json()['token']}"})


def direct(replica_url: str) -> httpx.Client:
    r = httpx.post(f"{replica_url}/api/v1/auth/login", json={"username": "ann", "password": PASSWORD})
    r.raise_for_status()
    return httpx.Client(base_url=replica_url, timeout=60, headers={"Authorization": f"Bearer {r.json()['token']}"})


def files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


@pytest.fixture(scope="module")
def agent(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> tuple[ClusterAgent, Proxy, Path]:
    tmp = tmp_path_factory.mktemp("agent")
    proxy = Proxy(cluster.lb.port)
    url = f"https://127.0.0.1:{proxy.port}"  # TLS passes through the proxy, which counts its bytes
    a = ClusterAgent(home=tmp / "home", server=_Entry(url), password=PASSWORD)
    a.cafile = cluster.lb.cafile
    a.login(url)
    photos = tmp / "photos"
    photos.mkdir()
    a.run("folder", "add", str(photos))
    a.set_policy(chunk_size_mib=CHUNK_MIB, upload_concurrency=1)
    return a, proxy, photos


def test_replica_killed_mid_file_the_other_finishes_it(cluster: Cluster, agent: tuple[ClusterAgent, Proxy, Path]) \
        -> None:
    a, proxy, photos = agent
    roll = small_roll(photos)
    first = a.backup()
    assert first["ok"] and first["files_uploaded"] == len(roll), first

    big = big_video(photos / "VID_LONG.mp4", BIG)
    routed_before = len(cluster.lb.routes())
    before = proxy.bytes_up
    proxy.rate = 24 * MIB  # bytes/s: a mid-file moment lasts long enough to aim at
    p = a.popen("backup", "--json")
    # The bodiless creation is answered (and logged) at once; its replica then gets every PATCH.
    deadline = time.monotonic() + 60
    owner: int | None = None
    while owner is None:
        assert time.monotonic() < deadline, cluster.lb.log_lines()
        for r in cluster.lb.routes()[routed_before:]:
            if r.method == "POST" and r.path.startswith(UPLOADS) and r.status == 201:
                owner = r.upstream
        time.sleep(0.02)
    victim = cluster.replica_on(owner)
    survivor = next(r for r in cluster.replicas if r is not victim)
    proxy.wait_for_bytes_up(before + 20 * MIB)
    victim.kill()  # SIGKILL, mid-PATCH
    # What the dead replica had stored, as the other one reports it (from the database and the bucket).
    upload_path = _upload_url(cluster, routed_before)
    stored = _offset(survivor.url, upload_path, a.token())
    assert stored >= CHUNK_MIB * MIB, stored  # the chunks it had acknowledged are kept
    out, err = p.communicate(timeout=180)
    # The dead replica's writer lease (10 s) lapses within the agent's retries: the same pass finishes.
    assert out.strip() and json.loads(out)["ok"], (out, err)
    proxy.rate = None
    sha = sha_of_file(big)
    assert sha in _present(a, [sha])
    assert a.status()["headline"] == f"All {len(roll) + 1} files backed up"
    patches = [r for r in cluster.lb.routes()[routed_before:] if r.path == upload_path and r.method == "PATCH"]
    done = [r for r in patches if r.status == 204]
    # The survivor completed the upload, and the bodies it accepted are exactly what was missing:
    # nothing that had been stored was sent again.
    assert done and done[-1].upstream == survivor.port, patches
    taken_over = [r for r in done if r.upstream == survivor.port]
    body = sum(r.bytes_in for r in taken_over)
    assert BIG - stored <= body <= BIG - stored + len(taken_over) * 2048, (body, BIG - stored, patches)
    assert proxy.bytes_up - before <= 2 * BIG, proxy.bytes_up - before

    # The killed replica comes back; every original downloads whole from either replica.
    victim.start()
    wanted = {sha_of_file(f): f for f in [*roll, big]}
    present = _present(a, list(wanted))
    assert set(present) == set(wanted)
    for replica in cluster.replicas:
        with direct(replica.url) as client:
            for sha, asset_id in present.items():
                h = hashlib.sha256()
                with client.stream("GET", f"/api/v1/assets/{asset_id}/original") as resp:
                    assert resp.status_code == 200, (replica.url, asset_id, resp.status_code)
                    for chunk in resp.iter_bytes(MIB):
                        h.update(chunk)
                assert h.hexdigest() == sha, (replica.url, wanted[sha])

    # Thumbnails: made by the worker into the bucket, each object written once.
    with session(cluster.lb.url, cluster.lb.cafile) as client:
        details = wait_for_jobs(client, list(present.values()))
    assert all(d.has_thumbnail for d in details.values()), details
    _assert_thumbnails_made_once(cluster, list(present))

    # No replica (nor the worker) keeps a blob, a part file or a thumbnail on its own disk.
    for folder in [*(r.data for r in cluster.replicas), cluster.worker_data]:
        kept = [p for p in files_under(folder) if p.stat().st_size > 256 * 1024
                or p.relative_to(folder).parts[0] in ("blobs", "uploads", "thumbs")]
        assert not kept, (folder, kept)


def _upload_url(cluster: Cluster, since: int) -> str:
    (path,) = {r.path for r in cluster.lb.routes()[since:] if r.method == "PATCH"}
    return path


def _offset(replica_url: str, path: str, token: str) -> int:
    r = httpx.head(f"{replica_url}{path}", headers={"Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0"},
                   timeout=60)
    assert r.status_code == 200, (r.status_code, r.headers)
    return int(r.headers["Upload-Offset"])


def _present(a: ClusterAgent, shas: list[str]) -> dict[str, int]:
    r = httpx.post(f"{a.server.url}/api/v1/assets/check", json={"items": [{"sha256": s} for s in shas]},
                   headers={"Authorization": f"Bearer {a.token()}"}, verify=trusting(a.cafile), timeout=30)
    r.raise_for_status()
    return {k: int(v) for k, v in r.json()["present"].items()}


def _assert_thumbnails_made_once(cluster: Cluster, shas: list[str]) -> None:
    # In the bucket: a grid and a preview per asset, under the thumbnails' prefix, nothing else there.
    thumbs = cluster.storage.keys("thumbs/")
    for sha in shas:
        assert len([k for k in thumbs if sha in k]) == 2, (sha, thumbs)
    assert len(thumbs) == 2 * len(shas), thumbs
    # In the worker: one job per asset made them ("done"); a job queued again for a finished asset (a
    # replica's start-up pass) finds them made and counts as "already_done", writing nothing.
    jobs = cluster.worker_jobs()
    assert jobs.get("done") == len(shas), jobs
    assert not jobs.get("failed"), jobs


def test_a_silent_device_is_reported_once(cluster: Cluster, receiver: Receiver) -> None:  # noqa: F811
    cluster.admin("notify", "add", "ann", receiver.url("alerts"))
    with session(cluster.lb.url, cluster.lb.cafile) as client:
        r = client.post("/api/v1/devices", json={"name": "quiet-phone", "platform": "test"})
        r.raise_for_status()
        token = r.json()["token"]
        beat = {"agent_version": "0.1.0", "state": "idle", "headline": "All 3 files backed up",
                "backed_up_files": 3}
        r = httpx.put(f"{cluster.lb.url}/api/v1/devices/current/heartbeat", json=beat,
                      headers={"Authorization": f"Bearer {token}"}, verify=trusting(cluster.lb.cafile))
        assert r.status_code == 200, r.text

    def about_quiet(ms: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [m for m in ms if "quiet-phone" in json.dumps(m)]

    receiver.wait("alerts", lambda ms: len(about_quiet(ms)) >= 1, timeout=30)
    # Both replicas check every 0.3 s: four rounds each go by, and still one message.
    time.sleep(1.2)
    got = about_quiet(receiver.at("alerts"))
    assert len(got) == 1, got
    assert "silent" in json.dumps(got[0])


def test_haproxy_checks_readyz_and_routes_around_a_dead_replica(cluster: Cluster,
                                                               tmp_path_factory: pytest.TempPathFactory) -> None:
    """The shipped HAProxy config in front of the same replicas: active /readyz checks, and no request
    lost while a replica dies (connections refused are sent to the other one)."""
    hp = nginx.start_haproxy(tmp_path_factory.mktemp("haproxy"), [r.port for r in cluster.replicas])
    try:
        both = {"replica1", "replica2"}
        hp.wait_states("UP L7OK", both)  # each replica's /readyz answered 200
        with httpx.Client(base_url=hp.url, verify=hp.ssl_context(), timeout=30) as client:
            assert client.get("/api/v1/server").status_code == 200
            assert client.get("/metrics").status_code == 404
            cluster.replicas[1].kill()
            answers = [client.get("/api/v1/server").status_code for _ in range(20)]
            assert answers == [200] * 20, answers
            hp.wait_states("DOWN", {"replica2"})
            assert client.get("/api/v1/server").status_code == 200
    finally:
        hp.stop()
