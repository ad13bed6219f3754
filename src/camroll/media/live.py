"""Live Photos: a still (HEIC/JPEG) and a short MOV that share Apple's content identifier, shown as
one item. (Motion Photos need no pairing: the video is inside the JPEG, see ``MediaInfo.motion_photo``.)"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from camroll.media.metadata import MediaInfo

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class LivePair(Generic[K]):
    content_id: str
    still: K
    video: K


def pair_live_photos(items: Iterable[tuple[K, MediaInfo]]) -> list[LivePair[K]]:
    """Pairs of (still, video) keys sharing a Live Photo content identifier, grouped by identifier
    in the order each identifier's first still was given. A still whose video is missing (or a video
    whose still is) is left unpaired; if several stills share one video (an edited copy, say), each
    is paired with it, and of several videos with one identifier the first given wins."""
    stills: dict[str, list[K]] = {}
    videos: dict[str, K] = {}
    for key, info in items:
        content_id = info.live_photo_id
        if not content_id:
            continue
        if info.kind == "video":
            videos.setdefault(content_id, key)
        elif info.kind == "image":
            stills.setdefault(content_id, []).append(key)
    return [
        LivePair(content_id, still, videos[content_id])
        for content_id, keys in stills.items()
        if content_id in videos
        for still in keys
    ]
