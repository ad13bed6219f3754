"""The backup engine and uploader against an in-memory tus server (no network)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import httpx
import pytest
from support.media import jpeg_bytes, mp4_bytes, png_bytes, write

from camroll.agent.backup.run import run_backup
from camroll.agent.backup.uploader import ServerHashMismatch, Uploader, UploadJob
from camroll.agent.events import BytesSent, Event, FileFinished, ScanFinished
from camroll.agent.paths import AgentPaths
from camroll.agent.settings.config import AgentConfig, PolicyConfig, ServerConfig
from camroll.agent.state.db import StateDB

from .fakeserver import FakeServer

MIB = 1024 * 1024


@pytest.fixture(autouse=True)
def _fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    from camroll.agent.backup import retry

    monkeypatch.setattr(retry.Backoff, "delay", lambda self, n, rng=None: 0.0)


@pytest.fixture(autouse=True)
def _no_machine_probes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Passes that do not pass ``probes`` see a machine where nothing is known (which never blocks the
    default policy), not this machine's battery: the suite must not depend on where it runs."""
    from camroll.agent.backup import run as engine
    from camroll.agent.settings.conditions import Probes, SubprocessRunner

    blank = tmp_path / "blank-machine"
    monkeypatch.setattr(engine, "Probes", lambda: Probes(root=blank, runner=SubprocessRunner(path=str(blank))))


def _setup(tmp_path: Path, chunk_mib: int = 1) -> tuple[AgentPaths, AgentConfig, Path]:
    photos = tmp_path / "photos"
    photos.mkdir()
    paths = AgentPaths.in_dir(tmp_path / "home")
    cfg = AgentConfig(
        server=ServerConfig(url="http://camroll.test", username="ann", device_id=1, device_name="d",
                            token="t"),
        folders=[str(photos)],
        policy=PolicyConfig(chunk_size_mib=chunk_mib),
    )
    return paths, cfg, photos


def _states(paths: AgentPaths) -> dict[str, tuple[str, str]]:
    with StateDB(paths.state_db) as db:
        return {os.path.basename(p): (db.get(r[0]).state, db.get(r[0]).reason) for p, r in db.index().items()}


@pytest.mark.parametrize("error", [httpx.ConnectError("refused"), httpx.ReadTimeout("slow"),
                                   RuntimeError("a bug in the report")])
def test_a_heartbeat_that_cannot_be_sent_never_fails_the_pass(tmp_path: Path, error: Exception) -> None:
    paths, cfg, photos = _setup(tmp_path)
    write(photos / "a.jpg", jpeg_bytes(1))
    srv = FakeServer()
    srv.heartbeat_error = error
    s = run_backup(paths, cfg, transport=srv.transport())
    assert s.ok and s.files_uploaded == 1 and s.headline == "Everything is backed up"
    assert srv.heartbeats == []


def test_first_backup_then_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # FakeServer speaks tus only (batches are tested against a real server in tests/e2e/test_batch.py), and
    # a batch refused by a server without the endpoint has already sent its bytes, which this count forbids.
    monkeypatch.setenv("CAMROLL_BATCH", "0")
    paths, cfg, photos = _setup(tmp_path)
    write(photos / "a.jpg", jpeg_bytes(1))
    write(photos / "b.png", png_bytes(2))
    big = mp4_bytes(3 * MIB + 5, seed=3)
    write(photos / "v" / "c.mp4", big)
    write(photos / "notes.txt", b"shopping list")
    write(photos / "empty.jpg", b"")
    srv = FakeServer()
    events: list[Event] = []
    s = run_backup(paths, cfg, events.append, transport=srv.transport())
    assert (s.files_scanned, s.files_uploaded, s.files_skipped, s.files_failed) == (5, 3, 2, 0), s
    assert s.ok and s.headline == "Everything is backed up"
    assert hashlib.sha256(big).hexdigest() in srv.assets
    st = _states(paths)
    assert st["notes.txt"][0] == "skipped" and "first bytes look like text" in st["notes.txt"][1]
    assert st["empty.jpg"] == ("skipped", "empty file (0 bytes)")
    assert st["c.mp4"] == ("backed_up", "uploaded and verified by the server")
    scan_ev = next(e for e in events if isinstance(e, ScanFinished))
    assert scan_ev.work_files == 4  # the empty file is skipped by its stat, before hashing
    sent = sum(e.n for e in events if isinstance(e, BytesSent))
    rest = sum(e.unreported_bytes for e in events if isinstance(e, FileFinished))
    assert sent + rest == scan_ev.work_bytes
    # Big file went as POST + 4 PATCHes; small ones as creation-with-upload.
    assert [m for m, _ in srv.requests].count("PATCH") == 4
    # Second pass: no requests at all.
    n = len(srv.requests)
    s2 = run_backup(paths, cfg, transport=srv.transport())
    assert s2.files_uploaded == 0 and s2.bytes_sent == 0 and len(srv.requests) == n
    # ...but each pass reported to the server once, with the same counts as the state DB (a cron backup
    # must not leave the devices page at "Never connected").
    assert len(srv.heartbeats) == 2
    assert (srv.heartbeats[-1].backed_up_files, srv.heartbeats[-1].skipped_files) == (3, 2)


