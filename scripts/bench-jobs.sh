#!/usr/bin/env bash
# Job throughput benchmark: builds target/release/agentd, then runs benches/jobs_bench.py
# (a fake model with 100 ms latency; 1000 jobs via async/many; AGENTD_WORKERS = 1, 16, 64).
# Extra arguments go to the script, e.g. scripts/bench-jobs.sh --workers 16,64 --jobs 500
# --database postgres (a fresh PostgreSQL database per run) --processes 2 (serve + 1 `agentd worker`).
# Set AGENTD_BIN to benchmark another binary (the build is then skipped).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${AGENTD_BIN:-}" ]; then
    cargo build --release -p agentd
    export AGENTD_BIN=target/release/agentd
fi

PYTHON="${PYTHON:-}"
if [ -z "$PYTHON" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
exec "$PYTHON" benches/jobs_bench.py "$@"
