"""The agent's local state: the SQLite state DB with named queries and typed rows (``db``), the record of
the last pass (``lastpass``), opening it with a damage check and rebuilding it (``cache``), and the
counts everyone reports (``tally``)."""
