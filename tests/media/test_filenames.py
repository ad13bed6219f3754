"""Capture times from file names: the patterns phones and apps write, and look-alikes that are not."""

from __future__ import annotations

import datetime as dt

import pytest

from camroll.media.filenames import capture_time

UTC = dt.UTC


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("IMG_20240101_123456.jpg", dt.datetime(2024, 1, 1, 12, 34, 56)),
        ("IMG_20240101_123456_1.jpg", dt.datetime(2024, 1, 1, 12, 34, 56)),
        ("VID_20231231_235959.mp4", dt.datetime(2023, 12, 31, 23, 59, 59)),
        ("PXL_20240101_123456789.jpg", dt.datetime(2024, 1, 1, 12, 34, 56, 789000, tzinfo=UTC)),
        ("PXL_20240101_123456789.MP.jpg", dt.datetime(2024, 1, 1, 12, 34, 56, 789000, tzinfo=UTC)),
        ("Screenshot_2024-01-01-12-34-56.png", dt.datetime(2024, 1, 1, 12, 34, 56)),
        ("Screenshot_20240920-102237.png", dt.datetime(2024, 9, 20, 10, 22, 37)),
        ("Screenshot 2024-01-01 at 12.34.56.png", dt.datetime(2024, 1, 1, 12, 34, 56)),
        ("signal-2024-01-01-123456.jpg", dt.datetime(2024, 1, 1, 12, 34, 56)),
        ("signal-2024-01-01-12-34-56-789.jpg", dt.datetime(2024, 1, 1, 12, 34, 56, 789000)),
        ("IMG-20240101-WA0001.jpg", dt.datetime(2024, 1, 1)),
        ("VID-20240101-WA0012.mp4", dt.datetime(2024, 1, 1)),
        ("20240101_123456.jpg", dt.datetime(2024, 1, 1, 12, 34, 56)),
        ("20141223_043608.mp4", dt.datetime(2014, 12, 23, 4, 36, 8)),
    ],
)
def test_known_patterns(name: str, expected: dt.datetime) -> None:
    assert capture_time(name) == expected


@pytest.mark.parametrize(
    "name",
    [
        "IMG_0001.JPG",  # a counter, not a date
        "DSC01812.JPG",
        "IMG_20241301_123456.jpg",  # month 13
        "IMG_20240230_120000.jpg",  # 30 February
        "IMG_20240101_256000.jpg",  # hour 25
        "photo-123420240101_123456.jpg",  # digits glued to the date are not a date
        "IMG-20241340-WA0001.jpg",
        "notes.txt",
    ],
)
def test_not_dates(name: str) -> None:
    assert capture_time(name) is None
