"""Fixtures for camroll.media tests: every file is a real encoder's output, made at test time."""

from __future__ import annotations

import os

import pytest

from camroll.media import tools


@pytest.fixture
def ffmpeg() -> None:
    """Video tests need ffprobe and ffmpeg; without them they are skipped on a developer machine and
    fail in CI (where .ci/run installs ffmpeg), so a broken CI image cannot pass silently."""
    if tools.available():
        return
    reason = "ffprobe not found: install ffmpeg (apt-get install ffmpeg)"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)
