"""``GET /api/v1/server``: what this server is and what it accepts; needs no token."""

from __future__ import annotations

from fastapi import APIRouter

from camroll import API_VERSION, __version__, wire
from camroll.media.types import SUPPORTED
from camroll.server.api.deps import Ctx

router = APIRouter()


@router.get("/server", response_model=wire.ServerInfo)
def server_info(ctx: Ctx) -> wire.ServerInfo:
    s = ctx.settings
    return wire.ServerInfo(
        name=s.name,
        version=__version__,
        api_version=API_VERSION,
        min_client_version=s.min_client_version,
        upload=wire.UploadLimits(max_file_size=s.max_file_size, chunk_size=s.chunk_size,
                                 expiry_seconds=int(s.upload_expiry_seconds)),
        media_types=[wire.MediaTypeInfo(mime=m.mime, kind=m.kind, extensions=list(m.extensions))
                     for m in SUPPORTED],
    )
