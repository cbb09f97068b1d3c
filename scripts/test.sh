#!/usr/bin/env bash
# The whole test suite: formatting and lint gates, Rust unit and integration
# tests, then the end-to-end suite (real agentd binary driven by the official
# roe-ai SDK and raw HTTP against loopback fake providers), schemathesis runs
# against Roe's OpenAPI and agentd's own /openapi.json, and the fuzz targets for
# a bounded time each.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh
# The local model's tests run the real default weights.
./scripts/fetch-model.sh
export AGENTD_REQUIRE_LOCAL_MODEL=1
# The storage tests run on SQLite and on the PostgreSQL server CI machines
# have (127.0.0.1:5432, user postgres; AGENTD_TEST_POSTGRES_URL to change):
# a missing server fails the run instead of skipping that half.
export AGENTD_REQUIRE_POSTGRES="${AGENTD_REQUIRE_POSTGRES:-1}"
# The file store's S3 tests run on a moto server (tests/e2e/requirements.txt):
# a missing moto fails the run instead of skipping them.
export AGENTD_REQUIRE_MOTO="${AGENTD_REQUIRE_MOTO:-1}"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -r tests/e2e/requirements.txt
# The console's Firefox smoke test (tests/e2e/test_console_firefox.py) fails
# instead of skipping when Firefox ESR is missing.
export AGENTD_REQUIRE_FIREFOX=1
# The browser tests (crates/agentd-web/tests/browser.rs) fail instead of
# skipping when Chromium is missing.
export AGENTD_REQUIRE_CHROMIUM=1

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test"
cargo test --workspace
echo "== end-to-end (tests/e2e)"
cargo build -p agentd
./scripts/test-e2e.sh "$@"
echo "== end-to-end on PostgreSQL (jobs, runs, files, webhooks, MCP, references, S3 files, several hosts, web pages; a fresh database per server)"
AGENTD_E2E_DATABASE=postgres .venv/bin/python -m pytest -q \
    tests/e2e/test_http_jobs.py tests/e2e/test_sdk_runs.py tests/e2e/test_file_lifecycle.py \
    tests/e2e/test_webhooks.py tests/e2e/test_mcp.py \
    tests/e2e/test_references.py tests/e2e/test_object_store.py tests/e2e/test_multi_process.py \
    tests/e2e/test_web.py \
    tests/e2e/test_scale_pg.py
echo "== schemathesis (Roe's OpenAPI and the server's own /openapi.json)"
./scripts/schemathesis.sh
echo "== fuzz targets (bounded time each)"
./scripts/fuzz.sh "${AGENTD_FUZZ_SECONDS:-15}"
