"""The watch-mode building blocks: when a burst of changes has settled (fake clock and sizes), and the
real inotify watcher."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from support.media import jpeg_bytes

from camroll.agent.service.watch import ChangeBatcher, FolderWatcher, StatSig


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeFiles:
    def __init__(self) -> None:
        self.sigs: dict[str, StatSig | None] = {}

    def __call__(self, path: str) -> StatSig | None:
        return self.sigs.get(path)


def _batcher(**kw: float) -> tuple[ChangeBatcher, FakeClock, FakeFiles]:
    clock, files = FakeClock(), FakeFiles()
    return ChangeBatcher(clock=clock, stat=files, **kw), clock, files


def test_nothing_noted_is_never_ready() -> None:
    b, clock, _ = _batcher()
    clock.now += 100
    assert not b.ready()
    assert not b.pending


def test_ready_after_the_quiet_period_when_the_file_kept_its_size() -> None:
    b, clock, files = _batcher(quiet=2.0, stable=1.0)
    files.sigs["/p/a.jpg"] = (100, 1)
    b.note("/p/a.jpg")
    clock.now += 1.9
    assert not b.ready()
    clock.now += 0.2
    assert b.ready()
    assert b.take() == ["/p/a.jpg"]
    assert not b.pending and not b.ready()


def test_each_event_restarts_the_quiet_period() -> None:
    b, clock, files = _batcher(quiet=2.0)
    files.sigs["/p/a.jpg"] = (100, 1)
    b.note("/p/a.jpg")
    for size in (200, 300, 400):
        clock.now += 1.5
        files.sigs["/p/a.jpg"] = (size, size)
        b.note("/p/a.jpg")
        assert not b.ready()
    clock.now += 2.0
    assert b.ready()


def test_a_file_growing_without_events_is_waited_for_until_it_holds_still() -> None:
    b, clock, files = _batcher(quiet=2.0, stable=1.0)
    files.sigs["/p/v.mp4"] = (100, 1)
    b.note("/p/v.mp4")
    clock.now += 2.0
    files.sigs["/p/v.mp4"] = (5000, 2)  # still being copied; no event (network file system)
    assert not b.ready()
    clock.now += 0.5
    assert not b.ready()  # same size now, but not for a whole second yet
    clock.now += 0.6
    assert b.ready()


def test_a_file_still_growing_holds_back_only_itself() -> None:
    b, clock, files = _batcher(quiet=2.0, stable=1.0, max_wait=30.0)
    files.sigs["/p/a.jpg"] = (1, 1)
    b.note("/p/a.jpg")
    size = 0
    ready_at = None
    while clock.now < 1010.0:
        clock.now += 1.0
        size += 10
        files.sigs["/p/growing.mp4"] = (size, size)
        b.note("/p/growing.mp4")
        if ready_at is None and b.ready():
            ready_at = clock.now
            assert b.take() == ["/p/a.jpg"]
    assert ready_at == 1002.0  # quiet after its own event, whatever the other file does
    assert b.pending and not b.ready()  # the growing file stays noted


def test_a_steady_stream_is_taken_file_by_file() -> None:
    b, clock, files = _batcher(quiet=1.0, stable=1.0)
    landed: dict[str, float] = {}
    latency: dict[str, float] = {}
    for i in range(22):  # one new photo every 1.5 s; the loop looks every 0.5 s
        if i < 20:
            path = f"/p/IMG_{i}.jpg"
            files.sigs[path] = (100 + i, i)
            b.note(path)
            landed[path] = clock.now
        for _ in range(3):
            clock.now += 0.5
            if b.ready():
                for p in b.take():
                    latency[p] = clock.now - landed[p]
    # Each photo is ready a second after it landed, not once the stream stops.
    assert sorted(latency) == sorted(landed)
    assert max(latency.values()) <= 1.0


def test_a_file_that_never_settles_goes_after_max_wait() -> None:
    b, clock, files = _batcher(quiet=2.0, stable=1.0, max_wait=30.0)
    size = 0
    while clock.now < 1030.0:
        clock.now += 1.0
        size += 10
        files.sigs["/p/growing.mp4"] = (size, size)
        b.note("/p/growing.mp4")
        assert not b.ready()
    clock.now += 1.0
    assert b.ready()
    assert b.take() == ["/p/growing.mp4"] and not b.pending


def test_deleted_files_and_directories_need_no_stability_wait() -> None:
    b, clock, _ = _batcher(quiet=2.0, stable=1.0)
    b.note("/p/gone.jpg")  # stat says it does not exist
    b.note("/p/new-dir", is_directory=True)
    clock.now += 2.0
    assert b.ready()
    assert b.take() == ["/p/gone.jpg"]


def _wait_for(cond: threading.Event, timeout: float = 5.0) -> bool:
    return cond.wait(timeout)


def test_the_watcher_reports_new_files_but_not_reads(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    (photos / "2024").mkdir(parents=True)
    old = photos / "old.jpg"
    old.write_bytes(jpeg_bytes(1))
    seen: list[str] = []
    got = threading.Event()

    def on_change(path: str, is_dir: bool) -> None:
        seen.append(path)
        got.set()

    w = FolderWatcher(on_change)
    try:
        assert w.set_folders([str(photos)]) == []
        time.sleep(0.2)
        # The agent hashing a file opens and reads it: that must not look like a change.
        old.read_bytes()
        assert not _wait_for(got, 0.5), seen
        new = photos / "2024" / "new.jpg"
        new.write_bytes(jpeg_bytes(2))
        assert _wait_for(got)
        time.sleep(0.2)
        assert str(new) in seen
    finally:
        w.close()


def test_the_watcher_follows_the_folder_list_and_ignores_its_own_dirs(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    logs = a / ".camroll-logs"
    logs.mkdir()
    seen: list[str] = []
    w = FolderWatcher(lambda p, d: seen.append(p), ignore=[str(logs)])
    try:
        assert w.set_folders([str(a), str(tmp_path / "missing")]) == [str(tmp_path / "missing")]
        assert w.watched == [str(a)]
        (logs / "agent.log").write_text("line\n")
        (b / "x.jpg").write_bytes(jpeg_bytes(3))
        time.sleep(0.5)
        assert seen == []
        w.set_folders([str(b)])
        assert w.watched == [str(b)]
        (a / "y.jpg").write_bytes(jpeg_bytes(4))
        (b / "z.jpg").write_bytes(jpeg_bytes(5))
        deadline = time.monotonic() + 5
        while str(b / "z.jpg") not in seen and time.monotonic() < deadline:
            time.sleep(0.05)
        assert str(b / "z.jpg") in seen
        assert str(a / "y.jpg") not in seen
    finally:
        w.close()
