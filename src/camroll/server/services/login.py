"""``POST /auth/login`` with its limits: back-off per account and per client address, and a bounded
number of password verifications at once (the rules are in server/throttles.py)."""

from __future__ import annotations

import anyio.to_thread

from camroll import wire
from camroll.server.context import Context
from camroll.server.problems import ProblemError
from camroll.server.ratelimit import retry_after
from camroll.server.services import auth
from camroll.server.throttles import MAX_LOGINS_WAITING


def _too_many(wait: float) -> ProblemError:
    return ProblemError(429, "rate_limited",
                        f"Too many wrong passwords; logins are paused for {retry_after(wait)} s.",
                        "Wait that long, then check the username and password; an admin can reset a password "
                        "with 'camroll admin user'.", headers={"Retry-After": retry_after(wait)})


def _waits(ctx: Context, account: str, address: str | None) -> float:
    t = ctx.throttles
    return max(t.login_accounts.wait(account), t.login_addresses.wait(address) if address else 0.0)


def _attempt(ctx: Context, username: str, password: str, address: str | None) -> wire.LoginResponse:
    account = username.casefold()
    # Checked again with the verification slot held: logins queued behind failing ones are refused here.
    if wait := _waits(ctx, account, address):
        raise _too_many(wait)
    t = ctx.throttles
    try:
        response = auth.login(ctx, username, password)
    except ProblemError as exc:
        if exc.status == 401:
            t.login_accounts.failed(account)
            if address:
                t.login_addresses.failed(address)
        raise
    # The account starts afresh; the address does not, or one good account would reset its guesses on others.
    t.login_accounts.succeeded(account)
    return response


async def login(ctx: Context, username: str, password: str, address: str | None) -> wire.LoginResponse:
    """Log in, unless this account or address must wait (429) or too many logins already queue (503)."""
    if wait := _waits(ctx, username.casefold(), address):
        raise _too_many(wait)
    limiter = ctx.throttles.argon2()
    if limiter.statistics().tasks_waiting >= MAX_LOGINS_WAITING:
        raise ProblemError(503, "busy", "The server is checking many logins at once.",
                           "Try again in a few seconds.", headers={"Retry-After": "2"})
    return await anyio.to_thread.run_sync(_attempt, ctx, username, password, address, limiter=limiter)
