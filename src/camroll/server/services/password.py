"""``POST /me/password``: changing the signed-in user's password under the login limits.

The current password is verified like a login (the per-account back-off, a slot of the argon2 limiter,
503 when too many wait for one) and outside any transaction: argon2 takes tens of milliseconds and
19 MiB, and a transaction would hold SQLite's write lock, stalling every upload, for all of it."""

from __future__ import annotations

import anyio.to_thread
from sqlalchemy import delete

from camroll.server import security
from camroll.server.context import Context
from camroll.server.models import SessionToken, User
from camroll.server.problems import ProblemError
from camroll.server.ratelimit import retry_after
from camroll.server.services.auth import Principal
from camroll.server.throttles import MAX_LOGINS_WAITING

MIN_PASSWORD_LENGTH = 8


def _too_many(wait: float) -> ProblemError:
    return ProblemError(429, "rate_limited", f"Too many wrong passwords; try again in {retry_after(wait)} s.",
                        "Wait, then type the password you logged in with.",
                        headers={"Retry-After": retry_after(wait)})


def _wrong() -> ProblemError:
    return ProblemError(403, "forbidden", "The current password is wrong; nothing was changed.",
                        "Type the password you logged in with.")


async def change(ctx: Context, who: Principal, old: str, new: str, keep_session_hash: str) -> None:
    """Set ``who``'s password to ``new`` if ``old`` is the current one; every other session of the user
    ends (the one whose token hash is ``keep_session_hash`` stays), device tokens keep working."""
    if wait := ctx.throttles.login_accounts.wait(who.username.casefold()):
        raise _too_many(wait)
    if len(new) < MIN_PASSWORD_LENGTH:
        raise ProblemError(400, "bad_request",
                           f"The new password has {len(new)} characters; it needs at least "
                           f"{MIN_PASSWORD_LENGTH}.", f"Choose a password of {MIN_PASSWORD_LENGTH} or more characters.")
    limiter = ctx.throttles.argon2()
    if limiter.statistics().tasks_waiting >= MAX_LOGINS_WAITING:
        raise ProblemError(503, "busy", "The server is checking many passwords at once.",
                           "Try again in a few seconds.", headers={"Retry-After": "2"})
    await anyio.to_thread.run_sync(_change, ctx, who, old, new, keep_session_hash, limiter=limiter)


def _change(ctx: Context, who: Principal, old: str, new: str, keep_session_hash: str) -> None:
    account = who.username.casefold()
    # Checked again with the verification slot held: changes queued behind failing ones are refused here.
    if wait := ctx.throttles.login_accounts.wait(account):
        raise _too_many(wait)
    with ctx.db() as db:
        user = db.get(User, who.user_id)
        stored = user.password_hash if user is not None else None
    if stored is None or not security.verify_password(stored, old):
        ctx.throttles.login_accounts.failed(account)
        raise _wrong()
    new_hash = security.hash_password(new)
    with ctx.db() as db:
        user = db.get(User, who.user_id)
        if user is None or user.password_hash != stored:
            # Changed (or reset by an admin) while this request verified the old one.
            raise ProblemError(409, "conflict", "The password was changed by another request meanwhile; "
                               "nothing was changed.", "Type the current password and try again.")
        user.password_hash = new_hash
        db.execute(delete(SessionToken).where(SessionToken.user_id == who.user_id,
                                              SessionToken.token_hash != keep_session_hash))
