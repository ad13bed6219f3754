"""An in-memory stand-in for camroll's upload API (tus + assets/check) behind ``httpx.MockTransport``,
so uploader and engine logic can be tested without a server process.  Faults are injected by
setting attributes."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from camroll import wire


@dataclass
class FakeUpload:
    length: int
    meta: dict[str, str]
    data: bytearray = field(default_factory=bytearray)


class FakeServer:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.uploads: dict[str, FakeUpload] = {}
        self.assets: dict[str, int] = {}  # sha256 -> asset id
        self.blobs: dict[int, bytes] = {}
        self.paths: dict[int, set[str]] = {}
        self.next_id = 1
        self.requests: list[tuple[str, str]] = []
        self.heartbeats: list[wire.Heartbeat] = []
        self.metas: list[dict[str, str]] = []
        # Raised instead of answering a heartbeat (a server that cannot take one).
        self.heartbeat_error: Exception | None = None
        self.bytes_received = 0
        # Faults
        self.fail_next_patches = 0  # answer 503 to this many PATCHes
        self.corrupt_next_patch = False  # pretend the next PATCH body arrived damaged (460)
        self.drop_after_bytes: int | None = None  # store this many bytes of the next PATCH, then error
        self.quota_bytes: int | None = None
        self.used_bytes = 0
        self.check_status: int | None = None
        self.damage_whole_file_once = False  # flip a stored byte before the final hash check
        self.token_revoked = False
        self.max_file_size: int | None = None
        # File-name endings refused with 415 (as if sniffed), like a server whose type list is shorter than ours.
        self.refused_suffixes: tuple[str, ...] = ()
        # GET /api/v1/server answers this body when set (else 404, as from a server that cannot say).
        self.server_info: dict[str, object] | None = None

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def _problem(self, status: int, code: str, detail: str, fix: str | None = None) -> httpx.Response:
        body = {"title": code, "status": status, "detail": detail, "code": code, "fix": fix}
        return httpx.Response(status, content=json.dumps(body).encode(),
                              headers={"Content-Type": wire.PROBLEM_CONTENT_TYPE})

    def handle(self, req: httpx.Request) -> httpx.Response:
        with self.lock:
            if req.url.path == "/api/v1/devices/current/heartbeat":
                # Kept apart from ``requests``: every pass ends with one, and tests count the backup's own.
                if self.heartbeat_error is not None:
                    raise self.heartbeat_error
                self.heartbeats.append(wire.Heartbeat.model_validate_json(req.content))
                ack = wire.HeartbeatAck(server_time=datetime.now(UTC), interval_seconds=300)
                return httpx.Response(200, content=ack.model_dump_json().encode(),
                                      headers={"Content-Type": "application/json"})
            self.requests.append((req.method, req.url.path))
            return self._handle(req)

    def _finish(self, uid: str, up: FakeUpload) -> httpx.Response | int:
        if self.damage_whole_file_once:
            self.damage_whole_file_once = False
            up.data[0] ^= 0xFF
        sha = hashlib.sha256(up.data).hexdigest()
        del self.uploads[uid]
        if sha != up.meta.get(wire.META_SHA256):
            return self._problem(460, "checksum_mismatch", "whole-file sha256 mismatch")
        if sha not in self.assets:
            self.assets[sha] = self.next_id
            self.blobs[self.next_id] = bytes(up.data)
            self.next_id += 1
            self.used_bytes += len(up.data)
        aid = self.assets[sha]
        self.paths.setdefault(aid, set()).add(up.meta.get(wire.META_PATH, ""))
        return aid

    def _receive(self, uid: str, up: FakeUpload, req: httpx.Request, status: int) -> httpx.Response:
        body = req.read()
        # Like the real server: a body without Upload-Checksum is accepted, the whole-file hash decides.
        if "Upload-Checksum" in req.headers:
            algo, _, digest = req.headers["Upload-Checksum"].partition(" ")
            if algo != "sha256" or base64.b64decode(digest) != hashlib.sha256(body).digest():
                return self._problem(460, "checksum_mismatch", "chunk checksum mismatch")
        if self.corrupt_next_patch:
            self.corrupt_next_patch = False
            return self._problem(460, "checksum_mismatch", "chunk checksum mismatch")
        if self.drop_after_bytes is not None:
            keep = body[: self.drop_after_bytes]
            self.drop_after_bytes = None
            up.data += keep
            self.bytes_received += len(keep)
            raise httpx.ReadError("connection reset by fake server")
        up.data += body
        self.bytes_received += len(body)
        headers = {"Upload-Offset": str(len(up.data)), "Tus-Resumable": wire.TUS_VERSION}
        if len(up.data) == up.length:
            res = self._finish(uid, up)
            if isinstance(res, httpx.Response):
                return res
            headers["Camroll-Asset-Id"] = str(res)
        if status == 201:
            headers["Location"] = f"{wire.UPLOADS_PATH}{uid}"
        return httpx.Response(status, headers=headers)

    def _handle(self, req: httpx.Request) -> httpx.Response:
        path = req.url.path
        if self.token_revoked:
            return self._problem(401, "unauthorized", "This device token was revoked.", "Log in again.")
        if path == f"{wire.API_PREFIX}/server" and self.server_info is not None:
            return httpx.Response(200, json=self.server_info)
        if path == f"{wire.API_PREFIX}/assets/check":
            if self.check_status:
                return self._problem(self.check_status, "internal", "check failed")
            items = json.loads(req.read())["items"]
            present: dict[str, int] = {}
            missing: list[str] = []
            for it in items:
                aid = self.assets.get(it["sha256"])
                if aid is None:
                    missing.append(it["sha256"])
                else:
                    present[it["sha256"]] = aid
                    if it.get("path"):
                        self.paths.setdefault(aid, set()).add(it["path"])
            return httpx.Response(200, json={"present": present, "missing": missing})
        if path == wire.UPLOADS_PATH and req.method == "POST":
            length = int(req.headers["Upload-Length"])
            if self.max_file_size is not None and length > self.max_file_size:
                return self._problem(413, "file_too_large", "This file is larger than the server's limit.",
                                     "Ask the admin to raise it.")
            if self.quota_bytes is not None and self.used_bytes + length > self.quota_bytes:
                return self._problem(413, "quota_exceeded", "Storage quota exceeded: 1 of 1 MB used",
                                     "delete some files or ask the admin for more space")
            uid = f"u{len(self.requests)}"
            up = FakeUpload(length, wire.decode_upload_metadata(req.headers.get("Upload-Metadata", "")))
            self.metas.append(up.meta)
            if self.refused_suffixes and up.meta.get(wire.META_FILENAME, "").endswith(self.refused_suffixes):
                return self._problem(415, "unsupported_media_type", "It is not a type this server stores.",
                                     "Ask the admin to start it with --accept-other-files.")
            self.uploads[uid] = up
            if req.headers.get("Content-Type") == "application/offset+octet-stream":
                return self._receive(uid, up, req, 201)
            loc = f"{wire.UPLOADS_PATH}{uid}"
            return httpx.Response(201, headers={"Location": loc, "Upload-Offset": "0"})
        uid = path.rsplit("/", 1)[-1]
        up2 = self.uploads.get(uid)
        if up2 is None:
            return self._problem(404, "not_found", "no such upload")
        if req.method == "HEAD":
            return httpx.Response(200, headers={"Upload-Offset": str(len(up2.data)),
                                                "Upload-Length": str(up2.length)})
        if req.method == "DELETE":
            del self.uploads[uid]
            return httpx.Response(204)
        if req.method == "PATCH":
            if self.fail_next_patches:
                self.fail_next_patches -= 1
                return self._problem(503, "internal", "try later")
            if int(req.headers["Upload-Offset"]) != len(up2.data):
                return self._problem(409, "offset_mismatch", "wrong offset")
            return self._receive(uid, up2, req, 204)
        return self._problem(405, "bad_request", "method not allowed")
