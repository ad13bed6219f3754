"""The tus Upload-Metadata encoding both sides share."""

from __future__ import annotations

import pytest

from camroll import wire


def test_metadata_round_trip_keeps_unicode_and_commas() -> None:
    meta = {"filename": "Été, plage.jpg", "path": "/home/ana/Фото/Été, plage.jpg", "sha256": "ab" * 32,
            "empty": ""}
    assert wire.decode_upload_metadata(wire.encode_upload_metadata(meta)) == meta


def test_metadata_accepts_key_without_value() -> None:
    assert wire.decode_upload_metadata("is_confidential,filename d29ybGQ=") == {
        "is_confidential": "", "filename": "world"}


@pytest.mark.parametrize("header", ["filename not*base64!", "filename d29y bGQ=", "filename //79"])
def test_bad_metadata_names_the_key(header: str) -> None:
    with pytest.raises(ValueError, match="filename"):
        wire.decode_upload_metadata(header)