def test_same_photo_two_folders_one_upload(tmp_path: Path) -> None:
    paths, cfg, photos = _setup(tmp_path)
    other = tmp_path / "other"
    data = jpeg_bytes(7)
    write(photos / "a.jpg", data)
    write(other / "copy.jpg", data)
    cfg.folders.append(str(other))
    srv = FakeServer()
    s = run_backup(paths, cfg, transport=srv.transport())
    assert s.files_uploaded == 1 and s.files_already_on_server == 1
    assert len(srv.assets) == 1
    (aid,) = srv.assets.values()
    assert srv.paths[aid] == {str(photos / "a.jpg"), str(other / "copy.jpg")}


def test_resume_after_dropped_connection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths, cfg, photos = _setup(tmp_path)
    data = mp4_bytes(3 * MIB, seed=9)
    write(photos / "v.mp4", data)
    read = _count_upload_reads(monkeypatch)
    srv = FakeServer()
    srv.drop_after_bytes = MIB // 2  # first PATCH: half stored, then the connection "breaks"
    s = run_backup(paths, cfg, transport=srv.transport())
    assert s.files_uploaded == 1
    assert srv.bytes_received == len(data)  # nothing the server had was sent again
    assert srv.blobs[1] == data
    # 1 MiB sent (half kept); the rest of that chunk sent to get back onto chunk boundaries, the last
    # two chunks: each byte read once, since bodies carry no chunk checksum on a link with no damage.
    assert [m for m, _ in srv.requests].count("PATCH") == 4
    assert sum(read) == MIB + MIB // 2 + 2 * MIB


def test_chunk_checksum_retry_and_5xx(tmp_path: Path) -> None:
    paths, cfg, photos = _setup(tmp_path)
    data = mp4_bytes(2 * MIB + 3, seed=4)
    write(photos / "v.mp4", data)
    srv = FakeServer()
    srv.corrupt_next_patch = True
    srv.fail_next_patches = 2
    s = run_backup(paths, cfg, transport=srv.transport())
    assert s.ok and s.files_uploaded == 1 and srv.blobs[1] == data


def test_resume_stored_upload_url_across_runs(tmp_path: Path) -> None:
    paths, cfg, photos = _setup(tmp_path)
    data = mp4_bytes(3 * MIB, seed=5)
    write(photos / "v.mp4", data)
    srv = FakeServer()
    srv.fail_next_patches = 100  # the pass gives up on this file
    s = run_backup(paths, cfg, transport=srv.transport())
    assert s.files_failed == 1 and "try later" in s.problems[0].reason
    with StateDB(paths.state_db) as db:
        (row,) = db.failed()
        assert row.upload_url and row.next_retry_at and row.attempts == 1
    # Parked: not retried before its time...
    srv.fail_next_patches = 0
    s = run_backup(paths, cfg, transport=srv.transport())
    assert s.files_parked == 1 and s.files_uploaded == 0
    # ...unless asked; then the stored upload is resumed (HEAD), not recreated.
    posts = srv.requests.count(("POST", "/api/v1/uploads/"))
    s = run_backup(paths, cfg, transport=srv.transport(), retry_failed_now=True)
    assert s.files_uploaded == 1
    assert srv.requests.count(("POST", "/api/v1/uploads/")) == posts
    assert "HEAD" in [m for m, _ in srv.requests]


