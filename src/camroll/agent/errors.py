"""Errors the agent shows to a person: each says what is wrong and how to fix it."""

from __future__ import annotations

from camroll.agent.stops import StopCode


class AgentError(Exception):
    """A user-facing failure.  ``str(err)`` is a complete sentence naming the problem and the fix;
    the CLI prints it without a traceback and exits with ``exit_code``."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class NotLoggedIn(AgentError):
    def __init__(self) -> None:
        super().__init__("Not logged in. Run: camroll login URL --user NAME")


class ConfigError(AgentError):
    """The config file is unreadable or holds an invalid value."""


class ServerUnreachable(AgentError):
    """The server could not be reached at all; the pass stops and files keep their state."""

    exit_code = 2
    stop_code = StopCode.UNREACHABLE
    # Whether the server had answered this client before the failure (a cut, not a wrong address).
    answered = False


class ProblemError(AgentError):
    """The server answered with an error (an RFC 9457 problem, or something we map to one)."""

    def __init__(self, status: int, code: str, detail: str, fix: str | None = None) -> None:
        self.status = status
        self.code = code
        self.detail = detail
        self.fix = fix
        text = detail.rstrip(".") + "."
        if fix:
            text += f" Fix: {fix.rstrip('.')}."
        super().__init__(text)

    @property
    def transient(self) -> bool:
        """Worth retrying the same request after a pause."""
        # 507: the server's disk is full; retrying at once cannot help (the engine stops uploads).
        return (self.status >= 500 and self.status != 507) or self.status in (408, 429)


class PassAborted(AgentError):
    """Something that stops the whole pass (revoked device, client too old, server gone); ``stop_code``
    says which, so nothing has to read the sentence to tell."""

    exit_code = 2

    def __init__(self, message: str, code: StopCode) -> None:
        super().__init__(message)
        self.stop_code = code
