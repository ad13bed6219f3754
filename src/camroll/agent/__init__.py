"""The device side of camroll: config, local state, scanning, hashing, tus uploads and the backup engine.

The public entry point for other parts of camroll (``camroll up``) is :func:`camroll.agent.backup.run.run_backup`
with an explicit :class:`camroll.agent.paths.AgentPaths`; nothing here imports server code.
"""
