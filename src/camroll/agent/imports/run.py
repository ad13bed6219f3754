"""One Takeout import: index every part, match (:mod:`takeout`), hash each item as a stream, ask the
server which hashes it has, upload the rest over tus, and report.

Each item is read from its part three times at most: once to hash, once to upload, and once more only
when an upload resumes (the member is reopened and the bytes the server has are skipped).  Nothing is
extracted to disk.  The sidecar's capture time travels as the upload's ``mtime_ns``: the server's
metadata job uses it only when the file has no EXIF, QuickTime or file-name date, which is exactly
"where the file itself has none".
"""

from __future__ import annotations

import hashlib
import posixpath
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

from camroll import wire
from camroll.agent.api import TRANSIENT_ERRORS, Api, fatal_for_pass
from camroll.agent.backup.hasher import not_media_reason
from camroll.agent.backup.retry import IN_PASS, Backoff
from camroll.agent.backup.tus import TusClient, UploadGone
from camroll.agent.errors import AgentError, ProblemError
from camroll.agent.imports import sidecar as sidecars
from camroll.agent.imports.archive import Member, NotAnExport, Refused, Source, open_source
from camroll.agent.imports.state import ImportState, member_key
from camroll.agent.imports.takeout import Item, Plan, plan
from camroll.media.types import SNIFF_BYTES, sniff

READ = 1024 * 1024
CHUNK = 16 * 1024 * 1024
CHECK_BATCH = 500


class PartChanged(Exception):
    """A member gave fewer bytes while uploading than when it was hashed."""


class Outcome(Enum):
    IMPORTED = "imported"
    ALREADY_THERE = "already_there"  # the server had these bytes (another device, an earlier import)
    EARLIER_RUN = "earlier_run"  # this import's state says an earlier run finished it
    WOULD_IMPORT = "would_import"  # --dry-run
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass
class ItemResult:
    name: str
    outcome: Outcome
    sha256: str | None = None
    asset_id: int | None = None
    reason: str = ""
    item: Item | None = None
    resumed_at: int = 0  # the offset a resumed upload continued from


@dataclass
class Report:
    dry_run: bool
    results: list[ItemResult] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)
    plan: Plan | None = None
    stopped: str = ""

    def count(self, outcome: Outcome) -> int:
        return sum(1 for r in self.results if r.outcome is outcome)

    def albums(self) -> dict[str, list[int]]:
        """Album title -> asset ids, for every item that has (or would get) an asset."""
        out: dict[str, list[int]] = {}
        for r in self.results:
            if r.item is None:
                continue
            for title in r.item.albums:
                ids = out.setdefault(title, [])
                if r.asset_id is not None and r.asset_id not in ids:
                    ids.append(r.asset_id)
        return out

    def album_members(self) -> dict[str, list[str]]:
        """Album title -> the member names of its items (known before anything is uploaded)."""
        out: dict[str, list[str]] = {}
        for r in self.results:
            for title in r.item.albums if r.item else ():
                out.setdefault(title, []).append(r.name)
        return out

    def to_json(self) -> dict[str, Any]:
        p = self.plan
        return {
            "dry_run": self.dry_run,
            "counts": {o.value: self.count(o) for o in Outcome},
            "items": [{
                "name": r.name, "outcome": r.outcome.value, "sha256": r.sha256, "asset_id": r.asset_id,
                "reason": r.reason or None, "resumed_at": r.resumed_at or None,
                "sidecar": r.item.sidecar_name if r.item else None,
                "match": r.item.match.value if r.item and r.item.match else None,
                "taken_at": (r.item.sidecar.taken_at.isoformat()
                             if r.item and r.item.sidecar and r.item.sidecar.taken_at else None),
                "albums": r.item.albums if r.item else [],
                "live_partner": r.item.live_partner if r.item else None,
                "edited_of": r.item.edited_of if r.item else None,
                "favorited": bool(r.item and r.item.sidecar and r.item.sidecar.favorited),
                "description": (r.item.sidecar.description or None) if r.item and r.item.sidecar else None,
                "gps": ([r.item.sidecar.latitude, r.item.sidecar.longitude]
                        if r.item and r.item.sidecar and r.item.sidecar.latitude is not None else None),
            } for r in self.results],
            "albums": {t: ids for t, ids in self.albums().items()},
            "album_members": self.album_members(),
            "album_folders": p.albums if p else {},
            "without_sidecar": [i.name for i in p.without_sidecar] if p else [],
            "skipped": [{"name": s.member.name, "reason": s.reason.value, "sentence": s.reason.sentence}
                        for s in p.skipped] if p else [],
            "unused_json": [{"name": u.member.name, "why": u.why} for u in p.unused_json] if p else [],
            "refused": [{"part": r.part, "name": r.raw_name, "reason": r.reason.value} for r in self.refused],
            "stopped": self.stopped or None,
        }


