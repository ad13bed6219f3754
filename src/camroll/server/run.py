"""Serving the app with uvicorn (httptools + uvloop), programmatically."""

from __future__ import annotations

import logging

from camroll.server.settings import Settings


def parse_listen(listen: str) -> tuple[str, int]:
    """``host:port``, ``[v6]:port`` or ``:port`` (all interfaces); ``ValueError`` says what is wrong."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--listen {listen!r} is not HOST:PORT, e.g. 127.0.0.1:8420 or 0.0.0.0:8420")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


def serve(settings: Settings, host: str, port: int, *, access_log: bool = False) -> None:
    import uvicorn

    from camroll.server.app import create_app

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = uvicorn.Config(
        create_app(settings),
        host=host,
        port=port,
        log_level="warning",
        access_log=access_log,
        lifespan="on",
        # In-flight PATCHes get a moment to fsync and record their offset on SIGTERM.
        timeout_graceful_shutdown=5,
        server_header=False,
    )
    uvicorn.Server(config).run()
