"""Operations endpoints: ``/healthz`` (the process answers), ``/readyz`` (it can serve: database, storage
and queue answer, the schema is current) and ``/metrics`` (Prometheus).

The health endpoints need no token (load balancers and orchestrators call them) and say nothing a
stranger could use: which part is not ready and the fix, never a URL, a host or a credential.  They sit at
the root, outside the API's prefix and its OpenAPI document, where load balancers expect them."""

from __future__ import annotations

import hmac
from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Header, Response
from fastapi.responses import JSONResponse

from camroll import __version__
from camroll.server import checks, metrics
from camroll.server.api.deps import Ctx
from camroll.server.problems import ProblemError, problem_response

router = APIRouter(include_in_schema=False)

# What /readyz tells a stranger about a part that is not ready: no addresses, no error texts.
_NOT_READY = {
    "database": ("the database does not answer",
                 "run 'camroll admin check' on the server for the cause and the fix"),
    "storage": ("the blob store does not answer", "run 'camroll admin check' on the server for the cause and the fix"),
    "queue": ("the job queue does not answer", "run 'camroll admin check' on the server for the cause and the fix"),
}
_NO_STORE = {"Cache-Control": "no-store"}
# The database answers but its schema is older (migrations pending) or newer than this camroll's.
_SCHEMA = "the database schema is not this camroll version's (migrations pending, or a newer camroll migrated it)"


@router.get("/healthz")
async def healthz() -> JSONResponse:
    """Alive: answered by the event loop itself, without touching the database or the disk."""
    return JSONResponse({"status": "ok", "version": __version__}, headers=_NO_STORE)


@router.get("/readyz")
async def readyz(ctx: Ctx) -> Response:
    """Ready to serve: 200 when the database, the blob store and the queue answer within their limits."""
    results = await anyio.to_thread.run_sync(checks.readiness, ctx)
    body = {r.name: ("ok" if r.status is checks.Status.PASS else "not ready") for r in results}
    failed = [r for r in results if r.status is checks.Status.FAIL]
    if not failed:
        return JSONResponse({"status": "ready", "checks": body}, headers=_NO_STORE)
    what = "; ".join(_SCHEMA if r.name == "database" and r.details.get("head") else _NOT_READY[r.name][0]
                     for r in failed)
    return problem_response(503, "not_ready", f"This server is not ready: {what}.",
                            f"The server's admin should {_NOT_READY[failed[0].name][1]}.", "/readyz",
                            {**_NO_STORE, "Retry-After": "5"})


@router.get("/metrics")
def metrics_endpoint(ctx: Ctx, authorization: Annotated[str | None, Header()] = None) -> Response:
    """Prometheus text format, for a scraper holding ``$CAMROLL_METRICS_TOKEN`` (a separate
    ``--metrics-listen`` address serves it with no token)."""
    token = ctx.settings.metrics_token
    if token is None:
        raise ProblemError(404, "not_found", "Metrics are not served on this address.",
                           "Set CAMROLL_METRICS_TOKEN on the server and scrape with 'Authorization: Bearer <token>', "
                           "or start it with --metrics-listen 127.0.0.1:9464 and scrape that address.")
    scheme, _, sent = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(sent.strip().encode(), token.encode()):
        raise ProblemError(401, "unauthorized", "Scraping metrics needs the server's metrics token.",
                           "Send 'Authorization: Bearer <CAMROLL_METRICS_TOKEN>' (in Prometheus: "
                           "authorization: {credentials: ...} in the scrape config).",
                           headers={"WWW-Authenticate": 'Bearer realm="camroll metrics"'})
    from prometheus_client import CONTENT_TYPE_LATEST

    return Response(metrics.of(ctx).exposition(), media_type=CONTENT_TYPE_LATEST, headers=_NO_STORE)
