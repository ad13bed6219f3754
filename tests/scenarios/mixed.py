"""A photo folder holding every kind of file that is not simply backed up (issue 8, defect 21)."""

from __future__ import annotations

from pathlib import Path

from support.media import jpeg_bytes, png_bytes, write

# Files left out by choice, by name, with the code 'camroll problems --all' gives them (with exclude = *.png).
LEFT_OUT = {".hidden.jpg": "hidden", "._IMG_0001.jpg": "hidden", ".trashed-1733000000-IMG_0009.jpg": "trashed",
            "shot.png": "excluded"}


def make_folder(photos: Path) -> tuple[Path, Path]:
    """3 good photos, a mode-000 photo, a mode-000 folder holding one, an excluded PNG, two hidden files and
    an Android trash file; returns the locked file and folder (mode 000: restore before clean-up)."""
    for i in range(3):
        write(photos / f"IMG_000{i + 1}.jpg", jpeg_bytes(50 + i))
    write(photos / "shot.png", png_bytes(60))
    for name in (".hidden.jpg", "._IMG_0001.jpg", ".trashed-1733000000-IMG_0009.jpg"):
        write(photos / name, jpeg_bytes(70 + len(name)))
    locked = write(photos / "IMG_0004.jpg", jpeg_bytes(80))
    locked_dir = photos / "private"
    write(locked_dir / "IMG_0005.jpg", jpeg_bytes(81))
    locked.chmod(0)
    locked_dir.chmod(0)
    return locked, locked_dir
