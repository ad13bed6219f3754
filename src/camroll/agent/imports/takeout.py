"""Google Takeout's puzzle, solved without I/O: which JSON sidecar belongs to which photo or video, which
folders are albums, which files are one photo seen twice.

Every part of an export is indexed first (a sidecar may sit in another part than its photo: parts are
merged by the path *inside* them), then each folder is matched, most specific matcher first:

1. exact: ``<name>.json`` or ``<name>.supplemental-metadata.json``, or any prefix of
   "supplemental-metadata" (``.supplemental-metad.json``, ``.suppl.json``, ``.s.json``);
2. counter: ``IMG(1).jpg`` <-> ``IMG.jpg(1).json`` / ``IMG.jpg.supplemental-metadata(1).json``;
3. truncated: names cut to 46 characters before ``.json`` (45-47 accepted), or a media name cut itself;
4. edited: ``IMG-edited.jpg`` (and its translations) shares ``IMG.jpg``'s sidecar;
5. live partner: the video half of a Live Photo uses its still's sidecar when it has none.

Folders: a name ending in a year ("Photos from 2023", "Fotos von 2023", "Photos de 2023") is a year
folder; any other folder holding an album metadata JSON with a title is an album.  A photo in an album
folder with the same name and size as one in a year folder is that photo (one item, album memberships),
as Google exports it in both.  Two photos in *different year folders* are never folded by name: only
the server's SHA-256 decides they are the same.
"""

from __future__ import annotations

import posixpath
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum

from camroll.agent.imports.archive import Member
from camroll.agent.imports.sidecar import AlbumMeta, NotUsable, Parsed, Sidecar
from camroll.media.types import SUPPORTED

MEDIA_EXTENSIONS = frozenset(e for t in SUPPORTED for e in t.extensions)
# The video of an old-style Motion Photo, exported next to its JPEG; the JPEG carries the video too.
MOTION_EXTENSIONS = frozenset({".mp", ".mp~2"})
_STILLS = frozenset({".jpg", ".jpeg", ".heic", ".heif", ".hif"})
_VIDEOS = frozenset({".mov", ".mp4", ".qt"})
# Google's "-edited" suffix in the languages Takeout is exported in.
EDITED_SUFFIXES = ("-edited", "-modifié", "-modifie", "-bearbeitet", "-modificato", "-editado", "-bewerkt",
                   "-redigerad", "-muokattu", "-redigeret", "-edytowane", "-upravené", "-編集済み", "-编辑")
SUPPLEMENTAL = "supplemental-metadata"
# Takeout cuts the part of a JSON's name before ".json" at 46 characters (sometimes one fewer or more).
CUT = 46
_COUNTER = re.compile(r"\((\d{1,5})\)$")
_YEAR = re.compile(r"^\D*?(\d{4})$")


class MatchKind(Enum):
    EXACT = "exact"
    SUPPLEMENTAL = "supplemental"
    COUNTER = "counter"
    TRUNCATED = "truncated"
    EDITED = "edited"
    LIVE_PARTNER = "live_partner"


class SkipReason(Enum):
    NOT_MEDIA = "not_media"
    TRASHED = "trashed"
    MOTION_PART = "motion_part"

    @property
    def sentence(self) -> str:
        return {
            SkipReason.NOT_MEDIA: "not a photo or video (by its name)",
            SkipReason.TRASHED: "it was in Google Photos' trash",
            SkipReason.MOTION_PART: "the video of a Motion Photo whose JPEG already contains it",
        }[self]


class FolderKind(Enum):
    YEAR = "year"
    ALBUM = "album"
    OTHER = "other"


@dataclass(frozen=True)
class JsonName:
    """What a sidecar's file name says about its photo: ``base`` (perhaps cut), its ``(n)`` counter,
    whether a supplemental-metadata suffix was there, and whether the name looks cut."""

    base: str
    counter: int | None
    supplemental: bool
    cut: bool


def parse_json_name(name: str) -> JsonName | None:
    if not name.lower().endswith(".json"):
        return None
    s = name[:-5]
    counter = None
    if m := _COUNTER.search(s):
        counter, s = int(m.group(1)), s[: m.start()]
    cut = len(s) >= CUT - 1
    supplemental = False
    if "." in s:
        head, last = s.rsplit(".", 1)
        if last and SUPPLEMENTAL.startswith(last.lower()) and "." in head:
            s, supplemental = head, True
    return JsonName(s, counter, supplemental, cut)


