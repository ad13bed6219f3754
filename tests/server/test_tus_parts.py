"""The tus rules on both part stores (local part files; S3 multipart parts on SeaweedFS), and two
replicas sharing one database and one bucket: a takeover mid-upload and a second writer refused.

In-process (Starlette's TestClient per replica): a ``Replica`` is one Context with its own HashCache and
busy set, as two ``camroll serve`` processes would have."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import shutil
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from services import postgres
from services.s3 import S3Service
from support.server import ON_POSTGRES

from camroll import wire
from camroll.server import migrate
from camroll.server.app import create_app
from camroll.server.context import Context
from camroll.server.db import make_engine, make_sessionmaker
from camroll.server.models import Device, Upload, utcnow
from camroll.server.problems import ProblemError
from camroll.server.repositories import uploads as repo
from camroll.server.services import accounts, receive, uploads
from camroll.server.services.partfiles import NOTHING, PartFiles, PartsExhausted, PartStore, Recorded
from camroll.server.services.receive import BodyInterrupted
from camroll.server.settings import Settings
from camroll.server.storage.base import BlobStore, StorageUnavailable
from camroll.server.storage.local import LocalBlobStore
from camroll.server.storage.s3parts import MAX_PARTS, MIN_PART, S3PartStore, part_size_for

from .conftest import OCTET, TUS, assert_problem, b64digest, jpeg, meta

# SeaweedFS enforces S3's 5 MiB minimum part; parts of exactly that keep the files small.
PART = MIN_PART


@dataclasses.dataclass
class Replica:
    ctx: Context
    api: TestClient

    def create(self, data: bytes, **extra: str) -> str:
        r = self.api.post(wire.UPLOADS_PATH, headers={**TUS, "Upload-Length": str(len(data)),
                                                      "Upload-Metadata": meta(data, **extra)})
        assert r.status_code == 201, r.text
        return str(r.headers["Location"])

    def patch(self, url: str, offset: int, chunk: bytes, checksum: str | None = None) -> httpx.Response:
        headers = {**TUS, "Content-Type": OCTET, "Upload-Offset": str(offset)}
        if checksum:
            headers["Upload-Checksum"] = checksum
        return self.api.patch(url, content=chunk, headers=headers)

    def offset(self, url: str) -> int:
        r = self.api.head(url, headers=TUS)
        assert r.status_code == 200, r.text
        return int(r.headers["Upload-Offset"])


@dataclasses.dataclass
class Cluster:
    kind: str
    tmp: Path
    db_url: str
    s3: S3Service | None
    prefix: str
    replicas: list[Replica] = dataclasses.field(default_factory=list)
    token: str = ""

    def replica(self) -> Replica:
        """One more replica on the shared database (and bucket); the first one makes the user."""
        data = self.tmp / f"replica{len(self.replicas)}"
        settings = dataclasses.replace(Settings.for_data_dir(data), database_url=self.db_url)
        engine = make_engine(self.db_url)
        blobs: BlobStore
        parts: PartStore
        if self.s3 is None:
            blobs, parts = LocalBlobStore(data / "blobs"), PartFiles(data / "uploads")
        else:
            store = self.s3.store(self.prefix)
            blobs, parts = store, S3PartStore.beside(store, part_size=PART)
        ctx = Context(settings, engine, make_sessionmaker(engine), blobs, parts)
        api = TestClient(create_app(settings, ctx))
        api.__enter__()
        if not self.replicas:
            self.token = api.post("/api/v1/auth/login", json={"username": "ann", "password": "pw"}).json()["token"]
        api.headers["Authorization"] = f"Bearer {self.token}"
        rep = Replica(ctx, api)
        self.replicas.append(rep)
        return rep

    @property
    def a(self) -> Replica:
        return self.replicas[0] if self.replicas else self.replica()

    def leftovers(self) -> list[str]:
        """What the part store still holds: part files, or S3 objects and multipart uploads."""
        if self.s3 is None:
            # An upload at offset 0 has its empty part file.
            return [p.name for r in self.replicas for p in (r.ctx.settings.data_dir / "uploads").glob("*.part")
                    if p.stat().st_size]
        client = self.s3.client()
        prefix = f"{self.prefix}/uploads/"
        bucket = self.s3.bucket
        objects = [o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]
        mpus = [u["Key"] for u in client.list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads", [])]
        return objects + [f"multipart:{k}" for k in mpus]

    def close(self) -> None:
        for r in self.replicas:
            r.api.__exit__(None, None, None)


@pytest.fixture(autouse=True)
def _no_job_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    # Thumbnails of these made-up JPEGs are not what is tested; without workers the replicas stop at once.
    monkeypatch.setenv("CAMROLL_JOB_WORKERS", "0")


def _with_user(url: str, data: Path) -> str:
    """Migrate the database at ``url`` and add the user ann."""
    settings = dataclasses.replace(Settings.for_data_dir(data), database_url=url)
    engine = make_engine(url)
    migrate.upgrade(engine)
    accounts.add_user(Context(settings, engine, make_sessionmaker(engine), LocalBlobStore(data / "blobs"),
                              PartFiles(data / "uploads")), "ann", "pw")
    engine.dispose()
    return url


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path | None:
    """SQLite: a migrated database with the user ann, copied for each test (migrations and argon2 once)."""
    if ON_POSTGRES:
        return None
    data = tmp_path_factory.mktemp("template")
    _with_user(f"sqlite+pysqlite:///{data / 'camroll.db'}", data)
    return data / "camroll.db"


def _shared_db(template: Path | None, tmp_path: Path) -> str:
    """The database the test's replicas share: a copy of the template, or on the PostgreSQL pass a fresh
    database on the suite's cluster."""
    if template is None:
        return _with_user(postgres.fresh_url(migrated=False), tmp_path / "setup")
    shutil.copyfile(template, tmp_path / "shared.db")
    return f"sqlite+pysqlite:///{tmp_path / 'shared.db'}"


