"""The child side of ``camroll.media.sandbox``: ``python -m camroll.media.sandbox_child``.

It limits itself (address space from ``$CAMROLL_SANDBOX_MEMORY``, no core files, a lower CPU
priority, death with its parent), says it is ready, then answers one request at a time until its
stdin closes. Before each request it moves its CPU-time limit to what it has used plus the
request's budget, so the kernel stops a decoder that spins (SIGXCPU) even if the parent cannot.
Its original stdout carries only protocol frames; file descriptor 1 is pointed at stderr, so a
library that prints cannot corrupt them.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import errno
import json
import math
import os
import resource
import signal
import struct
import sys
import warnings
from pathlib import Path
from typing import Any, BinaryIO

_HEADER = struct.Struct(">I")
# Background work yields the CPU to the server's requests.
_NICE = 10
_PR_SET_PDEATHSIG = 1


def _limit_self() -> None:
    memory = int(os.environ.get("CAMROLL_SANDBOX_MEMORY") or 0)
    if memory > 0:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    os.nice(_NICE)
    # Killed with the server (or 'camroll worker'): strictly, with the thread that started it, which
    # is one of the job queue's workers, alive as long as the process.
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _limit_cpu(seconds: float) -> None:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = math.ceil(usage.ru_utime + usage.ru_stime + max(1.0, seconds))
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _send(out: BinaryIO, value: Any) -> None:
    body = json.dumps(value).encode()
    out.write(_HEADER.pack(len(body)) + body)
    out.flush()


def _recv(inp: BinaryIO) -> dict[str, Any] | None:
    header = inp.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    (n,) = _HEADER.unpack(header)
    body = inp.read(n)
    if len(body) < n:
        return None
    value = json.loads(body)
    return value if isinstance(value, dict) else None


def _run(request: dict[str, Any]) -> Any:
    from camroll.media import metadata, thumbs

    op = request.get("op")
    if op == "ping":
        return None
    path = Path(request["path"])
    mime = request.get("mime")
    if op == "extract":
        return metadata.extract(path, mime=mime, mtime=request.get("mtime")).model_dump(mode="json")
    if op == "thumbnails":
        outs = [(int(size), Path(out)) for size, out in request["outs"]]
        return [dataclasses.asdict(r) for r in thumbs.make_thumbnails(path, outs, mime=mime)]
    raise ValueError(f"unknown sandbox operation {op!r}")


def _error(kind: str, reason: str, err: int | None = None) -> dict[str, Any]:
    return {"error": {"kind": kind, "reason": reason, "errno": err}}


def _disk_full_cause(exc: BaseException) -> OSError | None:
    """The full disk behind a media error, if one is in its chain: that is no verdict on the file."""
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        if isinstance(link, OSError) and link.errno in (errno.ENOSPC, errno.EDQUOT):
            return link
        link = link.__cause__ or link.__context__
    return None


def _answer(request: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """(reply, whether this child should exit afterwards)."""
    from camroll.media.errors import MediaError, ToolMissing
    from camroll.media.sandbox import Limits, classify_os_error, memory_words

    try:
        return {"ok": _run(request)}, False
    except MemoryError:
        limit = int(os.environ.get("CAMROLL_SANDBOX_MEMORY") or 0) or Limits().memory_bytes
        return _error("out_of_memory", (
            f"Decoding this file needed more than the {memory_words(limit)} memory limit "
            "(CAMROLL_JOB_MEMORY).")), True
    except ToolMissing as exc:
        return _error("tool_missing", str(exc)), False
    except MediaError as exc:
        cause = _disk_full_cause(exc)
        if cause is not None:
            failure = classify_os_error(cause)
            return _error(failure.kind.value, failure.reason, failure.errno), False
        return _error("unreadable", str(exc)), False
    except OSError as exc:
        failure = classify_os_error(exc)
        return _error(failure.kind.value, failure.reason, failure.errno), False
    except Exception as exc:
        return _error("internal", (
            f"camroll failed on this file ({type(exc).__name__}: {str(exc)[:300]}); "
            "run 'camroll admin jobs --retry' after upgrading camroll.")), True


def main() -> None:
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    inp = sys.stdin.buffer
    # Imports come before the memory limit would bite and are shared by every request.
    import camroll.media.metadata
    import camroll.media.thumbs  # noqa: F401

    # Pillow warns between its limit and twice it; camroll's own limit is the one that refuses.
    warnings.simplefilter("ignore")
    _limit_self()
    _send(out, {"ready": True})
    while True:
        request = _recv(inp)
        if request is None:
            return
        _limit_cpu(float(request.get("cpu_seconds") or 60.0))
        reply, leave = _answer(request)
        _send(out, reply)
        if leave:
            return


if __name__ == "__main__":
    main()
