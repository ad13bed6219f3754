"""Background jobs: metadata extraction and thumbnails through huey, consumed inside the server."""
