#!/usr/bin/env bash
# Sets up everything the tests need on a fresh Debian machine (system packages via apt-get, a virtualenv
# with camroll and its test tools), then runs lint, type checks and the suite: the whole suite on SQLite,
# then the tests that exercise the server's SQL again on PostgreSQL (PG_PASS below), in a throwaway
# cluster the tests make themselves (tests/services/postgres.py).
#
#   bash scripts/test.sh                 both passes
#   bash scripts/test.sh -m "not slow"   the fast lane: everything but the tests marked slow, on SQLite
#   bash scripts/test.sh tests/server    only these tests, on SQLite (CAMROLL_TEST_DATABASE=postgresql: on PostgreSQL)
#
# CAMROLL_TEST_WORKERS (default 3) is how many pytest-xdist processes each pass runs.  Most tests wait on
# server processes and sockets, not the CPU, so 4 on a 2-core machine nearly halve the wall time.
set -euo pipefail
cd "$(dirname "$0")/.."

# Real components in tests: Debian's Chromium (web UI), ffmpeg (video), redis-server (the Redis queue),
# openssl (through ca-certificates; a TLS test server), PostgreSQL (initdb/pg_ctl for a throwaway cluster),
# nginx and haproxy (load balancers in front of several replicas).
SYSTEM_PACKAGES=(ca-certificates chromium ffmpeg haproxy nginx postgresql redis-server)
missing=()
if command -v dpkg >/dev/null; then
    for p in "${SYSTEM_PACKAGES[@]}"; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
fi
if [ "${#missing[@]}" -gt 0 ] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        sudo apt-get update -qq
        sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "The tests need these Debian packages: ${missing[*]}. Install them with:" >&2
        echo "  sudo apt-get install ${missing[*]}" >&2
        echo "(without them those tests are skipped here, and fail in CI)." >&2
    fi
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'
.venv/bin/ruff check src tests bench
.venv/bin/mypy

workers="${CAMROLL_TEST_WORKERS:-3}"
# --dist loadfile: a module's tests stay on one worker, so its module-scoped server starts once.
parallel=(-n "$workers" --dist loadfile)
if [ "$workers" = 0 ]; then parallel=(-p no:xdist); fi

if [ "$#" -gt 0 ]; then
    exec .venv/bin/python -m pytest "${parallel[@]}" "$@"
fi

# The PostgreSQL pass: what runs SQL whose result can differ between SQLite and PostgreSQL (types,
# NULs and encodings, locking and concurrent writers, RETURNING/ON CONFLICT, migrations, recovery after a
# kill).  That is all of tests/server (services, repositories, API, migrations, concurrency, fuzzing), plus
# the few end-to-end tests whose subject is the server's database: recovery after the server is killed
# mid-upload (e2e/test_faults), file names kept byte for byte (e2e/test_names_and_heartbeats), a full
# disk under the library (scenarios/test_disk_full: on PostgreSQL the database is elsewhere) and sessions,
# password change and logout behind the web UI (web/test_server).  The other browser, agent and scenario
# tests drive the agent and the UI through the same API calls tests/server covers on both databases, so a
# second run of them on PostgreSQL (37 of the old pass's 608 tests, but the slowest kind: Chromium and agent
# daemons) tests no SQL the first run did not.
# tests/scale always runs on PostgreSQL (its cluster needs one), in pass 1.  A new end-to-end test whose
# subject is the database belongs in this list.
PG_PASS=(
    tests/server
    tests/e2e/test_faults.py
    tests/e2e/test_names_and_heartbeats.py
    tests/scenarios/test_disk_full.py
    tests/web/test_server.py
)

status=0
start=$SECONDS
echo "== pass 1: the whole suite on SQLite"
CAMROLL_TEST_DATABASE=sqlite .venv/bin/python -m pytest "${parallel[@]}" || status=$?
echo "== pass 1 took $((SECONDS - start)) s"
start=$SECONDS
echo "== pass 2: the server's SQL on PostgreSQL: ${PG_PASS[*]}"
CAMROLL_TEST_DATABASE=postgresql .venv/bin/python -m pytest "${parallel[@]}" "${PG_PASS[@]}" || status=$?
echo "== pass 2 took $((SECONDS - start)) s"
exit "$status"
