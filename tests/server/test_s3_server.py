"""A real ``camroll serve`` keeping originals and thumbnails in S3 (SeaweedFS): downloads stream with Range
in constant memory, thumbnails go to the bucket, nothing lands on the replica's disk, and a bucket that
does not answer stops the server at start with the reason and the fix."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import time
import zipfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from services.s3 import S3Service
from support.env import free_port
from support.media import photo
from support.server import ServerProcess, run_camroll
from support.wait import wait_until

from camroll.server import migrate
from camroll.server.context import Context, build
from camroll.server.repositories import assets as repo
from camroll.server.services.accounts import add_user
from camroll.server.settings import Settings
from camroll.server.storage.base import BlobNotFound
from camroll.server.storage.s3 import S3BlobStore

from .conftest import upload

BIG = 64 * 2**20
PASSWORD = "correct horse battery"


def _vm_hwm(pid: int) -> int:
    """The process's peak resident memory so far (Linux VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


class _S3Server:
    def __init__(self, srv: ServerProcess, ctx: Context, svc: S3Service) -> None:
        self.srv, self.ctx, self.svc = srv, ctx, svc
        assert isinstance(ctx.blobs, S3BlobStore)
        self.blobs: S3BlobStore = ctx.blobs


@pytest.fixture(scope="module")
def s3_server(seaweedfs_s3: S3Service, tmp_path_factory: pytest.TempPathFactory) -> Iterator[_S3Server]:
    env = seaweedfs_s3.env()
    srv = ServerProcess(data=tmp_path_factory.mktemp("s3srv") / "server-data", env=env)
    srv.start()
    # This process reaches the same database and bucket as the server (users, a blob put directly).
    mp = pytest.MonkeyPatch()
    for k, v in env.items():
        mp.setenv(k, v)
    ctx = build(Settings.for_data_dir(srv.data))
    migrate.upgrade(ctx.engine)
    try:
        yield _S3Server(srv, ctx, seaweedfs_s3)
    finally:
        srv.stop()
        ctx.engine.dispose()
        mp.undo()


def _session(s: _S3Server, name: str) -> tuple[int, httpx.Client]:
    user = add_user(s.ctx, name, PASSWORD)
    token = s.srv.login(name, PASSWORD)
    return user.id, httpx.Client(base_url=s.srv.url, headers={"Authorization": f"Bearer {token}"}, timeout=60)


