#!/usr/bin/env bash
# Runs the end-to-end suite (tests/e2e) against target/debug/agentd, or $AGENTD_BIN.
# The binary must be built already (cargo build -p agentd). Extra arguments go to pytest,
# e.g. scripts/test-e2e.sh -k runs -x
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r tests/e2e/requirements.txt

BIN="${AGENTD_BIN:-target/debug/agentd}"
if [ ! -x "$BIN" ]; then
    echo "test-e2e: agentd binary not found at $BIN (run: cargo build -p agentd)" >&2
    exit 1
fi

exec "$VENV/bin/python" -m pytest tests/e2e -q "$@"
