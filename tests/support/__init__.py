"""What the tests share, in one place: import from its modules, never from conftest.

- ``wait``: ``wait_until``, the one way a test polls for something that happens in another process.
- ``env``: ``require`` (skip here, fail in CI) and ``free_port``.
- ``server``: a real ``camroll serve`` subprocess (``ServerProcess``), the real CLI (``run_camroll``),
  and what either needs to reach the test database on the PostgreSQL pass.
- ``clock``: ``FakeClock``, the server's clock for tests that move time by hand.
- ``media``: small real photos and videos made at test time, and waiting for the server's jobs on them.
"""
