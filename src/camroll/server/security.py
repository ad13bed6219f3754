"""Password hashing and bearer tokens.  The database keeps only hashes of either."""

from __future__ import annotations

import hashlib
import secrets
import threading
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from argon2 import PasswordHasher

SESSION_PREFIX = "crs_"
DEVICE_PREFIX = "crd_"


# Each hash or verification holds 19 MiB while it runs: bound how many run at once in this process.
ARGON2_AT_ONCE = 2
_argon2_slots = threading.BoundedSemaphore(ARGON2_AT_ONCE)


@lru_cache(maxsize=1)
def _hasher() -> PasswordHasher:
    from argon2 import PasswordHasher

    # argon2id with OWASP's recommended minimum (19 MiB, 2 passes, 1 lane) rather than argon2-cffi's
    # default 64 MiB: every login would otherwise lift the server's memory by 64 MB, which matters on
    # the small NAS and Pi boxes camroll runs on.  Hashes carry their parameters, so hashes made with
    # other settings still verify.
    return PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


def hash_password(password: str) -> str:
    with _argon2_slots:
        return _hasher().hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    from argon2.exceptions import InvalidHashError, VerificationError

    try:
        with _argon2_slots:
            return _hasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@lru_cache(maxsize=1)
def dummy_hash() -> str:
    """A hash to verify against when the user does not exist, so timing does not reveal usernames."""
    return hash_password(secrets.token_urlsafe(16))


def new_token(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    # Tokens carry 256 random bits, so a fast unsalted hash is enough: nobody can brute-force them.
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