@pytest.fixture(params=["local", "s3"])
def cluster(request: pytest.FixtureRequest, tmp_path: Path, template: Path | None) -> Iterator[Cluster]:
    s3: S3Service | None = request.getfixturevalue("seaweedfs_s3") if request.param == "s3" else None
    c = Cluster(request.param, tmp_path, _shared_db(template, tmp_path), s3, s3.new_prefix() if s3 else "")
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def s3_cluster(tmp_path: Path, template: Path | None, seaweedfs_s3: S3Service) -> Iterator[Cluster]:
    c = Cluster("s3", tmp_path, _shared_db(template, tmp_path), seaweedfs_s3, seaweedfs_s3.new_prefix())
    try:
        yield c
    finally:
        c.close()


def _asset_bytes(rep: Replica, asset_id: int) -> bytes:
    r = rep.api.get(f"/api/v1/assets/{asset_id}/original")
    assert r.status_code == 200, r.text
    return r.content


def _upload_id(url: str) -> str:
    return url.rsplit("/", 1)[1]


def test_offsets_parts_and_tail_then_an_asset(cluster: Cluster) -> None:
    a = cluster.a
    data = jpeg(2 * PART + 300_000, seed=1)
    url = a.create(data, path="/DCIM/big.jpg")
    # A tail alone, then tail + body across a part boundary, then the last bytes.
    cuts = [0, 1_000_000, PART + 200_000, len(data)]
    asset_id = None
    for start, end in itertools.pairwise(cuts):
        r = a.patch(url, start, data[start:end])
        assert r.status_code == 204, r.text
        assert int(r.headers["Upload-Offset"]) == end
        if end < len(data):
            assert a.offset(url) == end
        else:
            asset_id = int(r.headers[wire.ASSET_ID_HEADER])
    assert asset_id is not None
    assert hashlib.sha256(_asset_bytes(a, asset_id)).hexdigest() == hashlib.sha256(data).hexdigest()
    assert a.api.head(url, headers=TUS).headers[wire.ASSET_ID_HEADER] == str(asset_id)
    assert cluster.leftovers() == []


