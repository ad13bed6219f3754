"""Per-file rules, the truncated-photo check, the bandwidth token bucket and the metered-data meter."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from support.media import jpeg_bytes, png_bytes, write

from camroll.agent.backup.filepolicy import (
    LEFT_OUT_CODES,
    ServerLimits,
    check_stat,
    check_type,
    fingerprint,
    not_media,
    suggest_size,
)
from camroll.agent.backup.hasher import hash_file
from camroll.agent.backup.throttle import TokenBucket
from camroll.agent.settings.conditions import Conditions
from camroll.agent.settings.conditions.network import NetworkKind
from camroll.agent.settings.config import PolicyConfig
from camroll.agent.settings.metered import MeteredMeter, cap_reason, is_metered
from camroll.agent.state.db import NewFile, StateDB

GB = 10**9
NO_LIMITS = ServerLimits()


def _check(size: int = 100, policy: PolicyConfig | None = None, limits: ServerLimits = NO_LIMITS,
           path: str = "/p/DCIM/IMG_1.JPG", **kw: float) -> object:
    return check_stat(path, "/p", size, 0, policy or PolicyConfig(), limits, now=1000.0, **kw)


def test_plain_file_passes() -> None:
    assert _check() is None


def test_over_users_max_file_size_says_the_figures_and_the_command() -> None:
    d = _check(2_100_000_000, PolicyConfig(max_file_size="2GB"))
    assert d is not None and d.state == "skipped" and d.code == "too_large"  # type: ignore[attr-defined]
    assert d.reason == "2.1 GB is over your 2.0 GB max_file_size"  # type: ignore[attr-defined]
    assert d.fix == "camroll settings set max_file_size 3GB"  # type: ignore[attr-defined]


def test_over_the_servers_limit() -> None:
    d = _check(3 * GB, limits=ServerLimits(max_file_size=2 * GB))
    assert d is not None and d.code == "too_large"  # type: ignore[attr-defined]
    assert "server's 2.0 GB upload limit" in d.reason  # type: ignore[attr-defined]
    assert "admin" in d.fix  # type: ignore[attr-defined]
    assert _check(GB, limits=ServerLimits(max_file_size=2 * GB)) is None


def test_exclude_and_include_globs_are_case_blind_and_match_name_or_path() -> None:
    d = _check(policy=PolicyConfig(exclude=["*/dcim/*"]))
    assert d is not None and d.code == "excluded" and "'*/dcim/*'" in d.reason  # type: ignore[attr-defined]
    assert _check(policy=PolicyConfig(exclude=["*.png"])) is None
    assert _check(policy=PolicyConfig(include=["*.jpg"])) is None
    d = _check(policy=PolicyConfig(include=["*.heic", "Camera/*"]))
    assert d is not None and d.code == "excluded" and "include" in d.reason  # type: ignore[attr-defined]
    # Relative to the folder: "DCIM/*" matches /p/DCIM/IMG_1.JPG.
    assert _check(policy=PolicyConfig(include=["DCIM/*"])) is None
    # The folder's own location never matches: /tmp/photos/a.jpg is not excluded by */tmp/*.
    assert check_stat("/tmp/photos/a.jpg", "/tmp/photos", 1, 0, PolicyConfig(exclude=["*/tmp/*"]), NO_LIMITS) is None
    d = check_stat("/tmp/photos/tmp/a.jpg", "/tmp/photos", 1, 0, PolicyConfig(exclude=["*/tmp/*"]), NO_LIMITS)
    assert d is not None and d.code == "excluded"
    # An absolute glob is matched against the full path.
    d = check_stat("/tmp/photos/a.jpg", "/tmp/photos", 1, 0, PolicyConfig(exclude=["/tmp/photos/*"]), NO_LIMITS)
    assert d is not None and d.code == "excluded"


def test_hidden_and_android_trash_files_are_left_out_by_choice(tmp_path: Path) -> None:
    for name, code in ((".hidden.jpg", "hidden"), ("._IMG_1.JPG", "hidden"),
                       (".trashed-1733000000-IMG_9.jpg", "trashed")):
        d = check_stat(f"/p/DCIM/{name}", "/p", 10, 0, PolicyConfig(), NO_LIMITS)
        assert d is not None and (d.state, d.code) == ("skipped", code) and d.fix, name
        assert code in LEFT_OUT_CODES
    assert check_stat("/p/DCIM/IMG.trashed.jpg", "/p", 10, 0, PolicyConfig(), NO_LIMITS) is None
    # The state DB's SQL list of left-out codes is the rules' list.
    with StateDB(tmp_path / "s.db") as db:
        db.apply_scan([NewFile(f"/p/{c}.jpg", "/p", 1, 1, i) for i, c in enumerate((*LEFT_OUT_CODES, "empty"))],
                      [], [], [])
        for row in db.work_items(0):
            db.set_skipped(row.id, "x", code=row.path.rsplit("/", 1)[-1][:-4])
        assert db.left_out_count() == len(LEFT_OUT_CODES)
        assert [r.code for r in db.problem_files(10, excluded=False)] == ["empty"]


def test_empty_file() -> None:
    d = _check(0)
    assert d is not None and d.code == "empty" and d.state == "skipped"  # type: ignore[attr-defined]


def test_recently_modified_file_waits_only_with_a_settle_window() -> None:
    # mtime 0 s and now=1000 s: 1000 s old.
    assert _check(settle_seconds=5) is None
    d = check_stat("/p/a.jpg", "/p", 10, int(999.5e9), PolicyConfig(), NO_LIMITS, now=1000.0, settle_seconds=2)
    assert d is not None and d.state == "waiting" and d.code == "still_being_written"
    assert "modified 0.5 s ago" in d.reason
    assert check_stat("/p/a.jpg", "/p", 10, int(999.5e9), PolicyConfig(), NO_LIMITS, now=1000.0) is None


def test_type_refused_by_the_server() -> None:
    limits = ServerLimits(mimes=frozenset({"image/jpeg"}))
    assert check_type("image/jpeg", limits) is None
    d = check_type("video/x-msvideo", limits)
    assert d is not None and d.code == "unsupported_type" and "video/x-msvideo" in d.reason
    assert check_type("video/x-msvideo", NO_LIMITS) is None  # unknown list: the local table decided
    assert not_media("not a photo or video camroll recognises (...)").code == "unsupported_type"
    assert not_media("empty file (0 bytes)").code == "empty"


def test_suggest_size_and_fingerprint() -> None:
    assert suggest_size(2_100_000_000) == "3GB"
    assert suggest_size(2 * GB) == "3GB"
    assert suggest_size(700_000_000) == "701MB"
    a = fingerprint(PolicyConfig(), NO_LIMITS)
    assert a == fingerprint(PolicyConfig(min_battery=50), NO_LIMITS)  # not a file rule
    assert a != fingerprint(PolicyConfig(max_file_size="1GB"), NO_LIMITS)
    assert a != fingerprint(PolicyConfig(), ServerLimits(max_file_size=5))
    assert ServerLimits.from_json(ServerLimits(7, frozenset({"a/b"})).to_json()) == ServerLimits(7, frozenset({"a/b"}))
    assert ServerLimits.from_json("not json") == NO_LIMITS


def test_truncated_jpeg_is_flagged_but_hashed(tmp_path: Path) -> None:
    good = jpeg_bytes(1)
    assert good.endswith(b"\xff\xd9")
    assert hash_file(str(write(tmp_path / "ok.jpg", good))).warning == ""
    assert hash_file(str(write(tmp_path / "padded.jpg", good + b"\x00" * 100))).warning == ""
    res = hash_file(str(write(tmp_path / "cut.jpg", good[: len(good) // 2])))
    assert res.media_type.mime == "image/jpeg" and res.sha256
    assert "JPEG ends without its end marker" in res.warning
    # A motion photo: the JPEG is followed by a video on purpose.
    motion = good + b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 50 + b"moov" + b"\x01" * 100
    assert hash_file(str(write(tmp_path / "motion.jpg", motion))).warning == ""
    png = png_bytes(1)
    assert hash_file(str(write(tmp_path / "a.png", png))).warning == ""
    assert "PNG" in hash_file(str(write(tmp_path / "b.png", png[:-20]))).warning


def test_truncated_jpeg_is_flagged_in_chunked_hashing(tmp_path: Path) -> None:
    data = jpeg_bytes(2, size=(400, 300))
    p = write(tmp_path / "cut.jpg", data[:-10])
    assert "end marker" in hash_file(str(p), chunk_size=4096).warning
    assert hash_file(str(write(tmp_path / "ok.jpg", data)), chunk_size=4096).warning == ""


class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


def test_token_bucket_holds_the_rate() -> None:
    clock = _Clock()
    bucket = TokenBucket(1_000_000, clock=clock, sleep=clock.sleep)
    for _ in range(40):
        bucket.take(50_000)  # 2 MB in all
    assert 1.9 <= clock.t <= 2.0
    # Idle time refills at most a tenth of a second's worth: no long burst afterwards.
    clock.t += 60
    start = clock.t
    for _ in range(20):
        bucket.take(50_000)
    assert clock.t - start >= 0.85
    with pytest.raises(ValueError):
        TokenBucket(0)


def _net(kind: NetworkKind, metered: bool | None) -> Conditions:
    from dataclasses import replace

    from camroll.agent.settings.conditions import Probes, SubprocessRunner

    blank = Probes(root=Path("/nonexistent-root"), runner=SubprocessRunner(path="/nonexistent-root")).all()
    return replace(blank, network=replace(blank.network, kind=kind, metered=metered))


def test_metered_meter_counts_per_day(tmp_path: Path) -> None:
    assert is_metered(_net("cellular", None)) and is_metered(_net("wifi", True))
    assert not is_metered(_net("wifi", False)) and not is_metered(_net("ethernet", None))
    day = dt.date(2026, 11, 24)
    with StateDB(tmp_path / "s.db") as db:
        policy = PolicyConfig(metered_daily_cap_mb=30)
        assert MeteredMeter.for_pass(db, policy, _net("wifi", False), day) is None
        assert MeteredMeter.for_pass(db, PolicyConfig(), _net("cellular", True), day) is None
        m = MeteredMeter.for_pass(db, policy, _net("cellular", True), day)
        assert m is not None and not m.reached
        m.add(29_999_999)
        assert not m.reached
        m.add(1)
        m.save()
        again = MeteredMeter(db, 30, day)
        assert again.reached and again.used == 30_000_000
        assert again.reason == cap_reason(30) == (
            "Paused: 30 MB of mobile data used today, your daily cap. Connect to Wi-Fi or raise "
            "metered_daily_cap_mb.")
        assert not MeteredMeter(db, 30, day + dt.timedelta(days=1)).reached  # a new day
