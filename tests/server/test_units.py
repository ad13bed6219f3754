from __future__ import annotations

import pytest

from camroll.units import format_size, parse_size


@pytest.mark.parametrize(("text", "want"), [
    ("15GB", 15 * 10**9), ("500MiB", 500 * 2**20), ("1.5 TB", 1_500_000_000_000), ("0", 0),
    ("1024", 1024), ("10k", 10_000), ("2 gib", 2 * 2**30), (" 3 MB ", 3_000_000), (".5GB", 500_000_000),
])
def test_parse_size(text: str, want: int) -> None:
    assert parse_size(text) == want


@pytest.mark.parametrize("text", ["", "GB", "15 GG", "-1GB", "1e3", "ten"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r"e\.g\. 15GB"):
        parse_size(text)


@pytest.mark.parametrize(("n", "want"), [
    (0, "0 B"), (999, "999 B"), (1000, "1.0 kB"), (300 * 10**6, "300.0 MB"), (14_900_000_000, "14.9 GB"),
    (15 * 10**9, "15.0 GB"), (999_999_999, "1.0 GB"),
])
def test_format_size(n: int, want: str) -> None:
    assert format_size(n) == want