def _cut(data: bytes) -> AsyncIterator[bytes]:
    async def body() -> AsyncIterator[bytes]:
        for i in range(0, len(data), 256 * 1024):
            yield data[i:i + 256 * 1024]
        raise BodyInterrupted
    return body()


def test_a_cut_body_keeps_what_arrived_and_resumes(cluster: Cluster) -> None:
    a = cluster.a
    data = jpeg(PART + 2_000_000, seed=2)
    url = a.create(data)
    cut_at = PART + 700_000
    with pytest.raises(BodyInterrupted):
        anyio.run(receive.receive, a.ctx, _upload_id(url), 0, len(data), _cut(data[:cut_at]), None)
    assert a.offset(url) == cut_at
    r = a.patch(url, cut_at, data[cut_at:])
    assert r.status_code == 204, r.text
    assert _asset_bytes(a, int(r.headers[wire.ASSET_ID_HEADER])) == data
    assert cluster.leftovers() == []


def test_a_checksummed_chunk_that_does_not_match_keeps_nothing(cluster: Cluster) -> None:
    a = cluster.a
    data = jpeg(3 * PART, seed=3)
    url = a.create(data)
    first = PART + 100_000
    assert a.patch(url, 0, data[:first]).status_code == 204
    held = cluster.leftovers()
    # Two parts' worth of bytes uploaded, then refused: the recorded tail and parts stay as they were.
    damaged = bytearray(data[first:])
    damaged[-1] ^= 0xFF
    r = a.patch(url, first, bytes(damaged), b64digest("sha256", data[first:]))
    assert_problem(r, wire.STATUS_CHECKSUM_MISMATCH, "checksum_mismatch")
    assert a.offset(url) == first
    assert cluster.leftovers() == held
    r = a.patch(url, first, data[first:], b64digest("sha256", data[first:]))
    assert r.status_code == 204, r.text
    assert _asset_bytes(a, int(r.headers[wire.ASSET_ID_HEADER])) == data

    # Refused in the request that would have begun the multipart upload: none is left behind.
    other = jpeg(2 * PART + 10, seed=33)
    url = a.create(other)
    r = a.patch(url, 0, other, b64digest("sha1", other[:-1]))
    assert_problem(r, wire.STATUS_CHECKSUM_MISMATCH, "checksum_mismatch")
    assert a.offset(url) == 0
    assert cluster.leftovers() == []


def test_the_same_bytes_twice_are_one_blob(cluster: Cluster) -> None:
    a = cluster.a
    data = jpeg(PART + 5000, seed=4)
    ids = []
    for path in ("/DCIM/one.jpg", "/Backup/one.jpg"):
        url = a.create(data, path=path)
        r = a.patch(url, 0, data)
        assert r.status_code == 204, r.text
        ids.append(int(r.headers[wire.ASSET_ID_HEADER]))
    assert ids[0] == ids[1]
    info = a.api.get(f"/api/v1/assets/{ids[0]}").json()
    assert sorted(f["path"] for f in info["files"]) == ["/Backup/one.jpg", "/DCIM/one.jpg"]
    assert [b.sha256 for b in a.ctx.blobs.list()] == [hashlib.sha256(data).hexdigest()]
    assert cluster.leftovers() == []


def test_delete_removes_the_parts(cluster: Cluster) -> None:
    a = cluster.a
    data = jpeg(2 * PART, seed=5)
    url = a.create(data)
    assert a.patch(url, 0, data[:PART + 1000]).status_code == 204
    assert cluster.leftovers() != []
    assert a.api.delete(url, headers=TUS).status_code == 204
    assert a.api.head(url, headers=TUS).status_code == 404
    assert cluster.leftovers() == []


