#!/usr/bin/env bash
# Property-based test of the API with schemathesis, against Roe's OpenAPI and against
# agentd's own /openapi.json: starts target/debug/agentd (or $AGENTD_BIN) on a fresh
# SQLite database with the loopback fake OpenAI provider, then checks that no answer is
# a 5xx and that answers match the documented schemas (tests/schemathesis/run.py says how).
#
# Roe's spec is read from ../shared/spec/roe-agents-openapi.yml beside the repository, or
# from $AGENTD_OPENAPI_SPEC; SCHEMATHESIS_DOCUMENTS=roe|agentd runs one document only.
# Bounds: SCHEMATHESIS_MAX_TIME seconds per pass (two passes per document, default 50),
# SCHEMATHESIS_MAX_EXAMPLES per operation (default 15), SCHEMATHESIS_SEED.
# Build first: cargo build -p agentd
set -euo pipefail
cd "$(dirname "$0")/.."

# Its own environment: schemathesis needs a newer pytest than the e2e suite pins.
VENV="${SCHEMATHESIS_VENV:-.venv-schemathesis}"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r tests/schemathesis/requirements.txt

exec "$VENV/bin/python" tests/schemathesis/run.py "$@"
