"""Scrub with real stores: bytes flipped, truncated and deleted on the primary (local, then S3 on
SeaweedFS) are all found and repaired from a folder replica, and read back right afterwards; a byte
flipped in a replica's copy is found and the copy put again from the primary."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from services.s3 import S3Service
from sqlalchemy import select

from camroll.server.context import Context
from camroll.server.leases import Leases
from camroll.server.models import BlobCheck, ReplicaCopy, ScrubFinding
from camroll.server.replicas import admin, service
from camroll.server.replicas.scrub import Scrubber
from camroll.server.replicas.settings import ReplicaSettings
from camroll.server.replicas.states import PRIMARY, Action, CopyState, Problem
from camroll.server.storage.base import BlobNotFound

from .replica_fixtures import add_asset, make_user

SETTINGS = ReplicaSettings(retry_min_seconds=0.0, retry_max_seconds=0.0)


def _library(ctx: Context, tmp: Path, n: int = 5) -> tuple[list[str], int]:
    user = make_user(ctx)
    shas = [add_asset(ctx, user, hashlib.sha256(b"%d" % i).digest() * (2000 + i), tmp, f"{i}.jpg") for i in range(n)]
    r = admin.add(ctx, "usb", f"file://{tmp / 'usb'}", {})
    res = service.run_replica(ctx, r.id, Leases(ctx), SETTINGS)
    assert res is not None and res.copied == n
    return shas, r.id


def _primary_bytes(ctx: Context, sha: str) -> bytes:
    s = ctx.blobs.open(sha)
    try:
        return bytes(s.read())
    finally:
        s.close()


def _damage_primary(ctx: Context, shas: list[str]) -> None:
    flip, cut, gone = shas[:3]
    local = getattr(ctx.blobs, "root", None)
    if hasattr(ctx.blobs, "client"):  # S3: objects are replaced whole
        store = ctx.blobs
        data = bytearray(_primary_bytes(ctx, flip))
        data[len(data) // 2] ^= 0x01
        store.client.put_object(Bucket=store.bucket, Key=store.key_for(flip), Body=bytes(data))  # type: ignore[attr-defined]
        store.client.put_object(Bucket=store.bucket, Key=store.key_for(cut),  # type: ignore[attr-defined]
                                Body=_primary_bytes(ctx, cut)[:100])
        ctx.blobs.delete(gone)
        return
    path = lambda s: Path(local) / s[:2] / s[2:4] / s  # noqa: E731
    with open(path(flip), "r+b") as f:
        f.seek(1234)
        b = f.read(1)
        f.seek(1234)
        f.write(bytes([b[0] ^ 0x01]))
    with open(path(cut), "r+b") as f:
        f.truncate(100)
    path(gone).unlink()


def _check_repaired(ctx: Context, shas: list[str], report: object) -> None:
    findings = report.findings  # type: ignore[attr-defined]
    got = {(f.sha256, f.location, f.problem, f.action) for f in findings}
    flip, cut, gone = shas[:3]
    assert got == {(flip, PRIMARY, Problem.ALTERED, Action.REPAIRED),
                   (cut, PRIMARY, Problem.TRUNCATED, Action.REPAIRED),
                   (gone, PRIMARY, Problem.MISSING, Action.REPAIRED)}, got
    assert report.repaired == 3 and report.unrepaired == 0  # type: ignore[attr-defined]
    for sha in shas:
        assert hashlib.sha256(_primary_bytes(ctx, sha)).hexdigest() == sha, "a download afterwards hashes right"
    with ctx.db() as db:
        assert {f.source for f in db.scalars(select(ScrubFinding))} == {"usb"}, "every finding is recorded"
        assert len(db.scalars(select(BlobCheck)).all()) == len(shas), "each blob proven intact"


def test_scrub_finds_and_repairs_a_flipped_a_truncated_and_a_deleted_primary_blob(ctx: Context,
                                                                                  tmp_path: Path) -> None:
    shas, _ = _library(ctx, tmp_path)
    clean = Scrubber(ctx, SETTINGS).run()
    assert clean.findings == [] and clean.primary_ok == 5 and clean.copies_read_back == 5
    _damage_primary(ctx, shas)
    _check_repaired(ctx, shas, Scrubber(ctx, SETTINGS).run())
    assert Scrubber(ctx, SETTINGS).run().findings == [], "nothing left to find"


def test_scrub_repairs_an_s3_primary(ctx: Context, tmp_path: Path, seaweedfs_s3: S3Service) -> None:
    ctx.blobs = seaweedfs_s3.store()
    shas, _ = _library(ctx, tmp_path)
    _damage_primary(ctx, shas)
    with pytest.raises(BlobNotFound):
        ctx.blobs.stat(shas[2])
    _check_repaired(ctx, shas, Scrubber(ctx, SETTINGS).run())


def test_a_flipped_byte_in_a_replica_copy_is_found_and_copied_again(ctx: Context, tmp_path: Path) -> None:
    shas, replica_id = _library(ctx, tmp_path)
    sha = shas[4]
    copy = tmp_path / "usb" / sha[:2] / sha[2:4] / sha
    data = bytearray(copy.read_bytes())
    data[7] ^= 0x80
    copy.write_bytes(bytes(data))
    report = Scrubber(ctx, SETTINGS).run()
    assert [(f.sha256, f.location, f.problem, f.action, f.source) for f in report.findings] == \
        [(sha, "usb", Problem.ALTERED, Action.RECOPIED, PRIMARY)]
    assert hashlib.sha256(copy.read_bytes()).hexdigest() == sha
    with ctx.db() as db:
        row = db.get(ReplicaCopy, (replica_id, sha))
        assert row is not None and row.state == CopyState.VERIFIED.value and row.verified_at is not None


def test_a_blob_bad_everywhere_is_reported_unrepaired(ctx: Context, tmp_path: Path) -> None:
    shas, _ = _library(ctx, tmp_path, 1)
    sha = shas[0]
    (tmp_path / "usb" / sha[:2] / sha[2:4] / sha).write_bytes(b"rotten")
    ctx.blobs.delete(sha)
    report = Scrubber(ctx, SETTINGS).run()
    assert report.unrepaired >= 1 and report.repaired == 0
    assert {(f.location, f.action) for f in report.findings} >= {(PRIMARY, Action.UNREPAIRED)}


def test_the_rolling_schedule_reads_its_share_oldest_first(ctx: Context, tmp_path: Path) -> None:
    from datetime import timedelta

    from camroll.server.models import utcnow
    from camroll.server.replicas.scrub import due, scheduled_tick

    _library(ctx, tmp_path, 4)
    settings = ReplicaSettings(scrub_period_seconds=4 * 600.0, scrub_tick_seconds=600.0)
    first = scheduled_tick(ctx, settings)
    assert first is not None and 1 <= first.blobs < 4, "a tick reads its share, not the whole library"
    seen = first.blobs
    while (rep := scheduled_tick(ctx, settings)) is not None:
        seen += rep.blobs
    assert seen == 4 and due(ctx, utcnow(), settings.scrub_period_seconds, 10**12) == []
    assert len(due(ctx, utcnow() + timedelta(seconds=settings.scrub_period_seconds + 1), 2400, 10**12)) == 4
