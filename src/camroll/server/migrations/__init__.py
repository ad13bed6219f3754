"""Alembic migrations for the server database; run through :mod:`camroll.server.migrate`."""