@dataclass(frozen=True)
class MediaName:
    name: str
    title: str  # the name without its (n) counter
    counter: int | None
    original: str | None  # for an edited copy, the original's title

    @property
    def stem(self) -> str:
        return posixpath.splitext(self.title)[0]


def parse_media_name(name: str) -> MediaName:
    stem, ext = posixpath.splitext(name)
    counter = None
    if m := _COUNTER.search(stem):
        counter, stem = int(m.group(1)), stem[: m.start()]
    original = None
    low = stem.lower()
    for suffix in EDITED_SUFFIXES:
        if low.endswith(suffix) and len(stem) > len(suffix):
            original = stem[: -len(suffix)] + ext
            break
    return MediaName(name, stem + ext, counter, original)


def folder_kind(dir_name: str, album_title: str | None) -> FolderKind:
    base = posixpath.basename(dir_name)
    if (m := _YEAR.match(base)) and 1800 <= int(m.group(1)) <= 2100:
        return FolderKind.YEAR
    return FolderKind.ALBUM if album_title else FolderKind.OTHER


@dataclass
class Item:
    """One photo or video to import."""

    member: Member
    copies: list[Member] = field(default_factory=list)
    sidecar: Sidecar | None = None
    sidecar_name: str | None = None
    match: MatchKind | None = None
    albums: list[str] = field(default_factory=list)
    live_partner: str | None = None
    edited_of: str | None = None
    motion_part: str | None = None

    @property
    def name(self) -> str:
        return self.member.name


@dataclass(frozen=True)
class Skipped:
    member: Member
    reason: SkipReason


@dataclass(frozen=True)
class UnusedJson:
    member: Member
    why: str


@dataclass
class Plan:
    items: list[Item]
    albums: dict[str, str]  # folder -> album title
    skipped: list[Skipped]
    unused_json: list[UnusedJson]

    @property
    def without_sidecar(self) -> list[Item]:
        return [i for i in self.items if i.sidecar is None]


def _find(media: MediaName, sidecars: list[tuple[JsonName, Member]]) -> tuple[Member, MatchKind] | None:
    """The best sidecar for ``media`` among one folder's, by the matchers above (edited excluded)."""
    # Exact: the whole name, counter included ("IMG(1).jpg.json").
    for j, m in sidecars:
        if j.counter is None and j.base == media.name:
            return m, MatchKind.SUPPLEMENTAL if j.supplemental else MatchKind.EXACT
    # The counter moved behind the extension.
    for j, m in sidecars:
        if j.counter == media.counter and j.base == media.title:
            if media.counter is not None:
                return m, MatchKind.COUNTER
            return m, MatchKind.SUPPLEMENTAL if j.supplemental else MatchKind.EXACT
    # Cut names: the JSON's, or the media's own (then the JSON's base may be one character longer).
    best: tuple[int, Member] | None = None
    for j, m in sidecars:
        if j.counter != media.counter or not j.base:
            continue
        fits = (j.cut and media.title.startswith(j.base)) or (
            len(media.title) >= CUT - 1 and j.base.startswith(media.stem))
        if fits and (best is None or len(j.base) > best[0]):
            best = (len(j.base), m)
    if best is not None:
        return best[1], MatchKind.TRUNCATED
    return None


