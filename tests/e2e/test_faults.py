"""Fault tests through a real TCP proxy: kill -9 of the agent, server restart, damaged chunk, and a
file changed during its upload.  The proxy's byte count proves what was not sent twice."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from support.media import write_mp4

from .helpers import Agent, sha_of_file
from .proxy import Proxy

MIB = 1024 * 1024
CHUNK_MIB = 4
SLACK = 512 * 1024  # HTTP headers, checks and HEADs


def _through(agent: Agent, proxy: Proxy, *, rate: float | None) -> None:
    agent.set_server_url(proxy.url)
    agent.set_policy(chunk_size_mib=CHUNK_MIB, upload_concurrency=1)
    proxy.rate = rate


def test_kill_9_mid_file_then_resume(agent: Agent, photos: Path, proxy: Proxy) -> None:
    size = 24 * MIB
    f = write_mp4(photos / "long.mp4", size, seed=11)
    _through(agent, proxy, rate=12 * MIB)
    p = agent.popen("backup")
    proxy.wait_for_bytes_up(11 * MIB)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    first = proxy.bytes_up
    st = agent.status()
    assert st["files"]["uploading"] == 1  # remembered, with its upload URL
    proxy.rate = None
    s = agent.backup()
    second = proxy.bytes_up - first
    assert s["ok"] and s["files_uploaded"] == 1, s
    assert agent.server_has(sha_of_file(f)) is not None
    # Only what the server did not have went again: at most one chunk more than the file.
    assert first + second <= size + CHUNK_MIB * MIB + SLACK, (first, second)
    assert second <= size - first + CHUNK_MIB * MIB + SLACK


def test_server_restart_mid_upload_then_resume(agent: Agent, photos: Path, proxy: Proxy) -> None:
    size = 24 * MIB
    f = write_mp4(photos / "long.mp4", size, seed=12)
    _through(agent, proxy, rate=12 * MIB)
    p = agent.popen("backup", "--json")
    proxy.wait_for_bytes_up(10 * MIB)
    agent.server.kill()
    proxy.cut()
    agent.server.start()
    out, err = p.communicate(timeout=120)
    if p.returncode != 0:
        # The agent gave up before the server was back: the next run resumes.
        assert p.returncode == 2 and "resumes" in err, (out, err)
        proxy.rate = None
        assert agent.backup()["ok"]
    assert agent.server_has(sha_of_file(f)) is not None
    assert agent.status()["headline"] == "All 1 file backed up"
    assert proxy.bytes_up <= size + 2 * CHUNK_MIB * MIB + SLACK, proxy.bytes_up


def test_corrupted_chunk_is_rejected_and_resent(agent: Agent, photos: Path, proxy: Proxy) -> None:
    size = 10 * MIB
    f = write_mp4(photos / "v.mp4", size, seed=13)
    _through(agent, proxy, rate=None)
    proxy.arm_corruption()
    s = agent.backup()
    assert proxy.corrupted == 1
    assert s["ok"] and s["files_uploaded"] == 1, s
    # PATCH bodies carry no chunk checksum until the server finds damage (so a cut keeps what
    # arrived): the whole-file hash caught it, nothing was stored, and the file went once more.
    assert s["bytes_sent"] == 2 * size, s
    assert agent.server_has(sha_of_file(f)) is not None


def test_file_changed_during_upload_is_redone(agent: Agent, photos: Path, proxy: Proxy) -> None:
    size = 16 * MIB
    f = write_mp4(photos / "v.mp4", size, seed=14)
    old_sha = sha_of_file(f)
    _through(agent, proxy, rate=16 * MIB)
    p = agent.popen("backup", "--json")
    proxy.wait_for_bytes_up(5 * MIB)
    time.sleep(0.01)
    with open(f, "r+b") as fh:  # edited in place, same size
        fh.seek(size // 2)
        fh.write(b"edited!")
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, (out, err)
    new_sha = sha_of_file(f)
    assert agent.server_has(new_sha) is not None
    assert agent.server_has(old_sha) is None
    assert agent.status()["files"]["backed_up"] == 1


def test_expired_upload_starts_again(agent: Agent, photos: Path, proxy: Proxy) -> None:
    """HEAD of a stored upload answers 410 after expiry: the agent starts a fresh upload."""
    agent.server.extra_args = ("--upload-expiry", "0.0005")  # about 2 s
    agent.server.restart()
    size = 12 * MIB
    f = write_mp4(photos / "v.mp4", size, seed=15)
    _through(agent, proxy, rate=8 * MIB)
    p = agent.popen("backup")
    proxy.wait_for_bytes_up(5 * MIB)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert agent.status()["files"]["uploading"] == 1
    time.sleep(4)
    proxy.rate = None
    s = agent.backup()
    assert s["ok"] and s["files_uploaded"] == 1, s
    assert s["bytes_sent"] == size  # all of it again: the server had dropped the partial upload
    assert agent.server_has(sha_of_file(f)) is not None


def test_file_too_large_skips_only_that_file(agent: Agent, photos: Path) -> None:
    agent.server.extra_args = ("--max-file-size", "1MB")
    agent.server.restart()
    big = write_mp4(photos / "big.mp4", 2 * MIB, seed=16)
    small = write_mp4(photos / "small.mp4", 100_000, seed=17)
    r = agent.run("backup", "--json", check=False)
    assert r.returncode == 0
    import json

    s = json.loads(r.stdout)
    # The server publishes its limit, so the file is skipped before any byte is sent, with the fix.
    assert s["files_uploaded"] == 1 and s["files_skipped"] == 1 and s["stopped_reason"] is None
    (skipped,) = s["skipped"]
    assert skipped["path"].endswith("big.mp4") and "over the server's 1.0 MB upload limit" in skipped["reason"]
    assert "--max-file-size" in skipped["reason"]
    assert s["bytes_sent"] < MIB
    assert agent.server_has(sha_of_file(small)) is not None
    story = json.loads(agent.run("why", str(big), "--json").stdout)
    assert story["state"] == "skipped" and story["code"] == "too_large"
