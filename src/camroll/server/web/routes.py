"""Serves the UI: the page at ``/`` (never cached) and versioned static files (cached for a year)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from camroll.server.web.assets import bundle

router = APIRouter(include_in_schema=False)

# The page loads nothing from other origins (no CDNs, no web fonts); hash-wasm needs WebAssembly.
CSP = ("default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; "
       "img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; object-src 'none'; "
       "base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
_SECURITY = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
IMMUTABLE = "public, max-age=31536000, immutable"


@router.get("/")
@router.get("/index.html")
def index() -> Response:
    return Response(bundle().index, media_type="text/html; charset=utf-8",
                    headers={"Cache-Control": "no-cache", **_SECURITY})


@router.get("/static/{version}/{path:path}")
def static(version: str, path: str) -> Response:
    b = bundle()
    found = b.files.get(path)
    if found is None:
        return Response("Not found: this file is not part of the camroll web UI.\n", status_code=404,
                        media_type="text/plain; charset=utf-8")
    # A page from an older release may still ask for its version: answer, but don't let it be cached.
    cache = IMMUTABLE if version == b.version else "no-cache"
    return Response(found.body, media_type=found.media_type,
                    headers={"Cache-Control": cache, "ETag": f'"{b.version}"', **_SECURITY})