def test_quota_stops_uploads_with_reason(tmp_path: Path) -> None:
    paths, cfg, photos = _setup(tmp_path)
    for i in range(4):
        write(photos / f"{i}.jpg", jpeg_bytes(i))
    srv = FakeServer()
    srv.quota_bytes = 0
    cfg.policy.upload_concurrency = 1
    s = run_backup(paths, cfg, transport=srv.transport())
    assert s.stopped_reason and "quota exceeded" in s.stopped_reason
    assert "Fix: delete some files" in s.stopped_reason
    assert s.files_failed == 0 and s.files_uploaded == 0
    assert srv.uploads == {} and srv.assets == {}
    # Quota is nobody's file's fault: every file waits (code "quota") and goes when there is room.
    assert s.files_waiting == 4 and s.stopped_code == "quota"
    with StateDB(paths.state_db) as db:
        rows = db.rows_in_state("waiting")
    assert len(rows) == 4 and {r.code for r in rows} == {"quota"}
    srv.quota_bytes = None
    s = run_backup(paths, cfg, transport=srv.transport())
    assert s.ok and s.files_uploaded == 4


def test_edit_is_uploaded_again_and_changed_stale_upload_terminated(tmp_path: Path) -> None:
    paths, cfg, photos = _setup(tmp_path)
    p = write(photos / "a.jpg", jpeg_bytes(1))
    srv = FakeServer()
    run_backup(paths, cfg, transport=srv.transport())
    st = p.stat()
    p.write_bytes(jpeg_bytes(2))
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 10**6))
    s = run_backup(paths, cfg, transport=srv.transport())
    assert s.files_changed == 1 and s.files_uploaded == 1 and len(srv.assets) == 2


def test_not_logged_in_and_no_folders(tmp_path: Path) -> None:
    from camroll.agent.errors import AgentError, NotLoggedIn

    paths = AgentPaths.in_dir(tmp_path)
    with pytest.raises(NotLoggedIn):
        run_backup(paths, AgentConfig())
    _, cfg, _ = _setup(tmp_path)
    cfg.folders = []
    with pytest.raises(AgentError, match="camroll folder add PATH"):
        run_backup(paths, cfg)


def test_changed_during_upload_is_redone(tmp_path: Path) -> None:
    paths, cfg, photos = _setup(tmp_path)
    p = write(photos / "v.mp4", mp4_bytes(3 * MIB, seed=1))
    new = mp4_bytes(3 * MIB, seed=2)
    srv = FakeServer()
    edited = []

    def on_event(e: Event) -> None:
        if isinstance(e, BytesSent) and not edited:
            edited.append(True)
            st = p.stat()
            p.write_bytes(new)
            os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 10**6))

    s = run_backup(paths, cfg, on_event, transport=srv.transport())
    assert s.ok and s.files_uploaded == 1, s
    assert list(srv.assets) == [hashlib.sha256(new).hexdigest()]
    assert srv.uploads == {}  # the upload of the old version was terminated
    with StateDB(paths.state_db) as db:
        (row,) = db.rows_in_state("backed_up")
        assert row.sha256 == hashlib.sha256(new).hexdigest()


def test_whole_file_mismatch_is_rehashed_and_retried(tmp_path: Path) -> None:
    paths, cfg, photos = _setup(tmp_path)
    data = mp4_bytes(2 * MIB + 1, seed=21)
    write(photos / "v.mp4", data)
    srv = FakeServer()
    srv.damage_whole_file_once = True
    s = run_backup(paths, cfg, transport=srv.transport())
    assert s.ok and s.files_uploaded == 1, s
    assert srv.blobs[1] == data
    assert srv.requests.count(("POST", "/api/v1/uploads/")) == 2


def test_revoked_token_stops_the_pass(tmp_path: Path) -> None:
    paths, cfg, photos = _setup(tmp_path)
    write(photos / "a.jpg", jpeg_bytes(1))
    srv = FakeServer()
    srv.token_revoked = True
    s = run_backup(paths, cfg, transport=srv.transport())
    assert s.stopped_reason and "camroll login" in s.stopped_reason
    assert s.headline.startswith("Stopped: The server no longer accepts this device's token")
    assert s.files_waiting == 1 and s.files_failed == 0


