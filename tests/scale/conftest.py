"""A camroll cluster of real processes on loopback, as docs/DEPLOY.md builds it: PostgreSQL, S3 object
storage (SeaweedFS), Redis, two ``camroll serve`` replicas and one ``camroll worker``, behind the
shipped nginx config.  One cluster per test module."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from server.receiver import LOOPBACK_ALERTS
from services import nginx, postgres
from services.redis import RedisService
from services.s3 import S3Service
from support.env import require
from support.server import camroll_cmd, run_camroll

from .replica import Replica, start_replicas

# Device health on a short clock, so a silent device is noticed within seconds: silent after 2 s
# without a heartbeat, checked every 0.3 s by each replica.
SILENCE_HOURS = "0.0006"
STALL_CHECK_SECONDS = "0.3"
PASSWORD = "correct horse battery"


@dataclass
class Storage:
    """Where the replicas keep blobs, thumbnails and upload parts: a prefix of the S3 server's bucket."""

    s3: S3Service
    prefix: str

    @property
    def env(self) -> dict[str, str]:
        return self.s3.env(self.prefix)

    def keys(self, under: str = "") -> list[str]:
        client = self.s3.client()
        out: list[str] = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.s3.bucket,
                                                                       Prefix=f"{self.prefix}/{under}"):
            out += [o["Key"] for o in page.get("Contents", [])]
        return out


@dataclass
class Cluster:
    env: dict[str, str]
    replicas: list[Replica]
    worker_data: Path
    storage: Storage
    lb: nginx.LoadBalancer
    database_url: str
    worker: subprocess.Popen[bytes] | None = None
    worker_metrics_port: int = field(default_factory=nginx.free_port)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def replica_on(self, port: int) -> Replica:
        (found,) = [r for r in self.replicas if r.port == port]
        return found

    def admin(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``camroll admin ARGS`` against the shared database, from a folder of its own."""
        data = self.worker_data.parent / "admin"
        return run_camroll("admin", *args, "--data", str(data), env=self.env, check=check)

    def start_worker(self) -> None:
        log = open(self.worker_data.parent / "worker.log", "ab")  # noqa: SIM115 - the worker writes it
        self.worker = subprocess.Popen(camroll_cmd("worker", "--workers", "1", "--data", str(self.worker_data),
                                                   "--metrics-listen", f"127.0.0.1:{self.worker_metrics_port}"),
                                       env={**os.environ, **self.env}, stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def worker_jobs(self) -> dict[str, float]:
        """How many asset jobs the worker finished, by outcome (done, already_done, ...), from its /metrics."""
        import httpx

        text = httpx.get(f"http://127.0.0.1:{self.worker_metrics_port}/metrics", timeout=10).text
        out: dict[str, float] = {}
        for m in re.finditer(r'^camroll_job_duration_seconds_count\{(.*)\} (\S+)$', text, re.M):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
            if labels.get("kind") == "process_asset":
                out[labels["outcome"]] = out.get(labels["outcome"], 0.0) + float(m.group(2))
        return out

    def stop(self) -> None:
        for r in self.replicas:
            r.stop()
        if self.worker is not None and self.worker.poll() is None:
            self.worker.send_signal(signal.SIGTERM)
            try:
                self.worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.worker.kill()
                self.worker.wait()
        self.lb.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, seaweedfs_s3: S3Service,
            redis_service: RedisService) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("cluster")
    require(nginx.NGINX is not None, "nginx is not installed: apt-get install nginx")
    require(nginx.OPENSSL is not None, "openssl is not installed: apt-get install openssl")
    reason = postgres.missing_reason()
    require(reason is None, f"no PostgreSQL for the cluster: {reason}")
    storage = Storage(seaweedfs_s3, seaweedfs_s3.new_prefix())
    # An empty database: the replicas' first start migrates it.
    database_url = postgres.fresh_url(migrated=False)
    env = {"CAMROLL_DATABASE_URL": database_url, **storage.env, "CAMROLL_REDIS_URL": redis_service.fresh_url(),
           # The replicas only enqueue; the worker makes the thumbnails.
           "CAMROLL_JOB_WORKERS": "0", **LOOPBACK_ALERTS}
    args = ("--silence-hours", SILENCE_HOURS, "--stall-check-interval", STALL_CHECK_SECONDS)
    replicas = [Replica(data=tmp / f"replica-{name}", extra_args=args, env=env) for name in "ab"]
    lb: nginx.LoadBalancer | None = None
    c: Cluster | None = None
    try:
        start_replicas(replicas)
        lb = nginx.start_nginx(tmp / "nginx", [r.port for r in replicas])
        c = Cluster(env, replicas, tmp / "worker", storage, lb, database_url)
        c.start_worker()
        pw = tmp / "ann.pw"
        pw.write_text(PASSWORD + "\n")
        c.admin("user", "add", "ann", "--password-file", str(pw))
        yield c
    finally:
        if c is not None:
            c.stop()
        else:
            for r in replicas:
                r.stop()
            if lb is not None:
                lb.stop()
        postgres.drop_made()
