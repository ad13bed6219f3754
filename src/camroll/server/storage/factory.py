"""The blob and thumbnail stores that ``Settings.storage`` (``CAMROLL_STORAGE_URL``) names."""

from __future__ import annotations

from typing import TYPE_CHECKING

from camroll.server.storage.base import BlobStore, TempCopies
from camroll.server.storage.s3config import S3Location, make_client
from camroll.server.storage.thumbs import LocalThumbStore, S3ThumbStore, ThumbStore

if TYPE_CHECKING:
    from camroll.server.settings import Settings


def open_stores(settings: Settings) -> tuple[BlobStore, ThumbStore]:
    """The stores for ``settings``; makes no request (``check`` does).  Raises ``StorageConfigError`` for an
    S3 configuration that cannot work (an unknown profile, a malformed endpoint)."""
    from camroll.server.jobs.config import thumbs_dir

    tmp = settings.data_dir / "tmp"
    copies = TempCopies(tmp, settings.local_copy_max)
    location = settings.storage
    if isinstance(location, S3Location):
        from camroll.server.storage.s3 import S3BlobStore

        blobs = S3BlobStore(make_client(), location, copies)
        return blobs, S3ThumbStore(blobs, tmp)
    from camroll.server.storage.local import LocalBlobStore

    return LocalBlobStore(settings.blobs_dir, copies), LocalThumbStore(thumbs_dir(settings.data_dir))


def check(blobs: BlobStore) -> None:
    """Raise ``StorageFailure`` unless the store answers (S3: the bucket lists with these credentials)."""
    probe = getattr(blobs, "check", None)
    if callable(probe):
        probe()
