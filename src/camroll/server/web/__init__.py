"""The web UI: one HTML page, ES modules and CSS served by the camroll server itself (no build step)."""
