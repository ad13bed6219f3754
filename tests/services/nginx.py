"""Debian's nginx and HAProxy on loopback in front of camroll replicas, running the configs we ship.

The test must exercise what users install: ``deploy/nginx/camroll.conf`` and
``deploy/haproxy/haproxy.cfg`` are read as shipped and only their site-specific values are replaced
(the replica addresses, the listen ports, the certificate and log paths).  Each replacement must
match, so a change to the shipped file that the renderer no longer understands fails loudly instead of
testing a different config.  Both run as the current user (pid, logs and temp files in a temporary
folder, in the foreground), TLS with a throwaway self-signed certificate that clients are given as
their CA file.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from support.env import free_port
from support.wait import wait_until

REPO = Path(__file__).resolve().parents[2]
NGINX_CONF = REPO / "deploy" / "nginx" / "camroll.conf"
HAPROXY_CONF = REPO / "deploy" / "haproxy" / "haproxy.cfg"
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
HAPROXY = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else None)
OPENSSL = shutil.which("openssl")


def _sub(pattern: str, repl: str | Callable[[re.Match[str]], str], text: str, *, flags: int = re.M) -> str:
    new, n = re.subn(pattern, repl, text, flags=flags)
    if not n:
        raise AssertionError(f"the shipped config no longer has /{pattern}/: update tests/services/nginx.py")
    return new


def self_signed(workdir: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, valid for a day, and its key."""
    if OPENSSL is None:
        raise RuntimeError("openssl is not installed")
    cert, key = workdir / "lb-cert.pem", workdir / "lb-key.pem"
    subprocess.run([OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert),
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True)
    return cert, key


class Route(NamedTuple):
    method: str
    path: str
    status: int
    upstream: int | None  # the port of the replica that answered; None when nginx answered itself
    bytes_in: int  # the request's length: line, headers and body


@dataclass
class LoadBalancer:
    """A running load balancer: ``url`` is its https address; clients trust ``cafile``."""

    kind: str
    port: int
    http_port: int
    cafile: Path
    workdir: Path
    proc: subprocess.Popen[bytes]
    access_log: Path
    upstreams: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cafile))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log_lines(self) -> list[str]:
        with contextlib.suppress(FileNotFoundError):
            return self.access_log.read_text(errors="replace").splitlines()
        return []

    def routes(self) -> list[Route]:
        """Every request nginx logged, in order (the shipped ``camroll`` log format)."""
        out: list[Route] = []
        for line in self.log_lines():
            m = re.search(r'"(\S+) (\S+)" (\d+) in=(\d+) .*upstream=(.*) t=', line)
            if not m:
                continue
            # "A:1, B:2" when nginx tried a second replica: the last one answered.
            last = m.group(5).split(",")[-1].strip()
            port = int(last.rsplit(":", 1)[1]) if ":" in last else None
            out.append(Route(m.group(1), m.group(2), int(m.group(3)), port, int(m.group(4))))
        return out


