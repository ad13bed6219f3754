"""What the agent tells its user: ``camroll status``, ``problems``/``why``, ``doctor``, the support bundle
and the probes of the server (``reach``).  Reads the state DB and the last-pass record; never runs a pass."""
