"""``camroll up`` end to end: a real server child process, the real agent, real photos."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from support.blobs import stored_keys
from support.env import free_port
from support.server import ServerProcess, camroll_cmd, run_camroll


def _up(root: Path, *args: str) -> dict[str, object]:
    proc = run_camroll("up", *args, "--data", str(root), "--listen", f"127.0.0.1:{free_port()}", "--json",
                       timeout=180)
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def test_up_example_backs_up_then_sends_nothing(tmp_path: Path) -> None:
    root = tmp_path / "camroll"
    first = _up(root, "--example")
    assert first["ok"] is True
    assert first["files_uploaded"] == 25
    keys = stored_keys(root / "server")
    assert len(keys) == 25
    creds = root / "credentials"
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600
    # The library holds exactly the bytes of the example photos, named by their SHA-256.
    import hashlib

    photos = sorted(p for p in (root / "example-photos").rglob("*") if p.is_file())
    assert {hashlib.sha256(p.read_bytes()).hexdigest() for p in photos} == keys

    # Again, on another port: same user and device, nothing re-sent.
    second = _up(root, "--example")
    assert second["ok"] is True
    assert second["files_uploaded"] == 0
    assert second["bytes_sent"] == 0


def test_up_adds_a_new_folder_and_keeps_the_old(tmp_path: Path) -> None:
    from PIL import Image

    root = tmp_path / "camroll"
    pics = tmp_path / "pics"
    pics.mkdir()
    Image.new("RGB", (64, 48), (10, 200, 30)).save(pics / "a.jpg", quality=90)
    assert _up(root, str(pics))["files_uploaded"] == 1
    more = tmp_path / "more"
    more.mkdir()
    Image.new("RGB", (64, 48), (200, 10, 30)).save(more / "b.png")
    out = _up(root, str(more))
    assert out["files_uploaded"] == 1
    assert out["files_scanned"] == 2


def test_up_without_a_folder_says_what_to_do(tmp_path: Path) -> None:
    proc = run_camroll("up", "--data", str(tmp_path / "x"), check=False)
    assert proc.returncode == 1
    assert "camroll up --example" in proc.stderr
    assert "Traceback" not in proc.stderr
    missing = run_camroll("up", str(tmp_path / "nope"), "--data", str(tmp_path / "x"), check=False)
    assert missing.returncode == 1
    assert "does not exist" in missing.stderr


# --- one library, one server (issue 8, defect 16) -------------------------------------------------------------
def _env(tmp_path: Path) -> dict[str, str]:
    """The user's own platform dirs, per test: where the agent commands look when CAMROLL_HOME is unset.
    (COLUMNS: Rich wraps messages on stderr at 80 columns, which could split a pid from its word.)"""
    dirs = {var: str(tmp_path / "xdg" / var.lower()) for var in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME")}
    return {**dirs, "COLUMNS": "400"}


def _until(pred: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    return pred()


def _photo(path: Path, colour: tuple[int, int, int]) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 48), colour).save(path, quality=90)
    return path


def _on_server(url: str, token: str, path: Path) -> bool:
    import hashlib

    import httpx

    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    try:
        r = httpx.post(f"{url}/api/v1/assets/check", json={"items": [{"sha256": sha}]},
                       headers={"Authorization": f"Bearer {token}"}, timeout=5)
    except httpx.TransportError:
        return False
    return r.status_code == 200 and sha in r.json()["present"]


def _stop(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    proc.send_signal(signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=40)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return proc.returncode, out, err


def test_second_up_uses_the_watching_runs_server_and_nothing_else_starts(tmp_path: Path) -> None:
    from camroll.agent.settings.config import load_config

    root, env = tmp_path / "camroll", _env(tmp_path)
    first, second = tmp_path / "first", tmp_path / "second"
    _photo(first / "a.jpg", (10, 200, 30))
    _photo(second / "b.jpg", (200, 10, 30))
    port = free_port()
    watcher = subprocess.Popen(camroll_cmd("up", str(first), "--watch", "--data", str(root), "--listen",
                                           f"127.0.0.1:{port}"),
                               env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    config = root / "agent" / "config.toml"
    try:
        assert _until(lambda: config.exists() and load_config(config).server is not None, 60)
        token = load_config(config).server.token  # type: ignore[union-attr]
        assert _until(lambda: _on_server(url, token, first / "a.jpg"), 60)

        # A one-shot `up` with other folders (and no --listen) backs up through the running server ...
        proc = run_camroll("up", str(second), "--data", str(root), "--json", env=env, timeout=120)
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        assert out["server_url"] == url
        assert out["files_uploaded"] == 1
        assert f"process {watcher.pid}" in proc.stderr
        assert _on_server(url, token, second / "b.jpg")
        # ... and leaves the watcher's server where it was, in the config as well.
        cfg = load_config(config)
        assert cfg.server is not None and cfg.server.url == url
        assert httpx.get(f"{url}/api/v1/server", timeout=5).status_code == 200

        # The watcher still backs up, now the second folder too.
        time.sleep(1.0)
        later = _photo(second / "later.jpg", (30, 30, 220))
        assert _until(lambda: _on_server(url, token, later), 30), "the watcher stopped backing up"

        # A second watcher, a second server and a second agent loop on the same library are refused.
        again = run_camroll("up", str(first), "--watch", "--data", str(root), env=env, check=False, timeout=60)
        assert again.returncode == 1, again.stderr
        assert "already running" in again.stderr and str(watcher.pid) in again.stderr and url in again.stderr
        served = run_camroll("serve", "--data", str(root), "--listen", f"127.0.0.1:{free_port()}",
                             check=False, timeout=60)
        assert served.returncode == 2, served.stderr
        assert "already running" in served.stderr and url in served.stderr
        server_pid = json.loads((root / "server" / "server.lock").read_text())["pid"]
        assert f"process {server_pid}" in served.stderr
        agent = run_camroll("agent", env={**env, "CAMROLL_HOME": str(root / "agent")}, check=False, timeout=60)
        assert agent.returncode == 1, agent.stderr
        assert "already running" in agent.stderr and f"process {watcher.pid}" in agent.stderr
        assert "Traceback" not in again.stderr + served.stderr + agent.stderr
        # While it watches, doctor (with no variable set) finds the running server.
        doctor = json.loads(run_camroll("doctor", "--json", env=env, check=False).stdout)
        assert next(c for c in doctor["checks"] if c["name"] == "server")["status"] == "pass", doctor
    finally:
        code, _, err = _stop(watcher)
    assert code == 0, err
    assert "Traceback" not in err


def test_up_keeps_its_port_between_runs(tmp_path: Path) -> None:
    root, pics = tmp_path / "camroll", tmp_path / "pics"
    _photo(pics / "a.jpg", (1, 2, 3))
    port = free_port()
    first = run_camroll("up", str(pics), "--data", str(root), "--listen", f"127.0.0.1:{port}", "--json",
                        env=_env(tmp_path), timeout=120)
    assert json.loads(first.stdout.strip().splitlines()[-1])["server_url"] == f"http://127.0.0.1:{port}"
    again = run_camroll("up", "--data", str(root), "--json", env=_env(tmp_path), timeout=120)
    assert json.loads(again.stdout.strip().splitlines()[-1])["server_url"] == f"http://127.0.0.1:{port}"


def test_serve_refuses_a_served_library_and_takes_it_over_after_a_crash(tmp_path: Path) -> None:
    srv = ServerProcess(data=tmp_path / "server-data")
    srv.start()
    try:
        other = run_camroll("serve", "--data", str(srv.data), "--listen", f"127.0.0.1:{free_port()}",
                            check=False, timeout=60)
        assert other.returncode == 2
        assert srv.proc is not None and f"process {srv.proc.pid}" in other.stderr
        assert srv.url in other.stderr and "Traceback" not in other.stderr
        srv.kill()  # kill -9: the lock file stays behind, but no process holds it
        assert (srv.data / "server.lock").exists()
        srv.start()
    finally:
        srv.stop()


# --- --data means the same folder everywhere (defect 18) ------------------------------------------------------
def test_admin_and_serve_find_the_library_of_up(tmp_path: Path) -> None:
    root = tmp_path / "camroll"
    assert _up(root, "--example")["files_uploaded"] == 25
    jobs = json.loads(run_camroll("admin", "jobs", "--json", "--data", str(root)).stdout)
    assert jobs["done"] + jobs["waiting"] + jobs["failed"] == 25
    users = json.loads(run_camroll("admin", "user", "list", "--json", "--data", str(root)).stdout)
    assert [u["used_bytes"] > 0 for u in users] == [True]
    assert not (root / "camroll.db").exists(), "a second, empty library was created"
    # `camroll serve --data` on the same folder serves the same library.
    srv = ServerProcess(data=root)
    srv.start()
    try:
        creds = json.loads((root / "credentials").read_text())
        session = srv.login(creds["username"], creds["password"])
        r = httpx.get(f"{srv.url}/api/v1/timeline", headers={"Authorization": f"Bearer {session}"}, timeout=10)
        assert r.status_code == 200, r.text
    finally:
        srv.stop()
    assert not (root / "camroll.db").exists()


def test_no_command_starts_a_library_where_one_was_meant(tmp_path: Path) -> None:
    typo = tmp_path / "camrol"
    for args in (["admin", "jobs"], ["admin", "user", "list"], ["admin", "notify", "list"], ["worker"]):
        r = run_camroll(*args, "--data", str(typo), check=False, timeout=60)
        assert r.returncode == 2, (args, r.stderr)
        assert "no camroll library" in r.stderr and "camroll serve --data" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
    assert not typo.exists()
    # A folder holding other things is never made into a library, by serve or by admin user add.
    busy = tmp_path / "Pictures"
    _photo(busy / "a.jpg", (9, 9, 9))
    pw = tmp_path / "pw"
    pw.write_text("secret\n")
    for args in (["serve", "--listen", f"127.0.0.1:{free_port()}"], ["admin", "user", "add", "ann",
                                                                       "--password-file", str(pw)]):
        r = run_camroll(*args, "--data", str(busy), check=False, timeout=60)
        assert r.returncode == 2, (args, r.stderr)
        assert "not empty" in r.stderr and "Traceback" not in r.stderr
    assert sorted(p.name for p in busy.iterdir()) == ["a.jpg"]
    # camroll up does not take over a server's own library either.
    lib = tmp_path / "lib"
    run_camroll("admin", "user", "add", "ann", "--password-file", str(pw), "--data", str(lib))
    r = run_camroll("up", "--example", "--data", str(lib), env=_env(tmp_path), check=False, timeout=60)
    assert r.returncode == 1 and "camroll serve --data" in r.stderr, r.stderr
    assert not (lib / "server").exists()


def test_serve_says_it_starts_a_new_library(tmp_path: Path) -> None:
    data = tmp_path / "new"
    srv = ServerProcess(data=data)
    srv.start()
    srv.stop()
    log = (tmp_path / "new-server.log").read_text()
    assert f"No camroll library in {data} yet: starting a new one." in log
    assert (data / "camroll.db").exists()


# --- status, problems, why and doctor after `up` (defect 19) -----------------------------------------------------
def test_agent_commands_work_after_up_with_no_variables(tmp_path: Path) -> None:
    root, pics, env = tmp_path / "my camroll", tmp_path / "pics", _env(tmp_path)
    photo = _photo(pics / "a.jpg", (5, 90, 200))
    (pics / "notes.txt").write_text("not a photo")
    run_camroll("up", str(pics), "--data", str(root), "--listen", f"127.0.0.1:{free_port()}", env=env, timeout=120)

    status = json.loads(run_camroll("status", "--json", env=env).stdout)
    assert status["files"]["backed_up"] == 1, status
    problems = run_camroll("problems", "--json", env=env)
    assert "notes.txt" in problems.stdout
    why = json.loads(run_camroll("why", str(photo), "--json", env=env).stdout)
    assert why["state"].replace(" ", "_") == "backed_up", why

    # Between `up` runs the server is down: normal for an all-in-one install, and the fix starts the same library.
    doctor = run_camroll("doctor", "--json", env=env, check=False)
    assert doctor.returncode == 0, doctor.stdout
    server = next(c for c in json.loads(doctor.stdout)["checks"] if c["name"] == "server")
    assert server["status"] == "warn"
    assert "camroll up" in server["message"]
    fix = server["fix"]
    assert "--watch" in fix
    command = shlex.split(fix.removeprefix("run ").split(" for a backup")[0])
    assert command[:2] == ["camroll", "up"]
    again = run_camroll(*command[1:], "--json", env=env, timeout=120)
    out = json.loads(again.stdout.strip().splitlines()[-1])
    assert out["files_uploaded"] == 0 and out["files_already_on_server"] + out["files_scanned"] >= 1
    assert out["library"] == str(root.resolve() / "server")


def test_agent_commands_keep_this_devices_own_agent(tmp_path: Path) -> None:
    # A device already logged in with `camroll login` keeps its own agent: `up` does not re-point status.
    env = _env(tmp_path)
    own = Path(env["XDG_CONFIG_HOME"]) / "camroll" / "config.toml"
    own.parent.mkdir(parents=True)
    own.write_text("folders = []\n")
    pics = tmp_path / "pics"
    _photo(pics / "a.jpg", (1, 1, 1))
    proc = run_camroll("up", str(pics), "--data", str(tmp_path / "c"), "--listen", f"127.0.0.1:{free_port()}",
                       env=env, timeout=120)
    assert "CAMROLL_HOME=" in proc.stderr
    assert not (own.parent / "allinone.json").exists()


def test_up_waits_for_a_running_up_and_for_a_running_pass(tmp_path: Path) -> None:
    import threading

    from camroll import uplock
    from camroll.agent.service.lock import pass_lock

    root, pics = tmp_path / "camroll", tmp_path / "pics"
    _photo(pics / "a.jpg", (40, 50, 60))
    root.mkdir()
    up_held = contextlib.ExitStack()
    pass_held = contextlib.ExitStack()
    me = os.getpid()
    # This test process stands for a one-shot `camroll up`, which stops its server when done ...
    up_held.enter_context(uplock.hold(root / "up.lock", watch=False))
    # ... and holds the pass lock as a `camroll backup` (or a watcher's pass) would.
    pass_held.enter_context(pass_lock(root / "agent" / "state.db"))
    proc = subprocess.Popen(camroll_cmd("up", str(pics), "--data", str(root), "--listen",
                                        f"127.0.0.1:{free_port()}", "--json"),
                            env={**os.environ, **_env(tmp_path)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    err_lines: list[str] = []
    assert proc.stderr is not None
    reader = threading.Thread(target=lambda: err_lines.extend(proc.stderr or []), daemon=True)
    reader.start()

    def said(text: str) -> bool:
        return any(text in line for line in err_lines)

    try:
        assert _until(lambda: said(f"Waiting for the camroll up in process {me}"), 60), err_lines
        time.sleep(1)
        assert not (root / "server").exists(), "started a server while another camroll up ran"
        up_held.close()
        assert _until(lambda: said(f"Waiting for the backup pass running in process {me}"), 60), err_lines
        assert proc.poll() is None
        pass_held.close()
        out = proc.stdout.read() if proc.stdout else ""
        proc.wait(timeout=120)
    finally:
        up_held.close()
        pass_held.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=10)
    assert proc.returncode == 0, err_lines
    assert json.loads(out.strip().splitlines()[-1])["files_uploaded"] == 1
