"""The server's rules: accounts, devices, quota, library and uploads.  No HTTP here beyond
``ProblemError``, so the same rules serve the API, the CLI and background jobs."""