def test_too_large_skips_only_that_file(tmp_path: Path) -> None:
    # A server that does not publish its limit refuses the upload: the file is skipped with the
    # server's reason (not failed and retried: it cannot succeed until the limit changes).
    paths, cfg, photos = _setup(tmp_path)
    write(photos / "big.mp4", mp4_bytes(2 * MIB, seed=1))
    write(photos / "small.jpg", jpeg_bytes(3))
    srv = FakeServer()
    srv.max_file_size = MIB
    s = run_backup(paths, cfg, transport=srv.transport())
    assert s.stopped_reason is None
    assert s.files_failed == 0 and s.files_skipped == 1 and s.files_uploaded == 1
    assert s.ok and s.headline == "Everything is backed up"
    with StateDB(paths.state_db) as db:
        (row,) = db.rows_in_state("skipped")
    assert row.code == "too_large" and "larger than the server's limit" in row.reason
    assert row.fix.startswith("Ask the admin to raise it")


def test_a_type_the_server_refuses_is_skipped_not_retried(tmp_path: Path) -> None:
    paths, cfg, photos = _setup(tmp_path)
    write(photos / "clip.mp4", mp4_bytes(2 * MIB, seed=4))
    write(photos / "small.jpg", jpeg_bytes(5))
    srv = FakeServer()
    srv.refused_suffixes = (".mp4",)
    s = run_backup(paths, cfg, transport=srv.transport())
    assert s.files_failed == 0 and s.files_skipped == 1 and s.files_uploaded == 1
    with StateDB(paths.state_db) as db:
        (row,) = db.rows_in_state("skipped")
    assert row.code == "unsupported_type" and "--accept-other-files" in row.fix


def test_completed_upload_whose_answer_was_lost(tmp_path: Path) -> None:
    """Killed after the last byte but before recording it: the next run asks by hash."""
    paths, cfg, photos = _setup(tmp_path)
    data = mp4_bytes(2 * MIB, seed=8)
    write(photos / "v.mp4", data)
    srv = FakeServer()
    s = run_backup(paths, cfg, transport=srv.transport())
    assert s.files_uploaded == 1
    with StateDB(paths.state_db) as db:  # as if the final answer never arrived
        (row,) = db.rows_in_state("backed_up")
        db.set_state(row.id, "uploading", "hashed; waiting to upload")
        db.set_upload(row.id, "/api/v1/uploads/gone", 2 * MIB - 10)
    n = srv.bytes_received
    s = run_backup(paths, cfg, transport=srv.transport())
    assert s.ok and s.files_already_on_server == 1 and srv.bytes_received == n


def test_one_pass_at_a_time(tmp_path: Path) -> None:
    from camroll.agent.errors import AgentError
    from camroll.agent.service.lock import pass_lock

    paths, cfg, photos = _setup(tmp_path)
    write(photos / "a.jpg", jpeg_bytes(1))
    with pass_lock(paths.state_db), pytest.raises(AgentError, match=r"Another camroll backup is already running"):
        run_backup(paths, cfg, transport=FakeServer().transport())
    assert run_backup(paths, cfg, transport=FakeServer().transport()).files_uploaded == 1


def test_server_disk_full_stops_uploads(tmp_path: Path) -> None:
    paths, cfg, photos = _setup(tmp_path)
    for i in range(3):
        write(photos / f"{i}.mp4", mp4_bytes(2 * MIB, seed=i))
    srv = FakeServer()
    cfg.policy.upload_concurrency = 1
    real = srv._handle

    def full(req: object) -> object:
        import httpx

        assert isinstance(req, httpx.Request)
        if req.method == "PATCH":
            return srv._problem(507, "storage_full", "The server's disk is full", "free space on the server")
        return real(req)

    srv._handle = full  # type: ignore[method-assign,assignment]
    s = run_backup(paths, cfg, transport=srv.transport())
    assert s.stopped_reason and s.stopped_reason.startswith("the server's disk is full")
    # Not the files' fault: all three wait for space rather than one being parked as failed.
    assert s.files_failed == 0 and s.files_waiting == 3
    assert s.stopped_code == "server_full"
    assert srv.requests.count(("POST", "/api/v1/uploads/")) == 1