def _big_file(tmp: Path) -> tuple[Path, str]:
    # 64 MiB, not one repeated block: a wrong offset would not go unnoticed.
    path = tmp / "big.bin"
    h = hashlib.sha256()
    seed = os.urandom(2**20)
    with open(path, "wb") as f:
        for i in range(BIG // 2**20):
            block = seed[i:] + seed[:i]
            f.write(block)
            h.update(block)
    return path, h.hexdigest()


def test_originals_motion_videos_and_zips_stream_from_s3_in_constant_memory(s3_server: _S3Server,
                                                                             tmp_path: Path) -> None:
    s = s3_server
    user_id, client = _session(s, "streamer")
    path, sha = _big_file(tmp_path)
    expected = path.read_bytes()  # the test's copy, to compare slices with
    s.blobs.put_file(sha, path)
    with s.ctx.conn() as conn:
        repo.ensure_blob(conn, sha, BIG)
        asset_id = repo.get_or_create(conn, user_id, sha, BIG, "image/jpeg", "BIG.JPG")
    # Pretend the metadata job found a Motion Photo video in the last 20 MiB.
    motion_at, motion_len = BIG - 20 * 2**20, 20 * 2**20
    with s.ctx.db() as db:
        a = repo.by_id_any_user(db, asset_id)
        assert a is not None
        a.motion_video_offset, a.motion_video_length = motion_at, motion_len

    pid = s.srv.proc.pid if s.srv.proc else 0
    before = _vm_hwm(pid)

    h = hashlib.sha256()
    with client.stream("GET", f"/api/v1/assets/{asset_id}/original") as r:
        assert r.status_code == 200 and r.headers["content-length"] == str(BIG)
        for block in r.iter_raw(256 * 2**10):
            h.update(block)
    assert h.hexdigest() == sha

    lo, hi = 10 * 2**20 + 5, 13 * 2**20 + 17
    r = client.get(f"/api/v1/assets/{asset_id}/original", headers={"Range": f"bytes={lo}-{hi}"})
    assert r.status_code == 206 and r.headers["content-range"] == f"bytes {lo}-{hi}/{BIG}"
    assert r.content == expected[lo:hi + 1]
    r = client.get(f"/api/v1/assets/{asset_id}/original", headers={"Range": "bytes=-100"})
    assert r.status_code == 206 and r.content == expected[-100:]

    h = hashlib.sha256()
    with client.stream("GET", f"/api/v1/assets/{asset_id}/motion") as r:
        assert r.status_code == 200 and r.headers["content-length"] == str(motion_len)
        for block in r.iter_raw(256 * 2**10):
            h.update(block)
    assert h.digest() == hashlib.sha256(expected[motion_at:]).digest()
    r = client.get(f"/api/v1/assets/{asset_id}/motion", headers={"Range": "bytes=1000-1999"})
    assert r.status_code == 206 and r.content == expected[motion_at + 1000:motion_at + 2000]

    zipped = tmp_path / "all.zip"
    with client.stream("GET", "/api/v1/assets/zip", params={"ids": str(asset_id)}) as r, open(zipped, "wb") as f:
        assert r.status_code == 200
        for block in r.iter_raw(256 * 2**10):
            f.write(block)
    with zipfile.ZipFile(zipped) as zf, zf.open("BIG.JPG") as member:
        h = hashlib.sha256()
        while block := member.read(2**20):
            h.update(block)
    assert h.hexdigest() == sha

    grew = _vm_hwm(pid) - before
    # 64 MiB went out three times (original, motion, zip); the server's peak grew by far less than one copy.
    assert grew < 24 * 2**20, f"the server's peak RSS grew by {grew / 2**20:.0f} MiB while streaming"
    client.close()


def test_thumbnails_go_to_the_bucket_and_nothing_to_the_local_disk(s3_server: _S3Server) -> None:
    s = s3_server
    _, client = _session(s, "thumbs")
    token = s.srv.device_token("thumbs", PASSWORD, session=client.headers["Authorization"].split()[1])
    device = httpx.Client(base_url=s.srv.url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
    data = photo(datetime(2019, 5, 4, 12, 0), size=(800, 600))
    asset_id = upload(device, data, filename="IMG_1.JPG")
    sha = hashlib.sha256(data).hexdigest()
    answers: list[httpx.Response] = []

    def thumbnail() -> bool:
        answers.append(client.get(f"/api/v1/assets/{asset_id}/thumbnail", params={"size": "grid"}))
        return answers[-1].status_code == 200

    with contextlib.suppress(AssertionError):
        wait_until(thumbnail, 60, what="the thumbnail is made", interval=0.1)
    r = answers[-1]
    if r.status_code != 200:
        with s.ctx.db() as db:
            a = repo.by_id_any_user(db, asset_id)
            state = a and (a.metadata_at, a.thumbs_at, a.job_error)
        log = (s.srv.data.parent / f"{s.srv.data.name}-server.log").read_text()[-3000:]
        raise AssertionError(f"{r.status_code} {r.text}; asset (metadata_at, thumbs_at, job_error) = {state}; "
                             f"server log:\n{log}")
    assert r.headers["content-type"] == "image/webp" and r.content[:4] == b"RIFF"
    etag = r.headers["etag"]
    assert client.get(f"/api/v1/assets/{asset_id}/thumbnail", params={"size": "grid"},
                      headers={"If-None-Match": etag}).status_code == 304
    keys = {o["Key"] for o in s.blobs.client.list_objects_v2(Bucket=s.blobs.bucket,
                                                             Prefix=s.blobs.key("thumbs") + "/")["Contents"]}
    assert any(k.startswith(s.blobs.key("thumbs", sha[:2], sha + "-grid")) for k in keys), keys
    assert any("-preview-" in k for k in keys)
    assert s.blobs.exists(sha)
    # No original and no thumbnail on the replica's own disk.
    local = [p for p in s.srv.data.rglob("*") if p.is_file() and (sha in p.name or p.suffix == ".webp")]
    assert local == []
    device.close()
    client.close()


def test_serve_stops_at_start_when_the_bucket_does_not_answer(seaweedfs_s3: S3Service, tmp_path: Path) -> None:
    env = seaweedfs_s3.env()
    r = run_camroll("serve", "--data", str(tmp_path / "lib"), "--listen", f"127.0.0.1:{free_port()}",
                    env={**env, "CAMROLL_STORAGE_URL": "s3://no-such-bucket/x"}, check=False, timeout=120)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and "botocore" not in r.stderr
    assert "has no bucket 'no-such-bucket'" in r.stderr and "Fix:" in r.stderr


@pytest.mark.parametrize(("change", "says"), [
    ({"AWS_SECRET_ACCESS_KEY": "wrong"}, ["secret key does not match", "AWS_SECRET_ACCESS_KEY"]),
    ({"AWS_ACCESS_KEY_ID": "nobody"}, ["does not know the access key id", "AWS_ACCESS_KEY_ID"]),
    ({"AWS_ENDPOINT_URL": "http://127.0.0.1:{port}", "AWS_MAX_ATTEMPTS": "1"},
     ["Could not connect to http://127.0.0.1:", "AWS_ENDPOINT_URL"]),
    ({"CAMROLL_STORAGE_URL": "https://example.com/bucket"}, ["neither s3://BUCKET[/PREFIX] nor file:///PATH"]),
    ({"AWS_S3_ADDRESSING_STYLE": "sideways"}, ["is not one of auto, path, virtual"]),
    ({"AWS_PROFILE": "no-such-profile"}, ["no-such-profile", "AWS_PROFILE"]),
])
def test_the_start_check_names_the_problem_and_the_fix(
        seaweedfs_s3: S3Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        change: dict[str, str], says: list[str]) -> None:
    import typer

    from camroll.server.cli import _check_storage

    for k, v in {**seaweedfs_s3.env(), **change}.items():
        monkeypatch.setenv(k, v.format(port=free_port()))
    with pytest.raises((typer.Exit, SystemExit)) as exit_:
        # What camroll serve does before it listens: settings (the URL), the client, one bucket listing.
        try:
            settings = Settings.for_data_dir(tmp_path / "lib")
        except ValueError as exc:
            print(exc, file=__import__("sys").stderr)
            raise SystemExit(2) from None
        _check_storage(settings)
    assert getattr(exit_.value, "exit_code", getattr(exit_.value, "code", None)) == 2
    err = capsys.readouterr().err
    for text in says:
        assert text in err, err


def test_a_storage_failure_in_a_request_is_a_503_problem_not_a_traceback(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3
    from botocore.config import Config
    from fastapi.testclient import TestClient

    from camroll.server.app import create_app
    from camroll.server.services import auth
    from camroll.server.storage.s3config import S3Location

    monkeypatch.delenv("CAMROLL_STORAGE_URL", raising=False)  # the module's server sets it for this process
    settings = Settings.for_data_dir(tmp_path / "data")
    settings.data_dir.mkdir(parents=True)
    ctx = build(settings)
    migrate.upgrade(ctx.engine)
    # A bucket whose server has gone away (nothing listens on the port).
    dead = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{free_port()}", aws_access_key_id="k",
                        aws_secret_access_key="s", region_name="us-east-1",
                        config=Config(retries={"total_max_attempts": 1}, connect_timeout=2))
    ctx.blobs = S3BlobStore(dead, S3Location("camroll"))
    user = add_user(ctx, "ann", PASSWORD)
    sha = "ab" * 32
    with ctx.conn() as conn:
        repo.ensure_blob(conn, sha, 9)
        asset_id = repo.get_or_create(conn, user.id, sha, 9, "image/jpeg", "X.JPG")
    token = auth.login(ctx, "ann", PASSWORD).token
    # No lifespan (no workers, no start-up sweep): only the request matters here.
    client = TestClient(create_app(settings, ctx), headers={"Authorization": f"Bearer {token}"},
                        raise_server_exceptions=False)
    r = client.get(f"/api/v1/assets/{asset_id}/original")
    assert r.status_code == 503, r.text
    assert r.headers["content-type"].startswith("application/problem+json") and r.headers["retry-after"]
    body = r.json()
    assert "cannot reach its storage" in body["detail"] and body["fix"]
    assert "127.0.0.1" not in r.text  # endpoints and buckets are for the admin's log only
    ctx.engine.dispose()


def test_zip_reads_blobs_in_pieces(s3_server: _S3Server, tmp_path: Path) -> None:
    """services/archive.py reads each blob through open() in 1 MiB reads, never whole."""
    from camroll.server.services import archive

    s = s3_server
    data = os.urandom(3 * 2**20 + 11)
    src = tmp_path / "z.bin"
    src.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    s.blobs.put_file(sha, src)
    reads: list[int] = []
    real_open = s.blobs.open

    class Spy:
        def __init__(self, inner: object) -> None:
            self.inner = inner

        def read(self, size: int = -1, /) -> bytes:
            reads.append(size)
            return self.inner.read(size)  # type: ignore[attr-defined,no-any-return]

        def close(self) -> None:
            self.inner.close()  # type: ignore[attr-defined]

    s.blobs.open = lambda *a, **k: Spy(real_open(*a, **k))  # type: ignore[method-assign]
    try:
        out = b"".join(archive.stream(s.ctx, [archive.Entry("z.bin", sha, len(data), (2020, 1, 1, 0, 0, 0))]))
    finally:
        del s.blobs.open
    assert reads and all(0 < n <= 2**20 for n in reads)
    with zipfile.ZipFile(io.BytesIO(out)) as zf:
        assert zf.read("z.bin") == data


def test_the_orphan_sweep_works_on_s3(s3_server: _S3Server, tmp_path: Path) -> None:
    """The sweep reads list() and its LastModified: an unreferenced blob past the grace age goes (with its
    thumbnails), a referenced one stays, and an unreferenced one inside the grace age stays too."""
    from camroll.server.services import orphans

    s = s3_server
    user_id, client = _session(s, "sweeper")
    client.close()
    shas = {}
    for name in ("orphan", "kept"):
        src = tmp_path / name
        src.write_bytes(name.encode() * 1000)
        shas[name] = hashlib.sha256(src.read_bytes()).hexdigest()
        s.blobs.put_file(shas[name], src)
    with s.ctx.conn() as conn:
        repo.ensure_blob(conn, shas["kept"], 4000)
        repo.get_or_create(conn, user_id, shas["kept"], 4000, "image/jpeg", "KEPT.JPG")
    assert s.ctx.thumbs is not None
    with s.ctx.thumbs.making(shas["orphan"]) as paths:
        paths["grid"].write_bytes(b"thumb")
    # Inside the grace age nothing goes; two hours on, the orphan does.
    assert orphans.sweep(s.ctx) == 0 and s.blobs.exists(shas["orphan"])
    later = time.time() + 7200
    assert orphans.sweep(s.ctx, clock=lambda: later) >= 1
    assert not s.blobs.exists(shas["orphan"])
    assert s.blobs.exists(shas["kept"])
    with pytest.raises(BlobNotFound):
        s.ctx.thumbs.open(shas["orphan"], "grid")
