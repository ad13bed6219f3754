"""The agent's commands.  ``app.register`` adds them to a Typer app; ``common`` holds the helpers every
command module shares (error handling, paths)."""
