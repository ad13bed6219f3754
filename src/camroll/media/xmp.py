"""The few XMP properties camroll reads (a Motion Photo's declaration), parsed by expat in one
linear pass.

XMP comes from untrusted files, so the parser is bounded three ways: a packet over ``MAX_BYTES`` is
not parsed at all (a real Motion Photo declaration is a few KiB; JPEG's APP1 holds at most 64 KiB),
a document type declaration is refused before any entity in it can expand (XMP never has one; this is
what defusedxml does, without the dependency), and no tree is built, so deep nesting costs no memory.
Names are matched by their local part, whatever the prefix or namespace, as phones write both.
"""

from __future__ import annotations

import xml.parsers.expat
from collections.abc import Callable
from dataclasses import dataclass

MAX_BYTES = 1 << 20

_FLAGS = {"MotionPhoto", "MicroVideo"}


class _Refused(Exception):
    """Raised from a handler to stop expat at a construct camroll does not parse."""


@dataclass(frozen=True)
class MotionXmp:
    """What an XMP packet says about an embedded video (all counted from the end of the file)."""

    flagged: bool = False  # GCamera:MotionPhoto="1" or GCamera:MicroVideo="1"
    container_length: int | None = None  # Container:Item with Item:Semantic="MotionPhoto"
    micro_video_offset: int | None = None  # GCamera:MicroVideoOffset (the older format)

    @property
    def video_length(self) -> int | None:
        return self.container_length if self.container_length is not None else self.micro_video_offset


def _local(name: str) -> str:
    # Without namespace processing (an undeclared prefix is then no error) names are "prefix:local".
    return name.rpartition(":")[2]


def _int(text: str | None) -> int | None:
    text = (text or "").strip()
    return int(text) if text.isdigit() and len(text) <= 18 else None


class _Scanner:
    def __init__(self) -> None:
        self.flagged = False
        self.container_length: int | None = None
        self.micro_offset: int | None = None
        self._stack: list[str] = []
        self._text: list[str] = []
        # Item:Semantic / Item:Length of the Container:Item being read, as attributes or child elements.
        self._item_depth: int | None = None
        self._item: dict[str, str] = {}

    def start(self, name: str, attrs: dict[str, str]) -> None:
        local = _local(name)
        self._stack.append(local)
        self._text = []
        props = {_local(k): v for k, v in attrs.items()}
        if local == "Item" and self._item_depth is None:
            self._item_depth = len(self._stack)
            self._item = {}
        for key, value in props.items():
            self._property(key, value)

    def end(self, name: str) -> None:
        local = self._stack.pop() if self._stack else _local(name)
        self._property(local, "".join(self._text))
        self._text = []
        if self._item_depth is not None and len(self._stack) < self._item_depth:
            if self._item.get("Semantic", "").strip() == "MotionPhoto":
                length = _int(self._item.get("Length"))
                if length is not None:
                    self.container_length = length
            self._item_depth = None

    def data(self, text: str) -> None:
        # Only short texts are property values; a long run of characters is kept no further.
        if sum(map(len, self._text)) < 64:
            self._text.append(text)

    def _property(self, key: str, value: str) -> None:
        if key in _FLAGS and value.strip() == "1":
            self.flagged = True
        elif key == "MicroVideoOffset" and _int(value) is not None:
            self.micro_offset = _int(value)
        elif self._item_depth is not None and key in ("Semantic", "Length") and value.strip():
            self._item[key] = value


class Refused(_Refused):
    """A DTD, entity or element declaration: what XMP never has and an entity bomb needs."""


def _refuse(*_: object) -> int:
    raise Refused


def bounded_parser(start: Callable[[str, dict[str, str]], None], end: Callable[[str], None],
                   data: Callable[[str], None]) -> xml.parsers.expat.XMLParserType:
    """An expat parser with these handlers that raises ``Refused`` at any declaration (shared with the
    agent's XMP sidecar reader)."""
    parser = xml.parsers.expat.ParserCreate()
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = data
    parser.StartDoctypeDeclHandler = _refuse
    parser.EntityDeclHandler = _refuse
    parser.ExternalEntityRefHandler = _refuse
    parser.ElementDeclHandler = _refuse
    return parser


def motion(packet: bytes) -> MotionXmp:
    """The Motion Photo declaration in an XMP packet; an empty one for a packet that is too large,
    malformed or has a DTD (the caller then looks for the video by its bytes alone)."""
    if not packet or len(packet) > MAX_BYTES:
        return MotionXmp()
    scanner = _Scanner()
    parser = bounded_parser(scanner.start, scanner.end, scanner.data)
    try:
        # The packet wrapper's trailing padding and NULs are not XML.
        parser.Parse(packet.rstrip(b"\x00 \t\r\n"), True)
    except _Refused:
        return MotionXmp()
    except (xml.parsers.expat.ExpatError, ValueError):
        # A malformed or cut-off packet: what it said up to the fault still counts (the caller checks
        # that a video really starts where it points).
        pass
    return MotionXmp(scanner.flagged, scanner.container_length, scanner.micro_offset)
