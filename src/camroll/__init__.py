"""camroll: self-hosted photo and video auto-backup that is verified, resumable and never silently stuck."""

__version__ = "0.1.0"

# The HTTP API generation both sides speak; bumped on incompatible changes.
API_VERSION = 1
