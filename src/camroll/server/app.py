"""The FastAPI application factory."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import anyio.to_thread
from fastapi import Depends, FastAPI
from starlette.types import ASGIApp

from camroll import __version__, wire
from camroll.server import bodylimit, openapi, problems, sweeper
from camroll.server.api import accounts, activity, assets, devices, meta, notifications, tus
from camroll.server.api import library as library_api
from camroll.server.api import me as me_api
from camroll.server.api.deps import check_client_version
from camroll.server.context import Context
from camroll.server.headers import SecurityHeaders
from camroll.server.settings import Settings
from camroll.server.web import media_cookie
from camroll.server.web import routes as web_routes


def _prepare(ctx: Context) -> None:
    from camroll.server import migrate
    from camroll.server.services import uploads

    ctx.settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrate.upgrade(ctx.engine)
    uploads.reconcile(ctx)
    # Clean-up, not recovery: a failure is logged and the server starts anyway.
    sweeper.sweep_once(ctx, orphans=True)


def _start_jobs(ctx: Context) -> None:
    from camroll.server.jobs.queue import JobQueue

    ctx.jobs = JobQueue(ctx)
    ctx.jobs.start()


async def _drain(ctx: Context, timeout: float = 10.0) -> None:
    """Give PATCHes that shutdown interrupted time to fsync and record their offset."""
    deadline = time.monotonic() + timeout
    while ctx.busy and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


class _App(FastAPI):
    def build_middleware_stack(self) -> ASGIApp:
        # Outside Starlette's error middleware too, so even an unexpected 500 carries the headers.
        return SecurityHeaders(super().build_middleware_stack())


def create_app(settings: Settings, ctx: Context | None = None) -> FastAPI:
    """The camroll server app for ``settings``; ``ctx`` lets tests swap the blob store."""
    from camroll.server.context import build

    context = ctx or build(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await anyio.to_thread.run_sync(_prepare, context)
        await anyio.to_thread.run_sync(_start_jobs, context)
        tasks = [asyncio.create_task(sweeper.run_forever(context)),
                 asyncio.create_task(sweeper.run_stall_checks(context))]
        try:
            yield
        finally:
            await _drain(context)
            if context.jobs is not None:
                await anyio.to_thread.run_sync(context.jobs.stop)
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
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
                   assets.router, tus.router):
        app.include_router(router, prefix=wire.API_PREFIX)
    app.add_middleware(tus.TusHeaders)
    app.add_middleware(bodylimit.BodyLimit)
    # The web UI: its page and static files, and the cookie its <img>/<video> tags authenticate with.
    app.include_router(me_api.router, prefix=wire.API_PREFIX)
    app.include_router(activity.router, prefix=wire.API_PREFIX)
    app.include_router(media_cookie.router, prefix=wire.API_PREFIX)
    app.include_router(web_routes.router)
    app.add_middleware(media_cookie.MediaCookieAuth)
    return app
