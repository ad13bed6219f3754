"""The caller's own notification URLs (backup alerts)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from camroll import wire
from camroll.server.api.deps import Caller, Ctx, PathId
from camroll.server.problems import ProblemError
from camroll.server.ratelimit import retry_after
from camroll.server.services import notify

router = APIRouter()


@router.get("/me/notifications", response_model=list[wire.NotificationTarget])
def list_targets(ctx: Ctx, who: Caller) -> list[wire.NotificationTarget]:
    return notify.targets(ctx, who.user_id)


@router.post("/me/notifications", response_model=wire.NotificationTarget, status_code=201)
def add_target(ctx: Ctx, who: Caller, body: wire.NotificationTargetCreate) -> wire.NotificationTarget:
    return notify.add(ctx, who.user_id, body.url)


@router.delete("/me/notifications/{target_id}", status_code=204)
def remove_target(ctx: Ctx, who: Caller, target_id: PathId) -> Response:
    notify.remove(ctx, who.user_id, target_id)
    return Response(status_code=204)


@router.post("/me/notifications/test", response_model=list[wire.NotificationResult])
async def test_targets(ctx: Ctx, who: Caller) -> list[wire.NotificationResult]:
    """Send a test message to each URL and say how each went; once every few seconds per user (429)."""
    if wait := ctx.throttles.notify_tests.take(who.user_id):
        raise ProblemError(429, "rate_limited", f"A test message was sent moments ago; wait {retry_after(wait)} s.",
                           "Try again after that; the results of the last test are in GET /api/v1/me/notifications.",
                           headers={"Retry-After": retry_after(wait)})
    return await notify.send_test_async(ctx, who.user_id, who.username)
