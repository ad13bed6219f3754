"""The end-of-run audit shared by the reliability proofs: what the agent, the API and the server's data
dir say after a backup, compared with the corpus it backed up.

Every check reads the real thing: the agent's state DB, the API (each original downloaded and hashed),
and the server's database and data dir (blob files, part files, upload rows)."""

from __future__ import annotations

import hashlib
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from support.blobs import stored_keys

from .corpus import Corpus


@dataclass
class Audit:
    files: int = 0  # files in the corpus
    distinct: int = 0  # distinct contents (SHA-256) in the corpus
    assets: int = 0  # assets the API lists for the user
    agent_states: dict[str, int] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)  # corpus contents with no asset
    duplicates: list[str] = field(default_factory=list)  # contents with more than one asset
    unexpected: list[str] = field(default_factory=list)  # assets whose content is not in the corpus
    mismatches: list[str] = field(default_factory=list)  # downloaded original != source bytes
    downloaded_bytes: int = 0
    orphan_blobs: list[str] = field(default_factory=list)  # blob files no asset row points to
    orphan_blob_rows: list[str] = field(default_factory=list)  # blobs rows no asset row points to
    missing_blobs: list[str] = field(default_factory=list)  # asset rows whose blob file is absent
    temp_files: list[str] = field(default_factory=list)  # blob-store temp files left behind
    orphan_parts: list[str] = field(default_factory=list)  # part files without an active upload row
    active_uploads: list[str] = field(default_factory=list)  # upload rows still active after the sweep
    upload_rows: dict[str, int] = field(default_factory=dict)  # upload rows by state (tombstones are fine)
    used_bytes: int = 0  # GET /me
    asset_bytes: int = 0  # sum of the assets' sizes
    payload: int = 0  # sum of the corpus's distinct contents

    @property
    def orphans(self) -> int:
        return (len(self.orphan_blobs) + len(self.orphan_blob_rows) + len(self.temp_files)
                + len(self.orphan_parts) + len(self.active_uploads))

    def problems(self) -> list[str]:
        """Every broken promise, in words; empty when the run proved what it should."""
        out: list[str] = []
        not_backed = {k: v for k, v in self.agent_states.items() if k != "backed_up"}
        if not_backed or sum(self.agent_states.values()) != self.files:
            out.append(f"agent state not all backed_up: {self.agent_states} for {self.files} files")
        for name, items in (("missing", self.missing), ("duplicate", self.duplicates),
                            ("unexpected", self.unexpected), ("corrupt", self.mismatches),
                            ("orphan blob", self.orphan_blobs), ("orphan blob row", self.orphan_blob_rows),
                            ("missing blob", self.missing_blobs), ("blob temp file", self.temp_files),
                            ("orphan part file", self.orphan_parts), ("active upload row", self.active_uploads)):
            if items:
                out.append(f"{len(items)} {name}: {', '.join(items[:5])}")
        if self.assets != self.distinct:
            out.append(f"{self.assets} assets for {self.distinct} distinct files")
        if not (self.used_bytes == self.asset_bytes == self.payload):
            out.append(f"quota used {self.used_bytes} B, assets {self.asset_bytes} B, payload {self.payload} B")
        return out

    def figures(self) -> str:
        return (f"files {self.files}, distinct {self.distinct}, assets {self.assets}, "
                f"downloaded {self.downloaded_bytes:,} B, mismatches {len(self.mismatches)}, "
                f"missing {len(self.missing)}, duplicates {len(self.duplicates)}, orphans {self.orphans} "
                f"(blobs {len(self.orphan_blobs)}, blob rows {len(self.orphan_blob_rows)}, temp "
                f"{len(self.temp_files)}, parts {len(self.orphan_parts)}, active uploads "
                f"{len(self.active_uploads)}), upload rows {self.upload_rows}, quota used "
                f"{self.used_bytes:,} B = assets {self.asset_bytes:,} B, payload {self.payload:,} B")


def _assets(api: httpx.Client) -> list[dict[str, object]]:
    items: list[dict[str, object]] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 1000}
        if cursor:
            params["cursor"] = cursor
        r = api.get("/assets", params=params)
        r.raise_for_status()
        page = r.json()
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            return items


def _download_sha(api: httpx.Client, asset_id: object) -> tuple[str, int]:
    h = hashlib.sha256()
    n = 0
    with api.stream("GET", f"/assets/{asset_id}/original") as r:
        r.raise_for_status()
        for block in r.iter_bytes(1 << 20):
            h.update(block)
            n += len(block)
    return h.hexdigest(), n


def agent_states(state_db: Path) -> dict[str, int]:
    with sqlite3.connect(f"file:{state_db}?mode=ro", uri=True) as con:
        return {str(s): int(n) for s, n in con.execute("SELECT state, count(*) FROM files GROUP BY state")}


def audit(corpus: Corpus, *, api_url: str, token: str, state_db: Path, data_dir: Path) -> Audit:
    """Compare what the server and the agent hold with ``corpus``. Run it after the server's sweep."""
    a = Audit(files=len(corpus.files), distinct=len(corpus.distinct), payload=corpus.payload)
    a.agent_states = agent_states(state_db)
    expected = corpus.distinct
    with httpx.Client(base_url=f"{api_url}/api/v1", headers={"Authorization": f"Bearer {token}"},
                      timeout=60) as api:
        assets = _assets(api)
        a.assets = len(assets)
        by_sha = Counter(str(x["sha256"]) for x in assets)
        a.duplicates = sorted(s for s, n in by_sha.items() if n > 1)
        a.missing = sorted(set(expected) - set(by_sha))
        a.unexpected = sorted(set(by_sha) - set(expected))
        for x in assets:
            got, n = _download_sha(api, x["id"])
            a.downloaded_bytes += n
            if got != x["sha256"] or n != x["size"] or expected.get(got) != n:
                a.mismatches.append(f"asset {x['id']} ({x['filename']}): got {got[:12]}.. {n} B, "
                                    f"listed {str(x['sha256'])[:12]}..")
        a.asset_bytes = sum(int(str(x["size"])) for x in assets)
        me = api.get("/me")
        me.raise_for_status()
        a.used_bytes = int(me.json()["used_bytes"])
    _audit_data_dir(a, data_dir)
    return a


def _audit_data_dir(a: Audit, data_dir: Path) -> None:
    with sqlite3.connect(f"file:{data_dir / 'camroll.db'}?mode=ro", uri=True) as con:
        asset_shas = {str(r[0]) for r in con.execute("SELECT sha256 FROM assets")}
        blob_rows = {str(r[0]) for r in con.execute("SELECT sha256 FROM blobs")}
        uploads = [(str(i), str(s)) for i, s in con.execute("SELECT id, state FROM uploads")]
    a.upload_rows = dict(Counter(s for _, s in uploads))
    active = {i for i, s in uploads if s == "active"}
    a.active_uploads = sorted(active)
    blob_root = data_dir / "blobs"
    blob_files = stored_keys(data_dir)
    a.orphan_blobs = sorted(blob_files - asset_shas)
    a.orphan_blob_rows = sorted(blob_rows - asset_shas)
    a.missing_blobs = sorted(asset_shas - blob_files)
    a.temp_files = sorted(p.name for p in (blob_root / ".tmp").glob("*")) if (blob_root / ".tmp").is_dir() else []
    parts = {p.stem for p in (data_dir / "uploads").glob("*.part")}
    a.orphan_parts = sorted(parts - active)
