from __future__ import annotations

import io

from rich.console import Console

from camroll.agent.cli.progress import ProgressRenderer, summary_text
from camroll.agent.events import (
    BytesSent,
    FileFinished,
    PassFinished,
    Problem,
    ScanFinished,
    Summary,
)


def test_renderer_counts_files_and_bytes() -> None:
    out = io.StringIO()
    r = ProgressRenderer(Console(file=out, force_terminal=True, width=120))
    r(ScanFinished(files_seen=3, new=3, changed=0, vanished=0, work_files=2, work_bytes=3_000_000))
    r(BytesSent("/a", 1_000_000))
    r(FileFinished("/a", 1_000_000, "uploaded", "ok"))
    r(FileFinished("/b", 2_000_000, "already_on_server", "ok", unreported_bytes=2_000_000))
    assert r.task is not None
    task = r.progress.tasks[0]
    assert task.completed == 3_000_000 and task.total == 3_000_000
    assert r.files_done == 2
    r(PassFinished(Summary()))
    assert "Backing up" in out.getvalue()


def test_nothing_to_do_draws_nothing() -> None:
    out = io.StringIO()
    r = ProgressRenderer(Console(file=out, force_terminal=True))
    r(ScanFinished(10, 0, 0, 0, 0, 0))
    r(PassFinished(Summary()))
    assert out.getvalue() == ""


def test_summary_text() -> None:
    s = Summary(files_scanned=5, files_uploaded=2, files_failed=1, bytes_sent=5_000_000, duration_s=2.0,
                headline="1 file failed: boom", problems=[Problem("/x.jpg", "boom")],
                skipped=[Problem("/n.txt", "not a photo")], files_parked=2)
    text = summary_text(s)
    assert text.splitlines()[0] == "1 file failed: boom"
    assert "2.5 MB/s" in text and "/x.jpg: boom" in text and "skipped /n.txt" in text
    assert "--retry-failed" in text
    assert s.to_json()["mb_per_s"] == 2.5 and s.to_json()["ok"] is False
