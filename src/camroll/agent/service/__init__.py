"""The agent as a long-running service: the daemon loop, folder watching, the agent and pass locks, the
heartbeat to the server and installing it as a user service."""