def _count_upload_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the bytes the upload reads from files (tus reads them with ``os.pread``)."""
    from camroll.agent.backup import tus

    read: list[int] = []
    real = os.pread

    def pread(fd: int, n: int, offset: int) -> bytes:
        data = real(fd, n, offset)
        read.append(len(data))
        return data

    monkeypatch.setattr(tus.os, "pread", pread)
    return read


def test_upload_reads_each_byte_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Checksums come from the hash pass (the file's digest for a one-chunk file, per-chunk digests
    # for larger ones), so sending is the only read of the file after hashing.
    paths, cfg, photos = _setup(tmp_path)
    small = jpeg_bytes(3)
    big = mp4_bytes(3 * MIB + 5, seed=6)
    write(photos / "a.jpg", small)
    write(photos / "v.mp4", big)
    read = _count_upload_reads(monkeypatch)
    srv = FakeServer()
    s = run_backup(paths, cfg, transport=srv.transport())
    assert s.ok and s.files_uploaded == 2
    assert sum(read) == len(small) + len(big)
    assert sorted(srv.blobs.values(), key=len) == [small, big]


def _uploader(srv: FakeServer, db: StateDB) -> Uploader:
    from camroll.agent.api import make_client
    from camroll.agent.backup.tus import TusClient

    client = make_client("http://camroll.test", "t", transport=srv.transport())
    return Uploader(TusClient(client), db, chunk_size=MIB, base_url="http://camroll.test",
                    check_present=lambda job: None)


def _job(path: Path, sha256: str, digests: tuple[bytes, ...] = ()) -> UploadJob:
    st = os.stat(path)
    return UploadJob(1, str(path), str(path.parent), sha256, (st.st_size, st.st_mtime_ns, st.st_ino),
                     None, digests, MIB if digests else 0)


def test_stale_chunk_digest_falls_back_to_reading_the_chunk(tmp_path: Path) -> None:
    # Bytes that no longer match the hash pass's chunk digest (changed with the same stat): the
    # server rejects the chunk, the uploader checksums what the file holds now and the whole-file
    # check decides.
    data = mp4_bytes(2 * MIB + 3, seed=8)
    p = tmp_path / "v.mp4"
    write(p, data)
    srv = FakeServer()
    stale = (b"\0" * 32, hashlib.sha256(data[MIB:2 * MIB]).digest(), hashlib.sha256(data[2 * MIB:]).digest())
    with StateDB(tmp_path / "state.db") as db:
        done = _uploader(srv, db).upload(_job(p, hashlib.sha256(data).hexdigest(), stale))
    assert srv.blobs[done.asset_id] == data


def test_stale_file_digest_of_a_one_request_file_means_hash_again(tmp_path: Path) -> None:
    data = jpeg_bytes(4)
    p = tmp_path / "a.jpg"
    write(p, data)
    srv = FakeServer()
    with StateDB(tmp_path / "state.db") as db, pytest.raises(ServerHashMismatch):
        _uploader(srv, db).upload(_job(p, hashlib.sha256(b"old bytes").hexdigest()))
    assert not srv.blobs


def test_unreadable_files_are_not_hidden_behind_an_all_clear(tmp_path: Path) -> None:
    paths, cfg, photos = _setup(tmp_path)
    write(photos / "a.jpg", jpeg_bytes(1))
    os.symlink(photos / "loop_b", photos / "loop_a")
    os.symlink(photos / "loop_a", photos / "loop_b")
    s = run_backup(paths, cfg, transport=FakeServer().transport())
    assert s.files_uploaded == 1
    assert s.headline == "Everything else is backed up, but 2 files could not be read (listed below)"
    assert {p.path for p in s.problems} >= {str(photos / "loop_a"), str(photos / "loop_b")}


def _battery(root: Path, capacity: int, status: str) -> None:
    bat = root / "sys" / "class" / "power_supply" / "BAT0"
    bat.mkdir(parents=True, exist_ok=True)
    (bat / "type").write_text("Battery\n")
    (bat / "capacity").write_text(f"{capacity}\n")
    (bat / "status").write_text(f"{status}\n")


def test_policy_pauses_on_low_battery_then_uploads_when_charging(tmp_path: Path) -> None:
    from camroll.agent.report.status import get_status
    from camroll.agent.settings.conditions import Probes, SubprocessRunner

    paths, cfg, photos = _setup(tmp_path)
    write(photos / "a.jpg", jpeg_bytes(1))
    write(photos / "b.png", png_bytes(2))
    root = tmp_path / "root"
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    _battery(root, 10, "Discharging")
    probes = Probes(root=root, runner=SubprocessRunner(path=str(empty_bin)))
    srv = FakeServer()

    s = run_backup(paths, cfg, transport=srv.transport(), probes=probes)
    reason = ("Paused: battery 10%, below your 20% minimum. Plug in or change min_battery "
              "(camroll settings set min_battery 10).")
    assert s.stopped_reason == reason and s.headline == reason and s.paused_by_policy == "battery_low"
    assert (s.files_scanned, s.files_waiting, s.files_uploaded, s.bytes_sent) == (2, 2, 0, 0)
    assert not s.ok
    assert srv.requests == [] and not srv.assets
    assert {st for st, _ in _states(paths).values()} == {"pending"}
    st = get_status(paths, cfg)
    assert st.headline == reason and st.paused_by_policy == "battery_low" and st.files["pending"] == 2

    _battery(root, 80, "Charging")
    s2 = run_backup(paths, cfg, transport=srv.transport(), probes=probes)
    assert s2.ok and s2.stopped_reason is None and s2.paused_by_policy is None
    assert (s2.files_uploaded, s2.files_waiting) == (2, 0) and s2.headline == "Everything is backed up"
    assert len(srv.assets) == 2
    st2 = get_status(paths, cfg)
    assert st2.paused_by_policy is None and st2.headline == "All 2 files backed up"


def test_policy_disabled_is_off_not_stopped(tmp_path: Path) -> None:
    from camroll.agent.settings.conditions import Probes, SubprocessRunner

    paths, cfg, photos = _setup(tmp_path)
    cfg.policy.enabled = False
    write(photos / "a.jpg", jpeg_bytes(1))
    srv = FakeServer()
    probes = Probes(root=tmp_path / "nothing", runner=SubprocessRunner(path=str(tmp_path / "nobin")))
    s = run_backup(paths, cfg, transport=srv.transport(), probes=probes)
    assert s.headline == "Off: backup is switched off (enabled = false). Run camroll settings set enabled true."
    assert srv.requests == [] and s.files_waiting == 1


@pytest.mark.parametrize(("room", "with_body"), [("none", 0), ("all", 3), ("one", 1)])
def test_a_body_travels_with_the_creation_only_when_the_server_said_it_fits(
        tmp_path: Path, room: str, with_body: int) -> None:
    """No room reported (an older server): every upload is created first, so a refusal comes before
    the body.  Room for everything: one request per small file.  Room for one: the rest are created
    first (and still uploaded, the server having the final word)."""
    paths, cfg, photos = _setup(tmp_path)
    files = [mp4_bytes(300_000, seed=i) for i in range(3)]
    for i, data in enumerate(files):
        write(photos / f"{i}.mp4", data)
    cfg.policy.upload_concurrency = 1
    srv = FakeServer()
    srv.disk_left = {"none": None, "all": 10**12, "one": 2 * MIB + 450_000}[room]
    s = run_backup(paths, cfg, transport=srv.transport())
    assert s.ok and s.files_uploaded == 3
    patches = sum(1 for m, _ in srv.requests if m == "PATCH")
    assert srv.requests.count(("POST", "/api/v1/uploads/")) == 3
    assert patches == 3 - with_body, srv.requests


@pytest.mark.parametrize("then", ["grows", "starts_over_as_zeros"])
def test_a_file_that_moved_since_the_scan_waits_and_is_not_judged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   then: str) -> None:
    """Between the scan and the read a copy goes on: the file is 'still being written' (it waits and
    goes on a later pass), whether it still reads as a photo or has only zeros where its header will be."""
    from camroll.agent.backup import hasher

    paths, cfg, photos = _setup(tmp_path)
    p = write(photos / "copying.jpg", jpeg_bytes(4))
    write(photos / "done.jpg", jpeg_bytes(5))
    real = hasher.hash_file

    def copy_goes_on(path: str, chunk_size: int = 0) -> hasher.HashResult:
        if path == str(p) and p.stat().st_size < 100_000:
            data = jpeg_bytes(4) + b"\x00" * 100_000 if then == "grows" else b"\x00" * 150_000
            p.write_bytes(data)
        return real(path, chunk_size)

    monkeypatch.setattr(hasher, "hash_file", copy_goes_on)
    srv = FakeServer()
    s = run_backup(paths, cfg, transport=srv.transport())
    states = _states(paths)
    assert states["done.jpg"][0] == "backed_up"
    assert states["copying.jpg"][0] == "waiting" and states["copying.jpg"][1].startswith("still being written"), states
    assert s.files_uploaded == 1 and s.files_skipped == 0
