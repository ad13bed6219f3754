"""Shared helpers for camroll's benchmark scripts: process launching with peak-RSS measurement,
free ports, corpus statistics and a throw-away camroll server + agent rig.

Peak RSS is measured two ways for every measured process:

* ``psutil``: a thread samples the process and all its descendants every ``interval`` seconds and
  keeps the largest single-process RSS and the largest sum over the tree;
* ``wait4``: the kernel's ``ru_maxrss`` for the child when it is reaped (exact, catches short
  peaks between samples; includes descendants the child itself reaped).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import psutil

MB = 1_000_000
MiB = 1024 * 1024


# --------------------------------------------------------------------------------------------
# Process measurement


class RssMonitor:
    """Samples the RSS of a process tree in a background thread."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_single = 0
        self.peak_tree = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"rss-{pid}", daemon=True)

    def start(self) -> RssMonitor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def sample(self) -> None:
        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return
        total = 0
        for p in procs:
            try:
                rss = p.memory_info().rss
            except psutil.Error:
                continue
            total += rss
            self.peak_single = max(self.peak_single, rss)
        self.peak_tree = max(self.peak_tree, total)
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)


@dataclass
class RunResult:
    argv: list[str]
    returncode: int
    seconds: float
    maxrss_bytes: int  # wait4 ru_maxrss of the child
    peak_rss_bytes: int  # psutil: largest single process of the tree
    peak_tree_rss_bytes: int  # psutil: largest sum over the tree
    cpu_seconds: float = 0.0  # user + system CPU of the child and its reaped descendants
    stdout: str = ""
    stderr: str = ""

    def summary(self) -> dict[str, Any]:
        d = asdict(self)
        d["stdout"] = _tail(self.stdout)
        d["stderr"] = _tail(self.stderr)
        return d


def _tail(text: str, limit: int = 4000) -> str:
    return text if len(text) <= limit else "...\n" + text[-limit:]


def _wait4(pid: int) -> tuple[int, int, float]:
    """Reap ``pid``; returns (returncode, ru_maxrss in bytes, user + system CPU seconds)."""
    _, status, usage = os.wait4(pid, 0)
    return os.waitstatus_to_exitcode(status), usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime


def run_measured(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    interval: float = 0.05,
    check: bool = True,
    log: Path | None = None,
) -> RunResult:
    """Runs a command to completion, timing it and measuring its peak RSS.  Output is captured to
    temporary files (not pipes) so a chatty tool is never slowed down by a full pipe."""
    out_path = log.with_suffix(".out") if log else None
    err_path = log.with_suffix(".err") if log else None
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(_outfile(out_path))
        err = stack.enter_context(_outfile(err_path))
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            list(argv),
            env=dict(env) if env else None,
            cwd=cwd,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
        )
        mon = RssMonitor(proc.pid, interval).start()
        try:
            rc, maxrss, cpu = _wait4(proc.pid)
        finally:
            mon.stop()
        seconds = time.perf_counter() - t0
        proc.returncode = rc
        out.seek(0)
        err.seek(0)
        res = RunResult(
            list(argv),
            rc,
            seconds,
            maxrss,
            mon.peak_single,
            mon.peak_tree,
            cpu,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
        )
    if check and rc != 0:
        raise CommandFailed(res)
    return res


def _outfile(path: Path | None) -> IO[bytes]:
    """A file to capture output in: ``path`` if given (kept), else an anonymous temporary file."""
    return path.open("w+b") if path is not None else tempfile.TemporaryFile()


class CommandFailed(RuntimeError):
    def __init__(self, res: RunResult) -> None:
        super().__init__(
            f"command failed with exit code {res.returncode} after {res.seconds:.1f}s: "
            f"{' '.join(res.argv)}\n--- stdout ---\n{_tail(res.stdout)}\n--- stderr ---\n{_tail(res.stderr)}"
        )
        self.result = res


