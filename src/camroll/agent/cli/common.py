"""Helpers every agent command module shares: turning ``AgentError`` and other failures into one clear
sentence and an exit code (``friendly``), and where the agent keeps its files (``agent_paths``)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer

from camroll.agent.errors import AgentError
from camroll.agent.paths import AgentPaths

P = ParamSpec("P")
R = TypeVar("R")


def friendly(fn: Callable[P, R], again: str = "camroll backup") -> Callable[P, R]:
    """Print ``AgentError``s as the sentence they are and exit non-zero, without a traceback.
    ``again`` is the command that resumes interrupted work."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except AgentError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            typer.echo(f"Interrupted; unfinished uploads resume on the next '{again}'.", err=True)
            raise typer.Exit(130) from None
        except (typer.Exit, typer.Abort):
            raise
        except OSError as exc:
            where = f" ({exc.filename})" if exc.filename else ""
            typer.echo(f"camroll could not use a file it needs{where}: {exc.strerror or exc}. "
                       "Fix: check that the folder exists, is writable and the disk is not full.", err=True)
            raise typer.Exit(1) from None
        except Exception as exc:
            import sqlite3

            if isinstance(exc, sqlite3.Error):
                typer.echo(f"camroll's state database could not be used: {exc}. Fix: check the disk and "
                           "permissions of CAMROLL_HOME; if the file is damaged, run camroll reset-cache (it is "
                           "rebuilt without re-uploading anything).", err=True)
                raise typer.Exit(1) from None
            from camroll.agent.log import logger

            logger.exception("unexpected error")
            typer.echo(f"camroll hit an unexpected error ({type(exc).__name__}: {exc}). Fix: run the command "
                       "again; if it persists, report it with the agent log (logs/agent.log).", err=True)
            raise typer.Exit(3) from None

    return wrapper


def agent_paths() -> AgentPaths:
    """The agent's files for this user (``CAMROLL_HOME`` or the default)."""
    return AgentPaths.default()
