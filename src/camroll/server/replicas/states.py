"""The typed states and reasons of a blob's copy on a replica, and of scrub's findings."""

from __future__ import annotations

import enum

from camroll.server.storage.base import (
    StorageAccessDenied,
    StorageBucketMissing,
    StorageFailure,
    StorageMisconfigured,
    StorageTimeout,
    StorageUnavailable,
    StorageUnreachable,
)


class CopyState(enum.StrEnum):
    PENDING = "pending"    # not copied yet (new, or to be copied again)
    COPIED = "copied"      # the replica acknowledged the whole object, of the right size
    VERIFIED = "verified"  # its bytes were proven to hash to the key (provider SHA-256 or read back)
    FAILED = "failed"      # the last attempt failed: ``reason``; tried again at ``retry_at``


class Reason(enum.StrEnum):
    UNREACHABLE = "unreachable"
    TIMEOUT = "timeout"
    UNAVAILABLE = "unavailable"
    ACCESS_DENIED = "access_denied"
    BUCKET_MISSING = "bucket_missing"
    MISCONFIGURED = "misconfigured"
    NO_SPACE = "no_space"
    PRIMARY_MISSING = "primary_missing"   # the primary store has lost the blob: scrub repairs it
    PRIMARY_CORRUPT = "primary_corrupt"   # the primary's bytes no longer hash right: nothing copied
    COPY_CORRUPT = "copy_corrupt"         # the replica kept other bytes than were sent
    OTHER = "other"


def reason_of(exc: StorageFailure) -> Reason:
    from camroll.server.replicas.folder import NoSpace

    for cls, reason in ((NoSpace, Reason.NO_SPACE), (StorageUnreachable, Reason.UNREACHABLE),
                        (StorageTimeout, Reason.TIMEOUT), (StorageUnavailable, Reason.UNAVAILABLE),
                        (StorageAccessDenied, Reason.ACCESS_DENIED), (StorageBucketMissing, Reason.BUCKET_MISSING),
                        (StorageMisconfigured, Reason.MISCONFIGURED)):
        if isinstance(exc, cls):
            return reason
    if "full" in exc.problem.lower():
        return Reason.NO_SPACE
    return Reason.OTHER


class Problem(enum.StrEnum):
    """What scrub found wrong with a copy."""

    MISSING = "missing"
    TRUNCATED = "truncated"   # shorter than the blob
    ALTERED = "altered"       # the right size (or longer) but other bytes
    UNREADABLE = "unreadable"  # the store answered, but reading the bytes failed


class Action(enum.StrEnum):
    REPAIRED = "repaired"      # the primary's copy was replaced by a replica's copy that hashes right
    RECOPIED = "recopied"      # the replica's copy was replaced from the primary
    UNREPAIRED = "unrepaired"  # no good copy anywhere to repair it from (yet)


PRIMARY = "primary"