def _wait_tls(lb_port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the load balancer exited {proc.returncode}: {log.read_text(errors='replace')}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", lb_port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"the load balancer did not listen on {lb_port} in {timeout} s")


# --- nginx ------------------------------------------------------------------------------------------

def render_nginx(shipped: str, upstreams: list[int], *, port: int, http_port: int, cert: Path, key: Path,
                 access_log: Path) -> str:
    """``deploy/nginx/camroll.conf`` with this test's replicas, ports, certificate and log path."""
    def upstream(m: re.Match[str]) -> str:
        body = m.group(2)
        first = re.search(r"^\s*server\s+\S+(.*);\s*$", body, re.M)
        if first is None:
            raise AssertionError(f"upstream {m.group(1)} lists no server: update tests/services/nginx.py")
        params = first.group(1)
        body = re.sub(r"^\s*server\s+\S+.*;\s*\n", "", body, flags=re.M)
        servers = "".join(f"    server 127.0.0.1:{p}{params};\n" for p in upstreams)
        return f"upstream {m.group(1)} {{\n{servers}{body.lstrip(chr(10))}}}"

    text = _sub(r"upstream\s+(\w+)\s*\{([^}]*)\}", upstream, shipped)
    text = _sub(r"^\s*listen\s+\[::\]:\d+.*;\s*\n", "", text)
    text = _sub(r"^(\s*)listen\s+80;", rf"\1listen 127.0.0.1:{http_port};", text)
    text = _sub(r"^(\s*)listen\s+443\s+", rf"\1listen 127.0.0.1:{port} ", text)
    text = _sub(r"^(\s*)ssl_certificate\s+\S+;", rf"\1ssl_certificate {cert};", text)
    text = _sub(r"^(\s*)ssl_certificate_key\s+\S+;", rf"\1ssl_certificate_key {key};", text)
    return _sub(r"^(\s*)access_log\s+\S+", rf"\1access_log {access_log}", text)


def _nginx_main(workdir: Path, site: Path) -> str:
    # Debian's nginx.conf wraps conf.d files in http {}; this is that wrapper, with every path that
    # nginx writes moved into the test's folder.  A root master would hand its workers to "nobody",
    # who cannot enter pytest's private temporary folders.
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};\n" if os.geteuid() == 0 else ""
    temps = "".join(f"    {name}_temp_path {workdir / name};\n"
                    for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return (f"{user}daemon off;\nworker_processes 1;\npid {workdir / 'nginx.pid'};\n"
            f"error_log {workdir / 'error.log'} warn;\n"
            "events { worker_connections 1024; }\n"
            f"http {{\n{temps}    access_log off;\n    include {site};\n}}\n")


def start_nginx(workdir: Path, upstreams: list[int]) -> LoadBalancer:
    if NGINX is None:
        raise RuntimeError("nginx is not installed (Debian: apt-get install nginx)")
    workdir.mkdir(parents=True, exist_ok=True)
    cert, key = self_signed(workdir)
    port, http_port = free_port(), free_port()
    access = workdir / "access.log"
    site = workdir / "camroll.conf"
    site.write_text(render_nginx(NGINX_CONF.read_text(), upstreams, port=port, http_port=http_port, cert=cert,
                                 key=key, access_log=access))
    main = workdir / "nginx.conf"
    main.write_text(_nginx_main(workdir, site))
    base = [NGINX, "-p", str(workdir), "-e", str(workdir / "error.log"), "-c", str(main)]
    check = subprocess.run([*base, "-t"], capture_output=True, text=True)
    if check.returncode != 0:
        raise RuntimeError(f"nginx -t refused the shipped config:\n{check.stderr}")
    out = workdir / "nginx.out"
    with open(out, "ab") as f:
        proc = subprocess.Popen(base, stdout=f, stderr=subprocess.STDOUT)
    _wait_tls(port, proc, workdir / "error.log")
    return LoadBalancer("nginx", port, http_port, cert, workdir, proc, access, upstreams)


# --- HAProxy ----------------------------------------------------------------------------------------

def render_haproxy(shipped: str, upstreams: list[int], *, port: int, http_port: int, pem: Path,
                   stats_socket: Path) -> str:
    """``deploy/haproxy/haproxy.cfg`` with this test's replicas, ports, certificate and log target."""
    def backend(m: re.Match[str]) -> str:
        head, body = m.group(1), m.group(2)
        body = re.sub(r"^\s*server\s+\S+\s+\S+.*\n", "", body, flags=re.M)
        servers = "".join(f"    server replica{i + 1} 127.0.0.1:{p}\n" for i, p in enumerate(upstreams))
        return f"{head}{body.rstrip()}\n{servers}\n"

    text = _sub(r"^(backend \S+\n)((?:[ \t]+.*\n|\n)*?)(?=^\S|\Z)", backend, shipped + "\n")
    text = _sub(r"^(\s*)log /dev/log (\S+)", r"\1log stdout format raw \2", text)
    text = _sub(r"^(global\n)", rf"\1    stats socket {stats_socket} mode 600 level admin\n", text)
    text = _sub(r"^(\s*)bind :80\s*$", rf"\1bind 127.0.0.1:{http_port}", text)
    return _sub(r"^(\s*)bind :443 ssl crt \S+", rf"\1bind 127.0.0.1:{port} ssl crt {pem}", text)


@dataclass
class HAProxy(LoadBalancer):
    stats_socket: Path = Path()

    def server_states(self) -> dict[tuple[str, str], str]:
        """(backend, server) -> "STATUS CHECK", e.g. "UP L7OK" (its /readyz answered 200) or "DOWN
        L4CON" (connection refused), from the stats socket."""
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(self.stats_socket))
            s.sendall(b"show stat\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        lines = data.decode().splitlines()
        cols = lines[0].lstrip("# ").split(",")
        out: dict[tuple[str, str], str] = {}
        for line in lines[1:]:
            row = dict(zip(cols, line.split(","), strict=False))
            if row.get("svname") not in (None, "FRONTEND", "BACKEND"):
                out[(row["pxname"], row["svname"])] = f"{row['status']} {row.get('check_status', '')}"
        return out

    def wait_states(self, want: str, servers: set[str], timeout: float = 30) -> None:
        """Until every backend's ``servers`` have a state starting with ``want`` (e.g. "UP L7OK")."""
        states: dict[tuple[str, str], str] = {}

        def seen() -> bool:
            states.update(self.server_states())
            return all(v.startswith(want) for (_, sv), v in states.items() if sv in servers)

        wait_until(seen, timeout, what=f"HAProxy sees {sorted(servers)} {want}", describe=lambda: states,
                   interval=0.1)


def start_haproxy(workdir: Path, upstreams: list[int]) -> HAProxy:
    if HAPROXY is None:
        raise RuntimeError("haproxy is not installed (Debian: apt-get install haproxy)")
    workdir.mkdir(parents=True, exist_ok=True)
    cert, key = self_signed(workdir)
    pem = workdir / "lb.pem"
    pem.write_text(cert.read_text() + key.read_text())
    port, http_port = free_port(), free_port()
    stats = workdir / "haproxy.sock"
    cfg = workdir / "haproxy.cfg"
    cfg.write_text(render_haproxy(HAPROXY_CONF.read_text(), upstreams, port=port, http_port=http_port, pem=pem,
                                  stats_socket=stats))
    check = subprocess.run([HAPROXY, "-c", "-f", str(cfg)], capture_output=True, text=True)
    if check.returncode != 0:
        raise RuntimeError(f"haproxy -c refused the shipped config:\n{check.stdout}{check.stderr}")
    log = workdir / "haproxy.log"
    with open(log, "ab") as f:
        proc = subprocess.Popen([HAPROXY, "-db", "-f", str(cfg)], stdout=f, stderr=subprocess.STDOUT)
    _wait_tls(port, proc, log)
    return HAProxy("haproxy", port, http_port, cert, workdir, proc, log, upstreams, stats_socket=stats)
