"""How probes run programs and read files, kept behind small seams so tests can point them at a fake
``/`` tree and fake scripts while the real parsing code runs."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

# Probes run while a backup pass decides whether to start; a stuck helper must not stall it.
DEFAULT_TIMEOUT = 3.0


class Runner(Protocol):
    def run(self, argv: Sequence[str], timeout: float = DEFAULT_TIMEOUT) -> tuple[int, str] | None:
        """Run ``argv``; return (returncode, stdout), or None when the program is absent or unusable."""
        ...


class SubprocessRunner:
    """Runs real programs, resolved from ``path`` (default: this process's PATH)."""

    def __init__(self, path: str | None = None) -> None:
        self.path = path

    def run(self, argv: Sequence[str], timeout: float = DEFAULT_TIMEOUT) -> tuple[int, str] | None:
        exe = shutil.which(argv[0], path=self.path)
        if exe is None:
            return None
        env = dict(os.environ)
        # Parsers match English words ("discharging", "connected"); a translated locale would break them.
        env["LC_ALL"] = "C"
        env["LANG"] = "C"
        if self.path is not None:
            env["PATH"] = self.path
        try:
            done = subprocess.run(
                [exe, *argv[1:]],
                capture_output=True,
                text=True,
                errors="replace",
                timeout=timeout,
                env=env,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            # A helper that hangs or cannot start tells us as little as one that is missing.
            return None
        return done.returncode, done.stdout


def read_text(root: Path, rel: str) -> str | None:
    """Stripped contents of ``root/rel``, or None if unreadable (missing, permission denied on Android)."""
    try:
        return (root / rel).read_text(encoding="utf-8", errors="replace").strip()
    except (OSError, ValueError):
        return None


def list_dir(root: Path, rel: str) -> list[Path] | None:
    """Sorted entries of ``root/rel`` (sorted so results do not depend on directory order), or None."""
    try:
        return sorted((root / rel).iterdir())
    except OSError:
        return None
