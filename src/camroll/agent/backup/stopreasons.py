"""Server answers that stop a whole pass, turned into ``stops.Stop`` values with the sentence and the fix."""

from __future__ import annotations

from typing import TYPE_CHECKING

from camroll.agent.errors import AgentError, ProblemError
from camroll.agent.stops import Stop, StopCode, storage_fix

if TYPE_CHECKING:
    from camroll import wire

RESUMES = "backup resumes by itself"


def storage_stop(exc: ProblemError) -> Stop | None:
    """The stop if ``exc`` says no upload can succeed now (quota or disk full), else None."""
    if exc.code == "quota_exceeded" or (exc.status == 413 and exc.code != "file_too_large"):
        # "Storage full: 14.9 GB of 15.0 GB used; this 3 MB file does not fit." -> the figures only.
        figures = exc.detail.split(";")[0].strip().rstrip(".")
        fix = (exc.fix or "Free space or raise the quota").rstrip(".")
        if figures.lower().startswith("storage full"):
            figures = figures[len("storage full"):].lstrip(": ")
            cause = f"storage full, {figures}"
            return Stop(StopCode.QUOTA, f"{cause}. {fix}; {RESUMES}.", storage_fix(StopCode.QUOTA), cause=cause)
        cause = f"storage quota exceeded: {exc.detail.rstrip('.')}"
        return Stop(StopCode.QUOTA, f"{cause}. Fix: {fix}; {RESUMES}.", storage_fix(StopCode.QUOTA), cause=cause)
    if exc.status == 507:
        # "The server's disk is full (1.2 MB free of 63 MB on ...); this 9 MB file does not fit; nothing
        # ... was kept." -> the figures only; every waiting file gets the same sentence.
        head = exc.detail.split(";")[0].strip().rstrip(".")
        lead = "the server's disk is full"
        figures = head[len(lead):].strip() if head.lower().startswith(lead) else f"({head})"
        fix = (exc.fix or "Free disk space on the server").rstrip(".")
        cause = f"{lead} {figures}"
        return Stop(StopCode.SERVER_FULL, f"{cause}. Fix: {fix}; {RESUMES}.", storage_fix(StopCode.SERVER_FULL),
                    cause=cause)
    return None


def too_old(info: wire.ServerInfo, exc: AgentError) -> str:
    """The stop sentence when the server needs a newer agent, naming the version to update to."""
    from camroll import API_VERSION, __version__

    if info.api_version != API_VERSION:
        return exc.message
    return (f"this camroll ({__version__}) is too old for the server, which needs {info.min_client_version} "
            f"or later. Fix: update camroll to {info.min_client_version} or later; backup resumes by itself.")
