"""``camroll why``, ``problems``, ``retry`` and ``ignore``: thin commands over :mod:`camroll.agent.report.problems`.
They read and write only the local state DB, so they work offline and while a backup runs."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

import typer

from camroll.agent.cli.common import agent_paths, friendly
from camroll.agent.errors import AgentError
from camroll.agent.fsnames import shown
from camroll.agent.state.tally import plural

if TYPE_CHECKING:
    from camroll.agent.report.problems import Outcome
    from camroll.agent.settings.config import AgentConfig
    from camroll.agent.state.db import StateDB


def _open() -> tuple[AgentConfig, StateDB]:
    from camroll.agent.settings.config import load_config
    from camroll.agent.state.cache import open_state_db

    paths = agent_paths()
    cfg = load_config(paths.config_file)
    if not paths.state_db.exists():
        raise AgentError("camroll has not backed up anything on this device yet, so it knows no files. "
                         "Fix: camroll backup")
    return cfg, open_state_db(paths)


def why(path: str = typer.Argument(..., help="A file in a backed-up folder."),
        json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Tell one file's story: its state and reason, what would change it, and what camroll did with it."""
    from camroll.agent.report.problems import story_text
    from camroll.agent.report.problems import why as file_why

    cfg, db = _open()
    with db:
        story = file_why(db, cfg, path)
    if json_out:
        typer.echo(json.dumps(story.to_json()))
    else:
        typer.echo(story_text(story))


def _retry_in(ts: float | None) -> str:
    if not ts:
        return ""
    secs = ts - time.time()
    if secs <= 0:
        return "next backup"
    return time.strftime("%H:%M", time.localtime(ts))


def problems(json_out: bool = typer.Option(False, "--json", help="Print a JSON list."),
             limit: int = typer.Option(1000, "--limit", min=1, help="Show at most this many files."),
             show_all: bool = typer.Option(False, "--all", help="Also list files left out by choice: hidden, "
                                                               "in Android's trash, or kept out by your "
                                                               "include/exclude settings.")) -> None:
    """List every file that is not backed up, with the reason and the fix, most important first."""
    from camroll.agent.report.problems import problem_rows

    _cfg, db = _open()
    with db:
        rows = problem_rows(db, limit, excluded=show_all)
        hidden = 0 if show_all else db.left_out_count()
    if json_out:
        typer.echo(json.dumps([r.to_json() for r in rows]))
        return
    also = (f" ({plural(hidden, 'more file')} left out by choice: hidden, in Android's trash or kept out by "
            "your include/exclude settings; camroll problems --all lists them.)") if hidden else ""
    if not rows:
        typer.echo(f"No problems: every file camroll knows is backed up, on its way, or ignored.{also}")
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(highlight=False)
    title = f"{plural(len(rows), 'file')} not backed up" + (" or left out" if show_all else "")
    table = Table(title=title, title_justify="left")
    table.add_column("State", no_wrap=True)
    table.add_column("File", overflow="fold")
    table.add_column("Reason", overflow="fold")
    table.add_column("Fix", overflow="fold")
    for r in rows:
        state = r.state
        if r.state == "failed" and r.attempts:
            state += f"\n{r.attempts} {'try' if r.attempts == 1 else 'tries'}"
            if (when := _retry_in(r.next_retry_at)):
                state += f"\nretry {when}"
        table.add_row(Text(state), Text(r.path), Text(r.reason), Text(r.fix))
    console.print(table)
    if also:
        console.print(also.strip(), markup=False)


def retry(path: str | None = typer.Argument(None, help="A failed or skipped file."),
          all_files: bool = typer.Option(False, "--all", help="Every failed file and every file skipped by a "
                                                              "rule (too large, excluded, type)."),
          json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Make failed or skipped files eligible again; the next backup tries them after new files."""
    from camroll.agent.report.problems import retry as do_retry

    if (path is None) == (not all_files):
        raise AgentError("Name one file or use --all. Fix: camroll retry PATH, or camroll retry --all")
    cfg, db = _open()
    with db:
        out = do_retry(db, cfg, None if all_files else path)
    if json_out:
        typer.echo(json.dumps([_shown(o) for o in out]))
        return
    done = [o for o in out if o.done]
    if all_files and not out:
        typer.echo("Nothing to retry: no failed files and no files skipped by a rule.")
        return
    for o in out:
        typer.echo(f"{shown(o.path)}: {shown(o.message)}")
    if done:
        typer.echo(f"{plural(len(done), 'file')} will be tried on the next backup, after new files "
                   "(camroll backup runs one now).")


def ignore(path: str = typer.Argument(..., help="A file in a backed-up folder."),
           undo: bool = typer.Option(False, "--undo", help="Back the file up again."),
           json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Never back up this file (it is then not counted as a problem); --undo reverses it."""
    from camroll.agent.report.problems import ignore as do_ignore

    cfg, db = _open()
    with db:
        o = do_ignore(db, cfg, path, undo=undo)
    if json_out:
        typer.echo(json.dumps(_shown(o)))
    else:
        typer.echo(f"{shown(o.path)}: {shown(o.message)}")


def _shown(o: Outcome) -> dict[str, object]:
    return {**o.__dict__, "path": shown(o.path), "message": shown(o.message)}


def register(app: typer.Typer) -> None:
    app.command("why")(friendly(why))
    app.command("problems")(friendly(problems))
    app.command("retry")(friendly(retry))
    app.command("ignore")(friendly(ignore))