class Progress(Protocol):
    def planned(self, items: int, total_bytes: int) -> None: ...

    def sent(self, n: int) -> None: ...

    def finished(self, result: ItemResult) -> None: ...


class NoProgress:
    def planned(self, items: int, total_bytes: int) -> None:
        pass

    def sent(self, n: int) -> None:
        pass

    def finished(self, result: ItemResult) -> None:
        pass


@dataclass
class Indexed:
    sources: dict[str, Source]
    plan: Plan
    refused: list[Refused]

    def close(self) -> None:
        for s in self.sources.values():
            s.close()


def index(paths: Iterable[str | Path]) -> Indexed:
    """A Takeout export: open every part, list its members and read its JSON files (bounded), then match."""
    return _index(paths, ".json", sidecars.MAX_JSON_BYTES, lambda members, read: plan(members, {
        name: sidecars.parse(data) for name, data in read.items()}))


def index_folder(paths: Iterable[str | Path], *, albums_from_folders: bool = False) -> Indexed:
    """A plain export with XMP sidecars (``camroll import folder``)."""
    from camroll.agent.imports import folder, xmp

    return _index(paths, folder.SIDECAR_EXT, xmp.MAX_BYTES, lambda members, read: folder.plan(
        members, {name: xmp.parse(data, posixpath.basename(name)) for name, data in read.items()},
        albums_from_folders=albums_from_folders))


def _index(paths: Iterable[str | Path], sidecar_ext: str, limit: int,
           planner: Callable[[list[Member], dict[str, bytes | None]], Plan]) -> Indexed:
    sources: dict[str, Source] = {}
    members: list[Member] = []
    read: dict[str, bytes | None] = {}
    refused: list[Refused] = []
    try:
        for p in paths:
            try:
                src = open_source(p)
            except NotAnExport as exc:
                raise AgentError(f"Cannot import {exc}. Fix: give the export's .zip/.tgz parts or the folder "
                                 "they were extracted to.") from None
            sources[src.path] = src
            # Sidecars are read during the listing: a compressed tar is read once, front to back.
            for m in src.members():
                members.append(m)
                if m.name.lower().endswith(sidecar_ext) and m.name not in read:
                    from camroll.agent.imports.archive import read_bounded

                    read[m.name] = read_bounded(src, m, limit)
            refused.extend(src.refused)
    except BaseException:
        for s in sources.values():
            s.close()
        raise
    return Indexed(sources, planner(members, read), refused)


def _hash(src: Source, m: Member) -> tuple[str, str] | str:
    """(sha256, mime), or the reason the member is not imported."""
    h = hashlib.sha256()
    total = 0
    head = b""
    with src.open(m) as f:
        while chunk := f.read(READ):
            if not head:
                head = chunk[:SNIFF_BYTES]
            h.update(chunk)
            total += len(chunk)
    if total == 0:
        return "empty file (0 bytes)"
    if total != m.size:
        return f"the part holds {total} bytes of it where its header says {m.size}: the part is damaged"
    mt = sniff(head)
    if mt is None:
        return not_media_reason(head)
    return h.hexdigest(), mt.mime


def hints_of(item: Item) -> wire.ImportHints | None:
    """What the export says about ``item`` beyond its bytes: the sidecar's date, place, caption and
    favourite flag, and the albums it is in (None when it says nothing)."""
    sc = item.sidecar
    albums = list(dict.fromkeys(a.strip() for a in item.albums if a.strip()))[:wire.MAX_HINT_ALBUMS]
    told = wire.ImportHints(albums=[a[:200] for a in albums])
    if sc is not None:
        place = sc.latitude is not None and sc.longitude is not None and (sc.latitude, sc.longitude) != (0.0, 0.0)
        told = told.model_copy(update={
            "taken_at": sc.taken_at, "favorite": sc.favorited,
            "description": sc.description.strip()[:wire.MAX_DESCRIPTION] or None,
            **({"latitude": sc.latitude, "longitude": sc.longitude,
                "altitude": sc.altitude if sc.altitude is not None and -20_000 <= sc.altitude <= 100_000 else None}
               if place else {})})
    if told == wire.ImportHints():
        return None
    return wire.ImportHints.model_validate(told.model_dump())


