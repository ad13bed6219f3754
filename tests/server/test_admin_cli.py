"""``camroll admin`` and ``camroll serve`` argument handling, through the real CLI."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import sys
import time
from pathlib import Path

import pytest
from support.server import database_env, run_camroll


def test_user_add_and_list(tmp_path: Path) -> None:
    data = tmp_path / "data"
    pw = tmp_path / "pw"
    pw.write_text("secret one\n")
    out = run_camroll("admin", "user", "add", "ann", "--password-file", str(pw), "--quota", "15GB",
                      "--admin", "--data", str(data))
    assert "ann" in out.stdout
    run_camroll("admin", "user", "add", "bob", "--password-file", str(pw), env={"CAMROLL_DATA": str(data)})
    users = json.loads(run_camroll("admin", "user", "list", "--json", "--data", str(data)).stdout)
    assert [(u["username"], u["is_admin"], u["quota_bytes"], u["used_bytes"]) for u in users] == [
        ("ann", True, 15 * 10**9, 0), ("bob", False, None, 0)]
    table = run_camroll("admin", "user", "list", "--data", str(data)).stdout
    assert "ann" in table and "15.0 GB" in table and "unlimited" in table


def test_user_set_changes_quota_and_admin(tmp_path: Path) -> None:
    data, pw = tmp_path / "data", tmp_path / "pw"
    pw.write_text("x\n")
    run_camroll("admin", "user", "add", "ann", "--password-file", str(pw), "--quota", "1GB", "--data", str(data))
    out = run_camroll("admin", "user", "set", "ann", "--quota", "20GB", "--admin", "--data", str(data)).stdout
    assert "quota 20.0 GB" in out and "admin" in out
    run_camroll("admin", "user", "set", "ann", "--quota", "unlimited", "--no-admin", "--data", str(data))
    users = json.loads(run_camroll("admin", "user", "list", "--json", "--data", str(data)).stdout)
    assert [(u["quota_bytes"], u["is_admin"]) for u in users] == [(None, False)]
    for args, words in ((["nobody", "--quota", "1GB"], "no user named"), (["ann"], "nothing to change"),
                        (["ann", "--quota", "lots"], "--quota")):
        r = run_camroll("admin", "user", "set", *args, "--data", str(data), check=False)
        assert r.returncode != 0 and words in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_existing_name_is_refused(tmp_path: Path) -> None:
    data, pw = tmp_path / "data", tmp_path / "pw"
    pw.write_text("x\n")
    run_camroll("admin", "user", "add", "ann", "--password-file", str(pw), "--data", str(data))
    r = run_camroll("admin", "user", "add", "ann", "--password-file", str(pw), "--data", str(data), check=False)
    assert r.returncode != 0
    assert "already exists" in r.stderr
    assert "Traceback" not in r.stderr


def test_user_errors_are_sentences(tmp_path: Path) -> None:
    data, pw = tmp_path / "data", tmp_path / "pw"
    pw.write_text("x\n")
    empty = tmp_path / "empty"
    empty.write_text("")
    cases = [
        (["admin", "user", "add", "a", "--password-file", str(pw), "--quota", "lots"], "e.g. 15GB"),
        (["admin", "user", "add", "a", "--password-file", str(tmp_path / "missing")], "cannot read password file"),
        (["admin", "user", "add", "a", "--password-file", str(empty)], "password is empty"),
        (["admin", "user", "add", "a"], "--password-file"),  # no terminal to prompt on
        (["serve", "--listen", "nonsense"], "HOST:PORT"),
        (["serve", "--max-file-size", "huge"], "--max-file-size"),
    ]
    for args, needle in cases:
        r = run_camroll(*args, "--data", str(data), check=False, input="")
        assert r.returncode != 0, args
        assert needle in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr, args


def _run_in_pty(args: list[str], answers: list[str]) -> tuple[int, str]:
    """Run the CLI on a pseudo-terminal, answering each prompt once it has been shown."""
    env = {**os.environ, **database_env(Path(args[args.index("--data") + 1]))}
    pid, fd = pty.fork()
    if pid == 0:  # child
        os.execve(sys.executable, [sys.executable, "-m", "camroll", *args], env)
    out = b""
    seen = 0  # answers are sent only for prompts printed after the previous answer
    pending = list(answers)
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 1024)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
            if pending and out[seen:].rstrip().endswith(b":"):
                time.sleep(0.2)  # let getpass switch echo off before the answer arrives
                os.write(fd, pending.pop(0).encode() + b"\n")
                seen = len(out)
    finally:
        if time.monotonic() >= deadline:
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace")


def test_password_prompt_asks_twice(tmp_path: Path) -> None:
    data = tmp_path / "d"
    code, out = _run_in_pty(["admin", "user", "add", "ann", "--data", str(data)], ["s3cret", "s3cret"])
    assert code == 0, out
    assert "s3cret" not in out  # hidden input
    assert "Password:" in out and "Repeat for confirmation:" in out
    users = json.loads(run_camroll("admin", "user", "list", "--json", "--data", str(data)).stdout)
    assert [u["username"] for u in users] == ["ann"]


def test_password_prompt_needs_a_terminal(tmp_path: Path) -> None:
    r = run_camroll("admin", "user", "add", "a", "--data", str(tmp_path / "d"), check=False, input="x\nx\n")
    assert r.returncode != 0
    assert "no terminal" in r.stderr


def test_data_dir_that_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    r = run_camroll("admin", "user", "list", "--data", str(blocker / "sub"), check=False)
    assert r.returncode != 0
    assert "--data" in r.stderr and "Traceback" not in r.stderr


def test_serve_on_a_busy_port(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = run_camroll("serve", "--data", str(tmp_path / "d"), "--listen", f"127.0.0.1:{port}", check=False,
                        timeout=30)
    assert r.returncode != 0
    assert "cannot listen" in r.stderr and "--listen" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize(("name", "value", "said"), [
    ("CAMROLL_JOB_RETRY_DELAY", "abc", "is not a number"),
    ("CAMROLL_REPLICA_INTERVAL", "-1", "not a number from 0"),
    ("CAMROLL_SCRUB_SAMPLE", "nan", "not a number"),
    ("CAMROLL_JOB_WORKERS", "inf", "not a number from 0"),
    ("CAMROLL_TRASH_DAYS", "1e400", "not a number from 0"),
])
def test_serve_with_a_bad_setting_in_its_environment_names_it(tmp_path: Path, name: str, value: str,
                                                             said: str) -> None:
    r = run_camroll("serve", "--data", str(tmp_path / "d"), "--listen", "127.0.0.1:1", env={name: value},
                    check=False, timeout=60)
    assert r.returncode == 2, r.stderr
    assert f"{name}={value!r}" in r.stderr and said in r.stderr and "unset it" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize(("name", "value"), [("CAMROLL_DB_POOL_SIZE", "inf"), ("CAMROLL_DB_POOL_SIZE", "0"),
                                             ("CAMROLL_DB_POOL_TIMEOUT", "0.01"), ("CAMROLL_DB_LOCK_TIMEOUT", "x")])
def test_database_pool_numbers_are_bounded_like_the_others(monkeypatch: pytest.MonkeyPatch, name: str,
                                                           value: str) -> None:
    from camroll.server import db

    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=f"{name}={value!r} is not a number"):
        db.pool_options()
        db.postgres_options()


def test_serve_on_postgresql_checks_the_pool_numbers_before_it_connects(tmp_path: Path) -> None:
    env = {"CAMROLL_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none", "CAMROLL_DB_POOL_SIZE": "inf"}
    r = run_camroll("serve", "--data", str(tmp_path / "d"), "--listen", "127.0.0.1:1", env=env, check=False,
                    timeout=60)
    assert r.returncode == 2, r.stderr
    assert "CAMROLL_DB_POOL_SIZE='inf' is not a number from 1" in r.stderr and "Traceback" not in r.stderr, r.stderr
