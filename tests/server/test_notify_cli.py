"""``camroll admin notify`` through the real CLI, sending to a real loopback receiver."""

from __future__ import annotations

import json
from pathlib import Path

from support.env import free_port
from support.server import run_camroll

from .receiver import LOOPBACK_ALERTS, Receiver, receiver

__all__ = ["receiver"]


def test_notify_add_list_test_remove(tmp_path: Path, receiver: Receiver) -> None:
    data = tmp_path / "data"
    pw = tmp_path / "pw"
    pw.write_text("pw\n")
    run_camroll("admin", "user", "add", "ann", "--password-file", str(pw), "--data", str(data))
    good = f"json://ann:s3cret@127.0.0.1:{receiver.port}/cli-ann"
    dead = f"json://127.0.0.1:{free_port()}/nobody-listens"
    out = run_camroll("admin", "notify", "add", "ann", good, "--data", str(data), env=LOOPBACK_ALERTS).stdout
    assert "Added notification URL 1 for ann" in out and "s3cret" not in out
    run_camroll("admin", "notify", "add", "ann", dead, "--data", str(data), env=LOOPBACK_ALERTS)

    listed = json.loads(run_camroll("admin", "notify", "list", "ann", "--json", "--data", str(data)).stdout)
    assert [(t["id"], t["user"], t["url"]) for t in listed] == [
        (1, "ann", f"json://ann:****@127.0.0.1:{receiver.port}/cli-ann"),
        (2, "ann", dead)]
    table = run_camroll("admin", "notify", "list", "--data", str(data)).stdout
    assert "cli-ann" in table and "s3cret" not in table

    r = run_camroll("admin", "notify", "test", "ann", "--data", str(data), check=False, env=LOOPBACK_ALERTS)
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("OK    1  json://ann:****@")
    assert lines[1] == f"FAIL  2  {dead}: the service refused the message or could not be reached"
    got = receiver.at("cli-ann")
    assert len(got) == 1 and got[0]["title"] == "camroll: test message"
    assert receiver.messages[-1].authorization is not None  # apprise sent the URL's credentials
    listed = json.loads(run_camroll("admin", "notify", "list", "--json", "--data", str(data)).stdout)
    assert listed[0]["last_sent_at"] and listed[0]["last_error"] is None
    assert listed[1]["last_error"] == "the service refused the message or could not be reached"

    run_camroll("admin", "notify", "remove", "ann", "2", "--data", str(data))
    r = run_camroll("admin", "notify", "test", "ann", "--json", "--data", str(data), env=LOOPBACK_ALERTS)
    assert [x["ok"] for x in json.loads(r.stdout)] == [True]
    assert len(receiver.at("cli-ann")) == 2
    run_camroll("admin", "notify", "remove", "ann", good, "--data", str(data))
    out = run_camroll("admin", "notify", "list", "--data", str(data)).stdout
    assert "No notification URLs" in out


def test_notify_errors_are_sentences(tmp_path: Path) -> None:
    data = tmp_path / "data"
    pw = tmp_path / "pw"
    pw.write_text("pw\n")
    run_camroll("admin", "user", "add", "ann", "--password-file", str(pw), "--data", str(data))
    cases = [
        (["add", "ann", "not a url"], "not a notification URL"),
        (["add", "ann", "nosuchservice://x/y"], "does not send alerts to nosuchservice:// URLs"),
        (["add", "ann", "json://"], "apprise does not understand"),
        (["add", "ann", "jsons://127.0.0.1/x"], "points at a loopback address"),
        (["add", "zed", "json://127.0.0.1:1/x"], "no user named 'zed'"),
        (["remove", "ann", "7"], "has no notification URL '7'"),
        (["test", "ann"], "has no notification URLs"),
    ]
    for args, needle in cases:
        r = run_camroll("admin", "notify", *args, "--data", str(data), check=False,
                        env={"CAMROLL_NOTIFY_SCHEMES": "default,json"})
        assert r.returncode != 0, args
        assert needle in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr
    run_camroll("admin", "notify", "add", "ann", "json://127.0.0.1:1/x", "--data", str(data), env=LOOPBACK_ALERTS)
    r = run_camroll("admin", "notify", "add", "ann", "json://127.0.0.1:1/x", "--data", str(data), check=False,
                    env=LOOPBACK_ALERTS)
    assert r.returncode != 0 and "already added" in r.stderr
