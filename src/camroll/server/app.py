"""The FastAPI application factory."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

import anyio.to_thread
from fastapi import Depends, FastAPI
from starlette.types import ASGIApp

from camroll import __version__, wire
from camroll.server import bodylimit, metrics, openapi, problems, sweeper
from camroll.server.api import accounts, activity, assets, devices, meta, notifications, tus
from camroll.server.api import albums as albums_api
from camroll.server.api import batch as batch_api
from camroll.server.api import health as health_api
from camroll.server.api import library as library_api
from camroll.server.api import me as me_api
from camroll.server.api.deps import check_client_version
from camroll.server.context import Context
from camroll.server.dav.door import DavDoor
from camroll.server.headers import SecurityHeaders
from camroll.server.leases import PERIODIC, Leases
from camroll.server.settings import Settings
from camroll.server.web import media_cookie
from camroll.server.web import routes as web_routes

log = logging.getLogger("camroll.server")


def _own_database(ctx: Context) -> bool:
    """The library's own SQLite file, which server.lock keeps to this one server."""
    return ctx.settings.database_url == f"sqlite+pysqlite:///{ctx.settings.data_dir / 'camroll.db'}"


def _prepare(ctx: Context, leases: Leases) -> None:
    from camroll.server import migrate
    from camroll.server.services import uploads

    ctx.settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrate.upgrade(ctx.engine)
    log.info("this server holds leases for periodic work as %s", leases.holder)
    if _own_database(ctx):
        # No other server can use this database, so leases left in it are a killed process's: without
        # this, a restart after kill -9 would wait their TTL before sweeping or checking again.
        leases.clear(PERIODIC)
    uploads.reconcile(ctx)
    # Clean-up, not recovery: a failure is logged and the server starts anyway.
    sweeper.sweep_once(ctx, orphans=True, leases=leases)


def _start_jobs(ctx: Context, leases: Leases) -> None:
    from camroll.server.jobs.queue import JobQueue

    ctx.jobs = JobQueue(ctx, leases=leases)
    ctx.work = ctx.jobs
    ctx.jobs.start()


def _release(leases: Leases) -> None:
    try:
        # The next replica (or this server restarted) need not wait for their TTL.
        leases.release_all()
    except Exception:
        log.warning("could not give back this server's leases; they run out by themselves", exc_info=True)


async def _drain(ctx: Context, timeout: float = 10.0) -> None:
    """Give PATCHes that shutdown interrupted time to fsync and record their offset."""
    deadline = time.monotonic() + timeout
    while ctx.busy and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


class _App(FastAPI):
    def build_middleware_stack(self) -> ASGIApp:
        # Outside Starlette's error middleware too, so even an unexpected 500 carries the headers (and
        # is counted with its status).
        return SecurityHeaders(metrics.RequestMetrics(super().build_middleware_stack()))


def create_app(settings: Settings, ctx: Context | None = None) -> FastAPI:
    """The camroll server app for ``settings``; ``ctx`` lets tests swap the blob store."""
    from camroll.server.context import build

    context = ctx or build(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        leases = Leases(context)
        await anyio.to_thread.run_sync(_prepare, context, leases)
        await anyio.to_thread.run_sync(_start_jobs, context, leases)
        from camroll.server.replicas.service import Replicator

        replicator = Replicator(context, leases)
        replicator.start()
        scrape = metrics.listen(context)
        tasks = [asyncio.create_task(sweeper.run_forever(context, leases)),
                 asyncio.create_task(sweeper.run_stall_checks(context, leases))]
        try:
            yield
        finally:
            await _drain(context)
            await anyio.to_thread.run_sync(replicator.stop)
            if scrape is not None:
                await anyio.to_thread.run_sync(scrape.close)
            if context.jobs is not None:
                await anyio.to_thread.run_sync(context.jobs.stop)
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await anyio.to_thread.run_sync(_release, leases)
            context.engine.dispose()

    app = _App(
        title="camroll",
        version=__version__,
        lifespan=lifespan,
        dependencies=[Depends(check_client_version)],
        openapi_url=f"{wire.API_PREFIX}/openapi.json",
        # No docs page: Swagger UI would load scripts from a CDN on the web UI's origin.  The OpenAPI
        # document above opens in any OpenAPI viewer.
        docs_url=None,
        redoc_url=None,
    )
    app.state.ctx = context
    openapi.install(app)
    problems.install(app)
    for router in (meta.router, accounts.router, devices.router, notifications.router, library_api.router,
                   assets.router, batch_api.router, tus.router):
        app.include_router(router, prefix=wire.API_PREFIX)
    app.add_middleware(tus.TusHeaders)
    app.add_middleware(bodylimit.BodyLimit)
    # The web UI: its page and static files, and the cookie its <img>/<video> tags authenticate with.
    app.include_router(me_api.router, prefix=wire.API_PREFIX)
    app.include_router(activity.router, prefix=wire.API_PREFIX)
    app.include_router(albums_api.router, prefix=wire.API_PREFIX)
    app.include_router(media_cookie.router, prefix=wire.API_PREFIX)
    app.include_router(health_api.router)
    app.include_router(web_routes.router)
    app.add_middleware(media_cookie.MediaCookieAuth)
    # WebDAV at /dav/ (phone auto-upload apps, rclone, file managers): outside the API's body limit.
    app.add_middleware(DavDoor)
    return app
