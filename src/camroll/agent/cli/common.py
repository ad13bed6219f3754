"""Helpers every agent command module shares: turning ``AgentError`` and other failures into one clear
sentence and an exit code (``friendly``), and where the agent keeps its files (``agent_paths``)."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec, TypeVar

import typer

from camroll.agent.errors import AgentError
from camroll.agent.paths import AgentPaths

P = ParamSpec("P")
R = TypeVar("R")


def friendly(fn: Callable[P, R], again: str = "camroll backup", work: str = "uploads") -> Callable[P, R]:
    """Print ``AgentError``s as the sentence they are and exit non-zero, without a traceback.
    ``again`` is the command that resumes interrupted ``work``."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except AgentError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            typer.echo(f"Interrupted; unfinished {work} resume on the next '{again}'.", err=True)
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


def read_password(password_file: Path | None) -> str:
    """The password from ``password_file``, or asked on the terminal."""
    if password_file is not None:
        try:
            text = password_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise AgentError(
                f"Cannot read the password file {password_file}: {exc.strerror}. Fix: check the path and "
                "its permissions."
            ) from exc
        pw = text.rstrip("\r\n")
        if not pw:
            raise AgentError(f"The password file {password_file} is empty. Fix: put the password in it.")
        return pw
    if not sys.stdin.isatty():
        raise AgentError("No password given and no terminal to ask for one. Fix: use --password-file FILE.")
    import getpass

    pw = getpass.getpass("Password: ")
    if not pw:
        raise AgentError("No password entered. Fix: run the command again and type the password.")
    return pw
