"""Replicas with real services: a folder, SeaweedFS (S3) and an rclone remote served on loopback
(``rclone serve webdav``).  Copying, resuming after the replica went away mid-copy, a replica refusing
writes (an incident, then its recovery), removing a replica, deletion only after the purge."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import pytest
from services.s3 import S3Service
from sqlalchemy import delete, select, update

from camroll.server import metrics
from camroll.server.context import Context
from camroll.server.leases import Leases
from camroll.server.models import Asset, Blob, Incident, Replica, ReplicaCopy, utcnow
from camroll.server.replicas import admin, copies, incidents, service, status
from camroll.server.replicas.settings import ReplicaSettings
from camroll.server.replicas.states import CopyState, Reason
from camroll.server.replicas.urls import ReplicaConfigError, open_target
from camroll.server.services import library, stalls
from camroll.server.services.auth import Principal

from .replica_fixtures import WebDav, add_asset, make_user, rclone_webdav, webdav

_ = rclone_webdav
SETTINGS = ReplicaSettings(failing_seconds=0, backlog_seconds=3600, retry_min_seconds=0.0, retry_max_seconds=0.0)


def _s3_options(svc: S3Service, keys: tuple[str, str] | None = None) -> dict[str, str]:
    access, secret = keys or (svc.access_key, svc.secret_key)
    return {"endpoint": svc.endpoint, "region": svc.region, "access_key_id": access, "secret_access_key": secret,
            "addressing_style": "path"}


def _assets(ctx: Context, tmp: Path, n: int, user: int | None = None) -> list[str]:
    user = user if user is not None else make_user(ctx)
    return [add_asset(ctx, user, hashlib.sha256(str(i).encode()).digest() * (1000 + 37 * i), tmp, f"{i}.jpg")
            for i in range(n)]


def _states(ctx: Context, replica_id: int) -> dict[str, str]:
    with ctx.db() as db:
        return {s: st for s, st in db.execute(select(ReplicaCopy.sha256, ReplicaCopy.state)
                                              .where(ReplicaCopy.replica_id == replica_id))}


def _read(target: object, sha: str) -> bytes:
    s = target.open(sha)  # type: ignore[attr-defined]
    try:
        return bytes(s.read())
    finally:
        s.close()


def test_every_original_reaches_every_kind_of_replica(ctx: Context, tmp_path: Path, seaweedfs_s3: S3Service,
                                                     rclone_webdav: WebDav) -> None:
    shas = _assets(ctx, tmp_path, 4)
    folder = admin.add(ctx, "usb", f"file://{tmp_path / 'usb'}", {})
    bucket = admin.add(ctx, "b2", f"s3://{seaweedfs_s3.bucket}/{seaweedfs_s3.new_prefix()}", _s3_options(seaweedfs_s3))
    remote = admin.add(ctx, "dav", f"rclone:camtest:{tmp_path.name}", {"config": str(rclone_webdav.config)})
    with ctx.db() as db:
        before = {s.name: s.backlog_files for s in status.read(db)}
    assert before == {"usb": 4, "b2": 4, "dav": 4}, "a new replica owes every original"
    results = service.run_all_once(ctx, Leases(ctx), SETTINGS)
    assert all(r is not None and r.copied == 4 for r in results.values()), results
    for r in (folder, bucket, remote):
        states = _states(ctx, r.id)
        assert set(states) == set(shas)
        assert set(states.values()) <= {CopyState.COPIED.value, CopyState.VERIFIED.value}
        target = open_target(r.url, r.options)
        for sha in shas:
            assert hashlib.sha256(_read(target, sha)).hexdigest() == sha
        target.close()
    with ctx.db() as db:
        after = status.read(db)
    assert all(s.backlog_files == 0 and s.oldest_pending is None and s.failing_since is None for s in after)
    # The asset's details say where its copies are.
    with ctx.db() as db:
        asset_id, user_id = db.execute(select(Asset.id, Asset.user_id).where(Asset.sha256 == shas[0])).one()
    detail = library.detail(ctx, Principal(user_id=user_id, username="alice", is_admin=True, device_id=None), asset_id)
    assert sorted(c.replica for c in detail.copies) == ["b2", "dav", "usb"]
    assert all(c.state in ("copied", "verified") for c in detail.copies)
    # A second round copies nothing again.
    again = service.run_all_once(ctx, Leases(ctx), SETTINGS)
    assert all(r is not None and r.copied == 0 for r in again.values())
    text = metrics.of(ctx).exposition().decode()
    assert 'camroll_replica_backlog_files{replica="usb"} 0.0' in text
    assert 'camroll_replica_copies{replica="b2",state=' in text


def test_bad_urls_are_refused_with_the_fix(ctx: Context, tmp_path: Path) -> None:
    for url in ("http://bucket", "s3://", "rclone:nocolon", "file://relative/path", "ftp://x"):
        with pytest.raises(ReplicaConfigError):
            admin.add(ctx, "x", url, {})
    with pytest.raises(ReplicaConfigError):
        admin.add(ctx, "bad name!", f"file://{tmp_path}", {})
    admin.add(ctx, "one", f"file://{tmp_path / 'r'}", {})
    with pytest.raises(ReplicaConfigError):
        admin.add(ctx, "two", f"file://{tmp_path / 'r'}", {})


def test_resumes_after_the_replica_went_away_mid_copy(ctx: Context, tmp_path: Path) -> None:
    """The webdav server is stopped after two copies; the round stops with the replica failing, nothing
    partial is under any key, and once it is back the rest is copied and the first two are not again."""
    shas = _assets(ctx, tmp_path, 5)
    with webdav(tmp_path / "dav") as dav:
        r = admin.add(ctx, "dav", "rclone:camtest:lib", {"config": str(dav.config)})
        target = open_target(r.url, r.options)
        copies.discover(ctx, r.id)
        calls = 0

        def renew() -> bool:
            nonlocal calls
            calls += 1
            if calls == 3:
                dav.stop()
            return True

        first = copies.copy_round(ctx, r.id, target, settings=SETTINGS, clock=utcnow, renew=renew)
        assert first.copied == 2 and first.failure is not None and first.failure.transient
        with ctx.db() as db:
            rep = db.get(Replica, r.id)
            assert rep is not None and rep.failing_since is not None and rep.failure_kind == Reason.UNREACHABLE.value
            copied_at = dict(db.execute(select(ReplicaCopy.sha256, ReplicaCopy.copied_at)
                                        .where(ReplicaCopy.copied_at.is_not(None))).all())
        assert len(copied_at) == 2
        dav.start()
        second = copies.copy_round(ctx, r.id, target, settings=SETTINGS, clock=lambda: utcnow() + timedelta(hours=1))
        assert second.copied == 3 and second.failure is None
        with ctx.db() as db:
            rep = db.get(Replica, r.id)
            assert rep is not None and rep.failing_since is None, "recovered"
            for sha, at in copied_at.items():
                assert db.get(ReplicaCopy, (r.id, sha)).copied_at == at, "copied once, never again"
        assert sorted(b.sha256 for b in target.list()) == sorted(shas)
        assert not [p for p in (dav.folder / "lib").rglob("*") if ".partial-" in p.name], "no partial left"


def test_a_replica_refusing_writes_is_an_incident_once_then_resolves(ctx: Context, tmp_path: Path,
                                                                     seaweedfs_s3: S3Service) -> None:
    from camroll.server.models import NotifyTarget

    _assets(ctx, tmp_path, 2)
    assert seaweedfs_s3.readonly_keys is not None
    url = f"s3://{seaweedfs_s3.bucket}/{seaweedfs_s3.new_prefix()}"
    with pytest.raises(Exception) as refused:
        admin.add(ctx, "b2", url, _s3_options(seaweedfs_s3, seaweedfs_s3.readonly_keys))
    assert "403" in str(refused.value) and "write" in str(refused.value), "the probe names the missing right"
    r = admin.add(ctx, "b2", url, _s3_options(seaweedfs_s3, seaweedfs_s3.readonly_keys), check=False)
    with ctx.db() as db:  # no URL to send to: the incident is still recorded
        assert db.scalar(select(NotifyTarget)) is None
    res = service.run_replica(ctx, r.id, Leases(ctx), SETTINGS)
    assert res is not None and res.failure is not None and not res.failure.transient
    with ctx.db() as db:
        row = db.get(Replica, r.id)
        assert row is not None and row.failure_kind == Reason.ACCESS_DENIED.value
    now = utcnow() + timedelta(minutes=11)  # past the default 10 minutes a failure may last unreported
    msgs = stalls.check(ctx, now)
    failing = [m for m in msgs if "failing" in m.title]
    assert len(failing) == 1 and "403" in failing[0].body and "write" in failing[0].body and "Fix:" in failing[0].body
    assert not [m for m in stalls.check(ctx, now) if "failing" in m.title], "notified once"
    with ctx.db() as db:
        assert db.scalar(select(Incident.kind).where(Incident.key == f"replica:{r.id}:failing")) == \
            incidents.KIND_FAILING
        db.execute(update(Replica).where(Replica.id == r.id).values(options=_s3_options(seaweedfs_s3), retry_at=None))
    ok = service.run_replica(ctx, r.id, Leases(ctx), SETTINGS)
    assert ok is not None and ok.copied == 2 and ok.failure is None
    resolved = stalls.check(ctx, utcnow())
    assert [m.kind for m in resolved if "replica 'b2'" in m.title] == ["success"]
    with ctx.db() as db:
        assert db.scalar(select(Incident).where(Incident.key == f"replica:{r.id}:failing")) is None


def test_an_old_backlog_is_an_incident_even_when_paused(ctx: Context, tmp_path: Path) -> None:
    _assets(ctx, tmp_path, 1)
    r = admin.add(ctx, "usb", f"file://{tmp_path / 'usb'}", {})
    admin.set_paused(ctx, "usb", True)
    assert service.run_replica(ctx, r.id, Leases(ctx), SETTINGS).skipped == "paused"  # type: ignore[union-attr]
    later = utcnow() + timedelta(days=2)
    wanted = incidents.wanted(ctx, later, SETTINGS)
    assert [w.kind for w in wanted] == [incidents.KIND_BACKLOG]
    assert "replica resume usb" in wanted[0].message
    admin.set_paused(ctx, "usb", False)
    service.run_replica(ctx, r.id, Leases(ctx), SETTINGS)
    assert incidents.wanted(ctx, later, SETTINGS) == []


def test_copies_go_only_after_the_purge_and_never_while_another_user_holds_them(ctx: Context,
                                                                                tmp_path: Path) -> None:
    alice, bob = make_user(ctx, "alice"), make_user(ctx, "bob", admin=False)
    shared = add_asset(ctx, alice, b"the same photo" * 100, tmp_path, "same.jpg")
    add_asset(ctx, bob, b"the same photo" * 100, tmp_path, "same.jpg")
    own = add_asset(ctx, alice, b"only alice's" * 100, tmp_path, "own.jpg")
    r = admin.add(ctx, "usb", f"file://{tmp_path / 'usb'}", {})
    service.run_replica(ctx, r.id, Leases(ctx), SETTINGS)
    target = open_target(r.url, {})
    with ctx.db() as db:  # alice's assets purged: her rows go, bob still holds the shared blob
        db.execute(delete(Asset).where(Asset.user_id == alice))
        db.execute(delete(Blob).where(Blob.sha256 == own))
    assert copies.unneeded(ctx, r.id) == [own]
    service.run_replica(ctx, r.id, Leases(ctx), SETTINGS)
    assert target.stat(shared).size > 0
    assert [b.sha256 for b in target.list()] == [shared]
    assert set(_states(ctx, r.id)) == {shared}


def test_removing_a_replica_forgets_it_and_leaves_its_copies(ctx: Context, tmp_path: Path) -> None:
    shas = _assets(ctx, tmp_path, 2)
    r = admin.add(ctx, "usb", f"file://{tmp_path / 'usb'}", {})
    service.run_replica(ctx, r.id, Leases(ctx), SETTINGS)
    admin.remove(ctx, "usb")
    with ctx.db() as db:
        assert db.scalar(select(ReplicaCopy).where(ReplicaCopy.replica_id == r.id)) is None
        assert status.read(db) == []
    assert sorted(b.sha256 for b in open_target(r.url, {}).list()) == sorted(shas)
    with pytest.raises(ReplicaConfigError):
        admin.remove(ctx, "usb")


def test_one_process_at_a_time_copies_to_a_replica(ctx: Context, tmp_path: Path) -> None:
    _assets(ctx, tmp_path, 1)
    r = admin.add(ctx, "usb", f"file://{tmp_path / 'usb'}", {})
    other = Leases(ctx, holder="other-server")
    assert other.acquire(copies.copy_lease(r.id), 60)
    assert service.run_replica(ctx, r.id, Leases(ctx), SETTINGS) is None
    other.release(copies.copy_lease(r.id))
    done = service.run_replica(ctx, r.id, Leases(ctx), SETTINGS)
    assert done is not None and done.copied == 1