# Well inside Upload-Metadata's 16 KiB per value once base64 (4/3) is added.
HINTS_LIMIT = 11_000


def _fitting(told: wire.ImportHints) -> str:
    """The hints as JSON short enough for Upload-Metadata: the last albums, then the caption's end, go
    first (a photo in 100 long-named albums is rare; refusing its upload would be worse)."""
    text = told.model_dump_json(exclude_defaults=True)
    while len(text.encode()) > HINTS_LIMIT and told.albums:
        told = told.model_copy(update={"albums": told.albums[:-1]})
        text = told.model_dump_json(exclude_defaults=True)
    if len(text.encode()) > HINTS_LIMIT and told.description:
        told = told.model_copy(update={"description": told.description[:500]})
        text = told.model_dump_json(exclude_defaults=True)
    return text


def _ns(dt: datetime | None) -> int | None:
    return int(dt.timestamp()) * 1_000_000_000 if dt is not None else None


class Importer:
    def __init__(self, idx: Indexed, state: ImportState, *, api: Api | None, tus: TusClient | None,
                 dry_run: bool, progress: Progress | None = None, chunk_size: int = CHUNK,
                 backoff: Backoff = IN_PASS, sleep: Callable[[float], None] = time.sleep) -> None:
        self.idx = idx
        self.state = state
        self.api = api
        self.tus = tus
        self.dry_run = dry_run
        self.progress = progress or NoProgress()
        self.chunk_size = chunk_size
        self.backoff = backoff
        self.sleep = sleep

    def run(self) -> Report:
        report = Report(self.dry_run, refused=list(self.idx.refused), plan=self.idx.plan)
        items = sorted(self.idx.plan.items, key=lambda i: i.name)
        self.progress.planned(len(items), sum(i.member.size for i in items))
        pending: list[tuple[Item, str, str]] = []  # (item, key, sha)
        for item in items:
            key = member_key(item.member)
            done = self.state.done(key)
            if done is not None:
                self._finish(report, ItemResult(item.name, Outcome.EARLIER_RUN, done.sha256, done.asset_id,
                                                item=item))
                continue
            known = self.state.hashed(key)
            if known is None:
                got = _hash(self.idx.sources[item.member.part], item.member)
                if isinstance(got, str):
                    self._finish(report, ItemResult(item.name, Outcome.SKIPPED, reason=got, item=item))
                    continue
                known = got
                if not self.dry_run:
                    self.state.mark_hashed(key, *known)
            pending.append((item, key, known[0]))
        seen: dict[str, int | None] = {}
        for start in range(0, len(pending), CHECK_BATCH):
            batch = pending[start:start + CHECK_BATCH]
            present = self._check(batch)
            for item, key, sha in batch:
                if sha in seen or sha in present:
                    asset = present.get(sha, seen.get(sha))
                    res = ItemResult(item.name, Outcome.ALREADY_THERE, sha, asset, item=item,
                                     reason="" if sha in present else "the same bytes as another file of the export")
                    told = hints_of(item)
                    if sha not in present and asset is not None and told is not None and not self.dry_run:
                        # Uploaded moments ago under another name: this copy's albums and flags go too.
                        one = [wire.CheckItem(sha256=sha, hints=told)]
                        self._retrying(lambda one=one: self.api.check(one))  # type: ignore[union-attr,misc]
                elif self.dry_run:
                    res = ItemResult(item.name, Outcome.WOULD_IMPORT, sha, item=item)
                else:
                    res = self._upload(item, key, sha)
                if res.outcome in (Outcome.IMPORTED, Outcome.ALREADY_THERE) and not self.dry_run:
                    self.state.mark_done(key, sha, res.asset_id, res.outcome.value)
                seen.setdefault(sha, res.asset_id)
                self._finish(report, res)
        return report

    def _finish(self, report: Report, res: ItemResult) -> None:
        report.results.append(res)
        self.progress.finished(res)

    def _check(self, batch: list[tuple[Item, str, str]]) -> dict[str, int]:
        if self.api is None:
            return {}
        # A dry run sends no path: the server records the paths of what it has, and a dry run changes nothing.
        from camroll.agent.fsnames import check_item

        items = []
        for item, _key, sha in batch:
            taken = _ns(item.sidecar.taken_at if item.sidecar else None)
            if self.dry_run:
                items.append(wire.CheckItem(sha256=sha))
            else:
                found = check_item(sha, item.member.name, taken if taken is not None else 0)
                items.append(found.model_copy(update={"hints": hints_of(item)}))
        return dict(self._retrying(lambda: self.api.check(items)).present)  # type: ignore[union-attr]

    def _retrying(self, fn: Callable[[], Any]) -> Any:
        from camroll.agent.api import with_retries

        assert self.api is not None
        return with_retries(fn, base_url=self.api.base_url, backoff=self.backoff, sleep=self.sleep)

    def _metadata(self, item: Item, sha: str) -> dict[str, str]:
        from camroll.agent.fsnames import upload_metadata

        meta = {wire.META_SHA256: sha, wire.META_SIZE: str(item.member.size), **upload_metadata(item.member.name)}
        taken = _ns(item.sidecar.taken_at if item.sidecar else None)
        if taken is not None:
            meta[wire.META_MTIME_NS] = str(taken)
        told = hints_of(item)
        if told is not None:
            meta[wire.META_HINTS] = _fitting(told)
        return meta

    def _upload(self, item: Item, key: str, sha: str) -> ItemResult:
        attempt = 0
        resumed_at = 0
        while True:
            try:
                asset, offset = self._send(item, key, sha)
                resumed_at = resumed_at or offset
                return ItemResult(item.name, Outcome.IMPORTED, sha, asset, item=item, resumed_at=resumed_at)
            except ProblemError as exc:
                if (fatal := fatal_for_pass(exc)) is not None:
                    raise fatal from None
                if exc.status == wire.STATUS_CHECKSUM_MISMATCH:
                    self.state.set_upload_url(key, sha, None)
                elif not exc.transient:
                    return ItemResult(item.name, Outcome.FAILED, sha, item=item, reason=str(exc))
                failure: Exception = exc
            except TRANSIENT_ERRORS as exc:
                failure = exc
            except PartChanged as exc:
                return ItemResult(item.name, Outcome.FAILED, sha, item=item, reason=str(exc))
            attempt += 1
            if attempt >= self.backoff.attempts:
                return ItemResult(item.name, Outcome.FAILED, sha, item=item,
                                  reason=f"gave up after {attempt} attempts: {failure}")
            self.sleep(self.backoff.delay(attempt - 1))

    def _send(self, item: Item, key: str, sha: str) -> tuple[int, int]:
        """Upload (or resume) one item; (asset id, offset it resumed from)."""
        assert self.tus is not None and self.api is not None
        size = item.member.size
        url = self.state.upload_url(key, sha)
        offset = 0
        if url is not None:
            try:
                offset = self.tus.head(url)
            except UploadGone:
                url = None
                self.state.set_upload_url(key, sha, None)
        resumed = offset
        asset: int | None = None
        if url is None:
            url, res = self.tus.create(size, self._metadata(item, sha))
            self.state.set_upload_url(key, sha, url)
            offset, asset = res.offset, res.asset_id
        src = self.idx.sources[item.member.part]
        if offset < size:
            with src.open(item.member) as f:
                skip = offset
                while skip:
                    skip -= len(f.read(min(READ, skip)) or b"\x00" * skip)
                while offset < size:
                    data = f.read(min(self.chunk_size, size - offset))
                    if not data:
                        raise PartChanged(f"{item.member.label} ended early while uploading: the part changed "
                                          "since it was hashed; import it again")
                    res = self.tus.patch(url, offset, data)
                    self.progress.sent(res.offset - offset)
                    offset, asset = res.offset, res.asset_id
        if asset is None:
            present = self.api.check([wire.CheckItem(sha256=sha)]).present
            asset = present.get(sha)
            if asset is None:
                raise ProblemError(502, "internal", "The server completed the upload but reports no asset "
                                   "for it", "check the server log")
        return asset, resumed