class Service:
    """A long-running child process (a server) whose RSS is sampled while it runs; ``stop`` sends
    SIGTERM (SIGKILL after a grace period) and records the kernel's ru_maxrss."""

    def __init__(
        self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, log: Path, interval: float = 0.05
    ) -> None:
        self.argv = list(argv)
        self.log = log
        self._logf = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.argv,
            env=dict(env) if env else None,
            stdout=self._logf,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.monitor = RssMonitor(self.proc.pid, interval).start()
        self.returncode: int | None = None
        self.maxrss_bytes = 0

    def alive(self) -> bool:
        return self.proc.poll() is None

    def reset_peaks(self) -> None:
        """Forget psutil peaks so far (e.g. after start-up), keeping the sampler running."""
        self.monitor.peak_single = 0
        self.monitor.peak_tree = 0
        self.monitor.sample()

    def cpu_seconds(self) -> float:
        """User + system CPU used so far by the server process tree."""
        total = 0.0
        try:
            root = psutil.Process(self.proc.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return 0.0
        for p in procs:
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
        return total

    def peaks(self) -> tuple[int, int]:
        return self.monitor.peak_single, self.monitor.peak_tree

    def log_tail(self, limit: int = 4000) -> str:
        try:
            return _tail(self.log.read_text(errors="replace"), limit)
        except OSError:
            return ""

    def stop(self, grace: float = 10.0) -> None:
        if self.returncode is not None:
            return
        self.monitor.stop()
        pid = self.proc.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        status = None
        while status is None:
            wpid, st, usage = os.wait4(pid, os.WNOHANG)
            if wpid == pid:
                status = st
                self.maxrss_bytes = usage.ru_maxrss * 1024
                break
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                deadline = float("inf")
            time.sleep(0.05)
        self.returncode = os.waitstatus_to_exitcode(status)
        self.proc.returncode = self.returncode
        # Children of the server that outlived it (killpg normally takes them down too).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        self._logf.close()


def stop_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit so ``finally`` blocks stop the servers and remove work dirs."""

    def _handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _handler)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, service: Service | None = None, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service is not None and not service.alive():
            raise RuntimeError(f"{service.argv[0]} exited early ({service.proc.returncode}):\n{service.log_tail()}")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout:.0f}s")


def wait_for_http(url: str, service: Service | None = None, timeout: float = 60.0) -> None:
    """Waits until ``url`` answers at all (any HTTP status counts as up)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service is not None and not service.alive():
            raise RuntimeError(f"{service.argv[0]} exited early ({service.proc.returncode}):\n{service.log_tail()}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer after {timeout:.0f}s")


# --------------------------------------------------------------------------------------------
# Corpus


@dataclass
class CorpusStats:
    path: str
    files: int
    bytes: int
    dirs: int
    symlinks: int
    other: int = 0
    read_seconds: float = 0.0  # warm-up read time, when done

    @property
    def mb(self) -> float:
        return self.bytes / MB


def walk_files(root: Path) -> Iterator[os.DirEntry[str]]:
    stack = [str(root)]
    while stack:
        d = stack.pop()
        try:
            it = os.scandir(d)
        except OSError:
            continue
        with it:
            for e in it:
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
                else:
                    yield e


def corpus_stats(root: Path) -> CorpusStats:
    files = size = dirs = links = other = 0
    stack = [str(root)]
    while stack:
        d = stack.pop()
        dirs += 1
        try:
            it = os.scandir(d)
        except OSError:
            continue
        with it:
            for e in it:
                if e.is_symlink():
                    links += 1
                elif e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
                elif e.is_file(follow_symlinks=False):
                    files += 1
                    size += e.stat(follow_symlinks=False).st_size
                else:
                    other += 1
    return CorpusStats(str(root), files, size, dirs, links, other)


def warm_read(root: Path, block: int = 4 * MiB) -> float:
    """Reads every regular file once (to /dev/null, so to speak) so the corpus is in the page cache
    for every tool alike; returns the seconds it took."""
    t0 = time.perf_counter()
    buf = bytearray(block)
    view = memoryview(buf)
    for e in walk_files(root):
        if not e.is_file(follow_symlinks=False):
            continue
        try:
            fd = os.open(e.path, os.O_RDONLY)
        except OSError:
            continue
        try:
            while os.readv(fd, [view]) > 0:
                pass
        finally:
            os.close(fd)
    return time.perf_counter() - t0


def du_bytes(root: Path) -> int:
    """Apparent bytes of regular files under ``root``."""
    total = 0
    for e in walk_files(root):
        with contextlib.suppress(OSError):
            if e.is_file(follow_symlinks=False):
                total += e.stat(follow_symlinks=False).st_size
    return total


def timed_sync() -> float:
    t0 = time.perf_counter()
    os.sync()
    return time.perf_counter() - t0


# --------------------------------------------------------------------------------------------
# Tools


def venv_bin(name: str) -> str | None:
    """``name`` next to this Python (a venv's bin dir), else on PATH."""
    cand = Path(sys.executable).parent / name
    if cand.exists():
        return str(cand)
    return shutil.which(name)


def tool_version(argv: Sequence[str]) -> str:
    try:
        out = subprocess.run(list(argv), capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unavailable ({exc})"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else f"exit {out.returncode}"


def machine_info() -> dict[str, Any]:
    vm = psutil.virtual_memory()
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    repo = Path(__file__).resolve().parent.parent
    git = tool_version(["git", "-C", str(repo), "describe", "--always", "--dirty"])
    return {
        "camroll_git": git,
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_bytes": vm.total,
        "kernel": os.uname().release,
        "python": sys.version.split()[0],
    }


# --------------------------------------------------------------------------------------------
# camroll rig: a fresh server data dir, a user, a fresh agent home, logged in.


def camroll_argv() -> list[str]:
    exe = venv_bin("camroll")
    return [exe] if exe else [sys.executable, "-m", "camroll"]


@dataclass
class CamrollRig:
    work: Path
    user: str = "bench"
    password: str = "bench-password-0123456789"
    interval: float = 0.05
    server: Service | None = None
    port: int = 0
    env: dict[str, str] = field(default_factory=dict)
    setup_log: list[dict[str, Any]] = field(default_factory=list)
    startup_peak_rss: int = 0  # server, psutil, from launch until logged in and folders added

    @property
    def data(self) -> Path:
        return self.work / "server-data"

    @property
    def home(self) -> Path:
        return self.work / "agent-home"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self, *args: str) -> RunResult:
        res = run_measured([*camroll_argv(), *args], env=self.env, interval=self.interval)
        self.setup_log.append(
            {"argv": res.argv[1:], "seconds": round(res.seconds, 3), "stdout": _tail(res.stdout, 500)}
        )
        return res

    def start(self, folders: Sequence[Path]) -> None:
        self.data.mkdir(parents=True)
        self.home.mkdir(parents=True)
        pw = self.work / "password"
        pw.write_text(self.password + "\n")
        pw.chmod(0o600)
        self.env = {**os.environ, "CAMROLL_HOME": str(self.home), "NO_COLOR": "1"}
        self.env.pop("CAMROLL_DATA", None)
        self._run("admin", "user", "add", self.user, "--password-file", str(pw), "--data", str(self.data))
        self.port = free_port()
        self.server = Service(
            [*camroll_argv(), "serve", "--data", str(self.data), "--listen", f"127.0.0.1:{self.port}"],
            env=self.env,
            log=self.work / "server.log",
            interval=self.interval,
        )
        wait_for_http(self.url + "/", self.server)
        self._run("login", self.url, "--user", self.user, "--password-file", str(pw))
        for f in folders:
            self._run("folder", "add", str(f))
        self.startup_peak_rss = self.server.peaks()[0]
        self.server.reset_peaks()

    def backup(self, log: Path | None = None, profile: Path | None = None) -> tuple[RunResult, dict[str, Any] | None]:
        """One ``camroll backup --json``.  With ``profile`` (a path without suffix), the agent runs under
        ``py-spy record`` and the server is sampled by a second py-spy; folded stacks are written to
        ``PROFILE-agent.txt`` / ``PROFILE-server.txt`` (RSS figures then include py-spy: do not use them)."""
        argv = [*camroll_argv(), "backup", "--json"]
        server_spy: SpySession | None = None
        if profile is not None:
            argv = [
                *py_spy_record(profile.with_name(profile.name + "-agent.txt")),
                "--subprocesses",
                "--",
                *argv,
            ]
            if self.server is not None:
                server_spy = SpySession(self.server.proc.pid, profile.with_name(profile.name + "-server.txt"))
        try:
            res = run_measured(argv, env=self.env, interval=self.interval, check=False, log=log)
        finally:
            if server_spy is not None:
                server_spy.stop()
        return res, parse_json_tail(res.stdout)

    def status(self) -> dict[str, Any] | None:
        res = run_measured([*camroll_argv(), "status", "--json"], env=self.env, check=False)
        return parse_json_tail(res.stdout)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


def py_spy_record(out: Path, rate: int = 200) -> list[str]:
    exe = venv_bin("py-spy")
    if not exe:
        raise FileNotFoundError("py-spy not found (pip install py-spy)")
    return [exe, "record", "--rate", str(rate), "--format", "raw", "--output", str(out), "--nonblocking"]


class SpySession:
    """``py-spy record --pid`` attached to a running process until ``stop`` (SIGINT makes it write)."""

    def __init__(self, pid: int, out: Path) -> None:
        self.out = out
        self._log = out.with_suffix(".log").open("wb")
        self.proc = subprocess.Popen(
            [*py_spy_record(out), "--subprocesses", "--pid", str(pid)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        time.sleep(0.3)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def top_frames(folded: Path, n: int = 25) -> list[tuple[str, float, float]]:
    """From py-spy's raw (folded) output: the ``n`` frames with the most samples, as
    (frame, self %, total %)."""
    self_count: dict[str, int] = {}
    total_count: dict[str, int] = {}
    grand = 0
    for line in folded.read_text(errors="replace").splitlines():
        stack, _, count_s = line.rpartition(" ")
        try:
            count = int(count_s)
        except ValueError:
            continue
        frames = stack.split(";")
        grand += count
        self_count[frames[-1]] = self_count.get(frames[-1], 0) + count
        for fr in set(frames):
            total_count[fr] = total_count.get(fr, 0) + count
    if not grand:
        return []
    ranked = sorted(total_count, key=lambda f: (self_count.get(f, 0), total_count[f]), reverse=True)[:n]
    return [(f, 100 * self_count.get(f, 0) / grand, 100 * total_count[f] / grand) for f in ranked]


def parse_json_tail(text: str) -> dict[str, Any] | None:
    """The last JSON object in ``text`` (whole text, else the last line that parses)."""
    text = text.strip()
    if not text:
        return None
    with contextlib.suppress(ValueError):
        obj = json.loads(text)
        return obj if isinstance(obj, dict) else {"value": obj}
    for line in reversed(text.splitlines()):
        with contextlib.suppress(ValueError):
            obj = json.loads(line)
            if isinstance(obj, dict):
                return obj
    return None


def fmt_mb(n: int | float | None) -> str:
    return "-" if n is None else f"{n / MB:,.0f} MB" if n >= 10 * MB else f"{n / MB:.1f} MB"