def test_the_expiry_sweep_aborts_the_multipart_upload(cluster: Cluster) -> None:
    a = cluster.a
    data = jpeg(2 * PART, seed=6)
    url = a.create(data)
    assert a.patch(url, 0, data[:PART + 1000]).status_code == 204
    if cluster.kind == "s3":
        assert any(x.startswith("multipart:") for x in cluster.leftovers())
    with a.ctx.db() as db:
        row = db.get(Upload, _upload_id(url))
        assert row is not None
        row.expires_at = utcnow() - timedelta(seconds=1)
    assert uploads.sweep(a.ctx) == 1
    assert cluster.leftovers() == []
    assert a.api.head(url, headers=TUS).status_code == 410


def test_strays_no_upload_records_are_removed_after_the_grace_age(s3_cluster: Cluster,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    a = s3_cluster.a
    parts = a.ctx.parts
    assert isinstance(parts, S3PartStore)
    # A replica that died between writing and committing: a multipart upload and a tail nobody records.
    lost = "L" * 32
    parts.client.create_multipart_upload(Bucket=parts.bucket, Key=parts.key(lost))
    parts.client.put_object(Bucket=parts.bucket, Key=parts.key(lost) + ".tail.0123", Body=b"x")
    data = jpeg(PART + 10, seed=7)
    url = a.create(data)
    assert a.patch(url, 0, data[:PART + 5]).status_code == 204
    kept = [x for x in s3_cluster.leftovers() if _upload_id(url) in x]
    uploads.sweep(a.ctx)
    assert len(s3_cluster.leftovers()) == 2 + len(kept)  # younger than the grace age
    monkeypatch.setattr(uploads, "STRAY_GRACE_SECONDS", -60.0)
    uploads.sweep(a.ctx)
    assert s3_cluster.leftovers() == kept
    assert a.patch(url, PART + 5, data[PART + 5:]).status_code == 204


def test_a_takeover_finishes_on_another_replica_without_resending(s3_cluster: Cluster,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = s3_cluster.a, s3_cluster.replica()
    data = jpeg(2 * PART + 123_456, seed=8)
    read_back: list[str] = []
    for rep in (a, b):
        real = rep.ctx.parts.sha256
        monkeypatch.setattr(rep.ctx.parts, "sha256", lambda upload_id, recorded, real=real:
                            read_back.append(upload_id) or real(upload_id, recorded))
    url = a.create(data)
    half = len(data) // 2
    sent = 0
    for start, end in ((0, PART // 2), (PART // 2, half)):
        assert a.patch(url, start, data[start:end]).status_code == 204
        sent += end - start
    assert b.offset(url) == half
    r = b.patch(url, half, data[half:])
    sent += len(data) - half
    assert r.status_code == 204, r.text
    assert sent == len(data)  # nothing re-sent
    asset_id = int(r.headers[wire.ASSET_ID_HEADER])
    # B had no running hash: it hashed what the store held, once.
    assert read_back == [_upload_id(url)]
    for rep in (a, b):
        assert hashlib.sha256(_asset_bytes(rep, asset_id)).hexdigest() == hashlib.sha256(data).hexdigest()
    assert s3_cluster.leftovers() == []

    # Routed to the replica holding the running hash, nothing is read back.
    read_back.clear()
    other = jpeg(PART + 77, seed=9)
    url = b.create(other)
    assert b.patch(url, 0, other[:1000]).status_code == 204
    assert b.patch(url, 1000, other[1000:]).status_code == 204
    assert read_back == []


def test_a_second_writer_on_another_replica_is_refused(s3_cluster: Cluster) -> None:
    a, b = s3_cluster.a, s3_cluster.replica()
    data = jpeg(PART + 5000, seed=10)
    url = a.create(data)
    upload_id = _upload_id(url)
    gate = threading.Event()
    outcome: dict[str, Any] = {}

    async def slow() -> AsyncIterator[bytes]:
        yield data[:100_000]
        while not gate.is_set():
            await anyio.sleep(0.01)
        yield data[100_000:]

    def write_on_a() -> None:
        try:
            outcome["got"] = anyio.run(receive.receive, a.ctx, upload_id, 0, len(data), slow(), None)
        except BaseException as exc:
            outcome["error"] = exc

    writer = threading.Thread(target=write_on_a)
    writer.start()
    try:
        deadline = time.monotonic() + 10
        while not uploads.writing_elsewhere(b.ctx, upload_id):
            assert time.monotonic() < deadline, outcome
            time.sleep(0.01)
        assert upload_id not in b.ctx.busy
        assert_problem(b.patch(url, 0, data), 409, "conflict")
        assert_problem(b.api.delete(url, headers=TUS), 409, "conflict")
        # HEAD on B waits for A's request, then reports where its bytes end.
        head: dict[str, httpx.Response] = {}
        asking = threading.Thread(target=lambda: head.setdefault("r", b.api.head(url, headers=TUS)))
        asking.start()
        time.sleep(0.2)
        assert "r" not in head
        gate.set()
        asking.join(10)
        writer.join(30)
    finally:
        gate.set()
        writer.join(30)
    assert "error" not in outcome, outcome
    assert outcome["got"].asset_id is not None
    assert head["r"].headers["Upload-Offset"] == str(len(data))
    assert head["r"].headers[wire.ASSET_ID_HEADER] == str(outcome["got"].asset_id)
    assert _asset_bytes(b, outcome["got"].asset_id) == data


def test_start_up_finishes_an_upload_whose_last_bytes_were_recorded(s3_cluster: Cluster,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    a = s3_cluster.a
    data = jpeg(PART + 99, seed=11)
    url = a.create(data)

    def crash(*args: object, **kwargs: object) -> int:
        raise RuntimeError("replica died")

    monkeypatch.setattr(uploads, "complete", crash)
    with pytest.raises(RuntimeError):
        anyio.run(receive.receive, a.ctx, _upload_id(url), 0, len(data), _cut(data), None)
    monkeypatch.undo()
    b = s3_cluster.replica()  # its start-up reconcile() completes the upload from the stored parts
    r = b.api.head(url, headers=TUS)
    assert r.headers["Upload-Offset"] == str(len(data))
    assert _asset_bytes(b, int(r.headers[wire.ASSET_ID_HEADER])) == data
    assert s3_cluster.leftovers() == []


def test_an_upload_whose_parts_vanished_is_gone(s3_cluster: Cluster) -> None:
    a = s3_cluster.a
    data = jpeg(PART + 10, seed=12)
    url = a.create(data)
    assert a.patch(url, 0, data[:1000]).status_code == 204
    parts = a.ctx.parts
    assert isinstance(parts, S3PartStore)
    for key in s3_cluster.leftovers():  # the tail, deleted behind camroll's back
        parts.client.delete_object(Bucket=parts.bucket, Key=key)
    assert_problem(a.patch(url, 1000, data[1000:]), 410, "gone")
    assert a.api.head(url, headers=TUS).status_code == 410


@pytest.mark.parametrize("fails", ["publish", "finish"])
def test_a_completion_that_failed_after_the_assembly_finishes_on_the_next_patch(
        s3_cluster: Cluster, monkeypatch: pytest.MonkeyPatch, fails: str) -> None:
    """The last PATCH recorded every part; the multipart upload was assembled, then the copy into the
    blob key failed (503), or the step after the copy did.  The agent's HEAD finds offset == length and
    its empty PATCH finishes the upload from the stored bytes: nothing is given up or sent again."""
    a = s3_cluster.a
    data = jpeg(2 * PART + 1234, seed=13)
    url = a.create(data)
    failed: list[str] = []
    target: Any = a.ctx.parts if fails == "publish" else uploads
    name = "publish" if fails == "publish" else "_finish"
    real = getattr(target, name)

    def once(*args: Any, **kwargs: Any) -> Any:
        if not failed:
            failed.append(name)
            if fails == "publish":
                raise StorageUnavailable("SeaweedFS answered 503 to the copy.", "Try again later.")
            raise RuntimeError("replica died after the copy")
        return real(*args, **kwargs)

    monkeypatch.setattr(target, name, once)
    with pytest.raises(StorageUnavailable if fails == "publish" else RuntimeError):
        a.patch(url, 0, data)  # the test client raises what the server answered 503 / 500 to
    assert failed == [name]
    assert a.offset(url) == len(data)
    r = a.patch(url, len(data), b"")
    assert r.status_code == 204, r.text
    assert _asset_bytes(a, int(r.headers[wire.ASSET_ID_HEADER])) == data
    assert s3_cluster.leftovers() == []


def test_the_lease_is_kept_while_a_long_completion_runs(s3_cluster: Cluster,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Completion outlasting several leases (a slow read-back or copy) keeps the writer lease: a retry
    PATCH on another replica is refused, and the upload is neither superseded nor swept meanwhile."""
    monkeypatch.setattr(uploads, "LEASE_SECONDS", 0.3)
    a, b = s3_cluster.a, s3_cluster.replica()
    data = jpeg(PART + 4321, seed=14)
    url = a.create(data)
    upload_id = _upload_id(url)
    copying, release = threading.Event(), threading.Event()
    real = a.ctx.parts.assemble

    def slow(*args: Any, **kwargs: Any) -> None:
        copying.set()
        assert release.wait(30)
        real(*args, **kwargs)

    # Before the hash is recorded: the slow step of a takeover (reading the whole object back) and
    # the assembly look alike to everyone else.
    monkeypatch.setattr(a.ctx.parts, "assemble", slow)
    outcome: dict[str, httpx.Response] = {}
    patching = threading.Thread(target=lambda: outcome.setdefault("r", a.patch(url, 0, data)))
    patching.start()
    try:
        assert copying.wait(30)
        time.sleep(4 * uploads.LEASE_SECONDS)  # the step outlasts the lease a few times over
        assert uploads.writing_elsewhere(b.ctx, upload_id)
        assert_problem(b.patch(url, len(data), b""), 409, "conflict")
        with b.ctx.conn() as conn:
            row = repo.get_row(conn, upload_id)
            device = conn.execute(sa.insert(Device).values(user_id=row.user_id, name="phone", token_hash="t" * 64)
                                  .returning(Device.id)).scalar_one()
            conn.execute(sa.update(repo.UPLOADS).where(repo.UPLOADS.c.id == upload_id).values(device_id=device))
            # A new upload of the same file from the same device does not supersede it, even once the
            # lease looks lapsed; only an expired one is abandoned.
            sha = hashlib.sha256(data).hexdigest()
            lapsed = row.lease_until + timedelta(seconds=1)
            assert repo.abandoned(conn, row.user_id, device, sha, "", lapsed) == []
            assert repo.abandoned(conn, row.user_id, device, sha, "", row.expires_at) == [upload_id]
    finally:
        release.set()
        patching.join(30)
    r = outcome["r"]
    assert r.status_code == 204, r.text
    assert _asset_bytes(b, int(r.headers[wire.ASSET_ID_HEADER])) == data


def test_every_part_but_the_last_is_full_and_the_numbers_last(s3_cluster: Cluster) -> None:
    """A leftover shorter than the part size stays the tail even when S3 would take it as a part, so
    part numbers are spent on full parts only; an upload that could no longer fit in S3's 10,000 numbers
    is refused before any byte is read."""
    assert s3_cluster.s3 is not None
    store = s3_cluster.s3.store(s3_cluster.prefix)
    parts = S3PartStore.beside(store, part_size=2 * MIN_PART)
    upload_id = "P" * 32
    length = 5 * MIN_PART
    w = parts.writer(upload_id, 0, length, NOTHING)
    w.write(b"a" * (3 * MIN_PART // 2))  # 7.5 MiB: S3 would take it as a part; it is the tail
    first = w.finish(False)
    w.settle()
    assert (first.parts, first.tail_size) == ((), 3 * MIN_PART // 2)
    w = parts.writer(upload_id, first.size, length, first)
    w.write(b"b" * MIN_PART)
    second = w.finish(False)
    w.settle()
    assert [p.size for p in second.parts] == [2 * MIN_PART]
    assert second.tail_size == MIN_PART // 2
    assert parts.check(upload_id, second)

    # Sized with slack: 4 MiB PATCHes of a 90 GB file need half of S3's numbers at most.
    for size in (90 * 10**9, 5 * 2**40):
        assert -(-size // part_size_for(size)) <= MAX_PARTS // 2
    # Failed requests used numbers up to 9,999: the two parts left would run past 10,000.
    burnt = Recorded(second.multipart_id, (*second.parts, dataclasses.replace(second.parts[0], number=9_999)),
                     second.tail_key, second.tail_size)
    with pytest.raises(PartsExhausted, match="10000"):
        parts.writer(upload_id, burnt.size, 2 * MIN_PART * 9_999 + MIN_PART, burnt)
    parts.remove(upload_id, second)


def test_a_writer_taken_over_stores_no_part_and_a_replaced_part_is_never_assembled(
        s3_cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    a = s3_cluster.a
    parts = a.ctx.parts
    assert isinstance(parts, S3PartStore)
    data = jpeg(2 * PART + 5000, seed=15)
    url = a.create(data)
    upload_id = _upload_id(url)
    stored: list[int] = []
    real = parts.client.upload_part
    monkeypatch.setattr(parts.client, "upload_part",
                        lambda **kw: stored.append(kw["PartNumber"]) or real(**kw))

    async def stalled() -> AsyncIterator[bytes]:
        yield data[:100_000]
        # Stalled past its lease; another replica took the upload over meanwhile.
        with a.ctx.conn() as conn:
            conn.execute(sa.update(repo.UPLOADS).where(repo.UPLOADS.c.id == upload_id)
                         .values(writer_id="other", lease_until=utcnow() + timedelta(seconds=60)))
        yield data[100_000:PART + 1000]

    with pytest.raises(ProblemError) as refused:
        anyio.run(receive.receive, a.ctx, upload_id, 0, len(data), stalled(), None)
    assert refused.value.status == 409
    assert stored == []  # stopped before its first part, not after uploading them all
    assert parts.multipart_uploads() == []
    with a.ctx.conn() as conn:
        conn.execute(sa.update(repo.UPLOADS).where(repo.UPLOADS.c.id == upload_id)
                     .values(writer_id=None, lease_until=None))

    # A part replaced behind the record (what a writer slower than a whole lease could do): the
    # recorded ETag no longer matches, so the upload is not assembled from the wrong bytes.
    assert a.patch(url, 0, data[:PART + 1000]).status_code == 204
    rec = uploads.recorded_of(a.ctx, upload_id)
    real(Bucket=parts.bucket, Key=parts.key(upload_id), UploadId=rec.multipart_id, PartNumber=1,
         Body=b"x" * PART)
    assert_problem(a.patch(url, PART + 1000, data[PART + 1000:]), 410, "gone")
    assert list(a.ctx.blobs.list()) == []


def test_bytes_deleted_under_a_completion_answer_410_not_500(s3_cluster: Cluster,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    a = s3_cluster.a
    parts = a.ctx.parts
    assert isinstance(parts, S3PartStore)
    data = jpeg(PART // 2, seed=16)  # one tail object holds the whole file
    url = a.create(data)
    real = parts.publish
    failed: list[bool] = []

    def once(*args: Any, **kwargs: Any) -> None:
        if not failed:
            failed.append(True)
            raise StorageUnavailable("SeaweedFS answered 503 to the copy.", "Try again later.")
        real(*args, **kwargs)

    monkeypatch.setattr(parts, "publish", once)
    with pytest.raises(StorageUnavailable):
        a.patch(url, 0, data)
    for key in s3_cluster.leftovers():  # the staged bytes, deleted behind camroll's back
        parts.client.delete_object(Bucket=parts.bucket, Key=key)
    assert_problem(a.patch(url, len(data), b""), 410, "gone")
