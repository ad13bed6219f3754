"""A seeded camera roll for the reliability proofs: photos, videos, duplicates and files large enough
to need several upload requests.

Everything is derived from the seed, so a failing run can be replayed on the same bytes."""

from __future__ import annotations

import hashlib
import io
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

MIB = 1024 * 1024
FOLDERS = ("DCIM/Camera", "Pictures/WhatsApp", "Download")
_FTYP = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"


@dataclass(frozen=True)
class CorpusFile:
    """One file of the corpus; ``dup_of`` names the file whose bytes it copies (another folder)."""

    rel: str  # relative to the corpus root, e.g. "DCIM/Camera/IMG_0007.jpg"
    size: int
    sha256: str
    dup_of: str | None = None


@dataclass(frozen=True)
class Corpus:
    root: Path
    files: tuple[CorpusFile, ...]

    @property
    def distinct(self) -> dict[str, int]:
        """SHA-256 -> size of every distinct content."""
        return {f.sha256: f.size for f in self.files}

    @property
    def payload(self) -> int:
        """Bytes a backup must store: the sum of the distinct contents' sizes."""
        return sum(self.distinct.values())

    def folders(self) -> list[Path]:
        return [self.root / f for f in FOLDERS]


def _jpeg(rng: random.Random, side: int) -> bytes:
    # Noise does not compress: the size follows the pixel count, and every file is distinct.
    img = Image.frombytes("RGB", (side, side * 3 // 4), rng.randbytes(side * (side * 3 // 4) * 3))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=rng.choice((80, 90, 95)))
    return buf.getvalue()


def _png(rng: random.Random) -> bytes:
    w, h = rng.randrange(64, 200), rng.randrange(64, 200)
    img = Image.frombytes("RGB", (w, h), rng.randbytes(w * h * 3))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _mp4(rng: random.Random, size: int) -> bytes:
    # An ISO-BMFF ftyp box then incompressible bytes: recognised as a video from its bytes.
    return _FTYP + rng.randbytes(size - len(_FTYP))


def make_corpus(root: Path, n_files: int, *, seed: int, large_files: int = 4,
                large_size: int = 5 * MIB) -> Corpus:
    """Write ``n_files`` files under ``root`` (in :data:`FOLDERS`), about 15% of them copies of another
    file in a different folder, and ``large_files`` videos of ``large_size`` bytes or so."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    files: list[CorpusFile] = []
    originals: list[CorpusFile] = []
    n_dups = max(2, n_files * 15 // 100)
    n_large = min(large_files, n_files - n_dups)
    kinds = ["large"] * n_large + ["dup"] * n_dups
    kinds += [rng.choices(("jpeg", "png", "video"), (75, 10, 15))[0] for _ in range(n_files - len(kinds))]
    # Originals in a seeded order (large videos spread among the photos), each duplicate after
    # at least two originals (each copies an earlier file).
    order = [k for k in kinds if k != "dup"]
    rng.shuffle(order)
    for _ in range(n_dups):
        order.insert(rng.randrange(2, len(order) + 1), "dup")
    for i, kind in enumerate(order):
        folder = FOLDERS[i % len(FOLDERS)]
        if kind == "dup" and originals:
            src = rng.choice(originals)
            other = [f for f in FOLDERS if not src.rel.startswith(f + "/")]
            rel = f"{rng.choice(other)}/copy_{i:04d}_{Path(src.rel).name}"
            dest = root / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / src.rel, dest)
            files.append(CorpusFile(rel, src.size, src.sha256, dup_of=src.rel))
            continue
        if kind == "large":
            data, name = _mp4(rng, large_size + rng.randrange(0, MIB)), f"VID_{i:04d}.mp4"
        elif kind == "video":
            data, name = _mp4(rng, rng.randrange(200_000, 2 * MIB)), f"VID_{i:04d}.mp4"
        elif kind == "png":
            data, name = _png(rng), f"Screenshot_{i:04d}.png"
        else:
            data, name = _jpeg(rng, rng.randrange(96, 400)), f"IMG_{i:04d}.jpg"
        rel = f"{folder}/{name}"
        dest = root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
        f = CorpusFile(rel, len(data), hashlib.sha256(data).hexdigest())
        files.append(f)
        originals.append(f)
    # Mtimes a little in the past, so no pass holds a file back as "still being written".
    for i, f in enumerate(files):
        os.utime(root / f.rel, ns=(1_600_000_000_000_000_000 + i * 60_000_000_000,) * 2)
    return Corpus(root, tuple(files))