def plan(members: Iterable[Member], jsons: Mapping[str, Parsed]) -> Plan:
    """Match ``members`` (all parts' members; the same name in two parts is one file) using ``jsons``:
    the parsed content of each ``.json`` member, keyed by member name (missing: treated as unusable)."""
    by_name: dict[str, Member] = {}
    copies: dict[str, list[Member]] = defaultdict(list)
    for m in members:
        if m.name in by_name:
            copies[m.name].append(m)
        else:
            by_name[m.name] = m
    dirs: dict[str, list[Member]] = defaultdict(list)
    for m in by_name.values():
        dirs[m.dir].append(m)

    skipped: list[Skipped] = []
    unused: list[UnusedJson] = []
    albums: dict[str, str] = {}
    items: list[Item] = []
    kinds: dict[str, FolderKind] = {}
    for d in sorted(dirs):
        files = sorted(dirs[d], key=lambda m: m.base)
        sidecars: list[tuple[JsonName, Member]] = []
        album_title = None
        media: list[Member] = []
        for m in files:
            ext = posixpath.splitext(m.base)[1].lower()
            if ext == ".json":
                parsed = jsons.get(m.name, NotUsable("not read"))
                jn = parse_json_name(m.base)
                if isinstance(parsed, Sidecar) and jn is not None:
                    sidecars.append((jn, m))
                elif isinstance(parsed, AlbumMeta):
                    album_title = album_title or parsed.title
                else:
                    unused.append(UnusedJson(m, parsed.why if isinstance(parsed, NotUsable) else "unusable"))
            elif ext in MEDIA_EXTENSIONS or ext in MOTION_EXTENSIONS:
                media.append(m)
            else:
                skipped.append(Skipped(m, SkipReason.NOT_MEDIA))
        kinds[d] = folder_kind(d, album_title)
        if kinds[d] is FolderKind.ALBUM and album_title:
            albums[d] = album_title

        stems: dict[str, list[Member]] = defaultdict(list)
        for m in media:
            stems[posixpath.splitext(m.base)[0].lower()].append(m)
        used: set[str] = set()
        folder_items: dict[str, Item] = {}
        for m in media:
            ext = posixpath.splitext(m.base)[1].lower()
            if ext in MOTION_EXTENSIONS:
                still = next((o for o in stems[posixpath.splitext(m.base)[0].lower()]
                              if posixpath.splitext(o.base)[1].lower() in _STILLS), None)
                if still is not None:
                    skipped.append(Skipped(m, SkipReason.MOTION_PART))
                    continue
            name = parse_media_name(m.base)
            item = Item(m, copies=list(copies.get(m.name, ())))
            found = _find(name, sidecars)
            if found is None and name.original is not None:
                orig = _find(parse_media_name(name.original), sidecars)
                if orig is not None:
                    found = (orig[0], MatchKind.EDITED)
                item.edited_of = posixpath.join(d, name.original) if d else name.original
            elif name.original is not None:
                item.edited_of = posixpath.join(d, name.original) if d else name.original
            if found is not None:
                sc = jsons[found[0].name]
                assert isinstance(sc, Sidecar)
                item.sidecar, item.sidecar_name, item.match = sc, found[0].name, found[1]
                used.add(found[0].name)
            folder_items[m.base] = item
        # Motion parts and Live Photo halves, now that every item of the folder exists.
        for s in skipped:
            if s.reason is SkipReason.MOTION_PART and s.member.dir == d:
                stem = posixpath.splitext(s.member.base)[0].lower()
                for it in folder_items.values():
                    if posixpath.splitext(it.member.base)[0].lower() == stem:
                        it.motion_part = s.member.name
        for group in stems.values():
            stills = [folder_items[m.base] for m in group
                      if m.base in folder_items and posixpath.splitext(m.base)[1].lower() in _STILLS]
            videos = [folder_items[m.base] for m in group
                      if m.base in folder_items and posixpath.splitext(m.base)[1].lower() in _VIDEOS]
            if len(stills) == 1 and len(videos) == 1:
                photo, clip = stills[0], videos[0]
                photo.live_partner, clip.live_partner = clip.name, photo.name
                if clip.sidecar is None and photo.sidecar is not None:
                    clip.sidecar, clip.sidecar_name = photo.sidecar, photo.sidecar_name
                    clip.match = MatchKind.LIVE_PARTNER
        for _j, m in sidecars:
            if m.name not in used:
                unused.append(UnusedJson(m, "a photo's sidecar whose photo is not in the export"))
        items.extend(folder_items.values())

    # Album copies of a year-folder photo (same name and size) are that photo.
    primary: dict[tuple[str, int], Item] = {}
    for it in items:
        if kinds[it.member.dir] is not FolderKind.ALBUM:
            primary.setdefault((it.member.base, it.member.size), it)
    result: list[Item] = []
    for it in items:
        title = albums.get(it.member.dir)
        if title is None:
            result.append(it)
            continue
        main = primary.get((it.member.base, it.member.size))
        if main is None:
            it.albums.append(title)
            result.append(it)
            continue
        main.copies.append(it.member)
        if title not in main.albums:
            main.albums.append(title)
        if main.sidecar is None and it.sidecar is not None:
            main.sidecar, main.sidecar_name, main.match = it.sidecar, it.sidecar_name, it.match
    kept: list[Item] = []
    for it in result:
        if it.sidecar is not None and it.sidecar.trashed:
            skipped.append(Skipped(it.member, SkipReason.TRASHED))
        else:
            kept.append(it)
    return Plan(kept, albums, skipped, unused)
