"""``camroll import folder``: a plain export (iCloud, Amazon Photos, OneDrive, Dropbox, Flickr, a photo
manager's folder) with optional XMP sidecars, planned into the same items as a Takeout import.

A sidecar belongs to the file of the same name with ``.xmp`` appended (``IMG_1.JPG.xmp``: Lightroom,
darktable) or in place of the extension (``IMG_1.xmp``: Adobe Bridge, Apple Photos' export); both halves of
a Live Photo share ``IMG_1.xmp``.  Names are matched case-insensitively in one folder.  With
``albums_from_folders`` every file's folder (below the top of the export) becomes an album of that name,
as OneDrive, Dropbox and Amazon exports keep albums as folders.  Pure: members and parsed sidecars in, a
``Plan`` out.
"""

from __future__ import annotations

import posixpath
from collections import defaultdict
from collections.abc import Iterable, Mapping

from camroll.agent.imports.archive import Member
from camroll.agent.imports.sidecar import Sidecar
from camroll.agent.imports.takeout import (
    MEDIA_EXTENSIONS,
    MatchKind,
    Plan,
    Skipped,
    SkipReason,
    UnusedJson,
)
from camroll.agent.imports.takeout import Item as PlanItem

SIDECAR_EXT = ".xmp"


def _ext(name: str) -> str:
    return posixpath.splitext(name)[1].lower()


def plan(members: Iterable[Member], xmps: Mapping[str, Sidecar | None], *, albums_from_folders: bool) -> Plan:
    """Items for every photo and video among ``members``; ``xmps``: each ``.xmp`` member's parsed content
    by member name (None: not readable XMP)."""
    by_dir: dict[str, list[Member]] = defaultdict(list)
    seen: set[str] = set()
    for m in members:
        if m.name not in seen:  # the same name in two parts is one file
            seen.add(m.name)
            by_dir[m.dir].append(m)
    items: list[PlanItem] = []
    skipped: list[Skipped] = []
    unused: list[UnusedJson] = []
    albums: dict[str, str] = {}
    for d in sorted(by_dir):
        files = sorted(by_dir[d], key=lambda m: m.base)
        sidecars = {m.base.lower(): m for m in files if _ext(m.base) == SIDECAR_EXT}
        used: set[str] = set()
        album = posixpath.basename(d) if albums_from_folders and d not in ("", ".") else None
        if album:
            albums[d] = album
        for m in files:
            ext = _ext(m.base)
            if ext == SIDECAR_EXT:
                continue
            if m.base.startswith("."):
                continue  # macOS's ._ resource forks and .DS_Store: never photos
            if ext not in MEDIA_EXTENSIONS:
                skipped.append(Skipped(m, SkipReason.NOT_MEDIA))
                continue
            stem = posixpath.splitext(m.base)[0].lower()
            xmp = sidecars.get(m.base.lower() + SIDECAR_EXT) or sidecars.get(stem + SIDECAR_EXT)
            item = PlanItem(m, albums=[album] if album else [])
            if xmp is not None:
                used.add(xmp.base.lower())
                parsed = xmps.get(xmp.name)
                if parsed is not None:
                    item.sidecar, item.sidecar_name, item.match = parsed, xmp.name, MatchKind.EXACT
            items.append(item)
        for key, m in sidecars.items():
            if key not in used:
                unused.append(UnusedJson(m, "an XMP sidecar without its photo"))
            elif xmps.get(m.name) is None:
                unused.append(UnusedJson(m, "not XMP camroll can read (or it says nothing camroll uses)"))
    return Plan(items, albums, skipped, unused)
