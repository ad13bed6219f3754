#!/usr/bin/env bash
# Sets up everything the tests need on a fresh Debian machine (system packages via apt-get, a virtualenv
# with camroll and its test tools), then runs lint, type checks and the full suite.
set -euo pipefail
cd "$(dirname "$0")/.."

# Real components in tests: Debian's Chromium (web UI), ffmpeg (video), redis-server (the Redis queue),
# openssl (through ca-certificates; a TLS test server).
SYSTEM_PACKAGES=(ca-certificates chromium ffmpeg redis-server)
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
.venv/bin/python -m pytest "$@"
