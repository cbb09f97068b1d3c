#!/usr/bin/env bash
# Accuracy and speed of agentd's local model next to llama.cpp's llama-server
# on the same GGUF, thread count and number of sequences: builds
# `local-eval` (release) and `llama-server` (scripts/llama-cpp-tools.sh), then
# runs benches/local_model_bench.py, which generates the labeled documents
# (benches/local_model_docs.py, seeded), sends them through both one after
# the other, and prints the comparison table.
#
#   scripts/bench-local-accuracy.sh [ARGS...]
#
# Arguments go to the Python script (--count 120, --seed 7, --threads: the
# cores, --sequences 4, --clients 2, --layout flexible|compact,
# --no-prefix-cache, --no-server-cache, --answers FILE).
# AGENTD_LOCAL_MODEL_PATH picks another GGUF.
set -euo pipefail
cd "$(dirname "$0")/.."

MODEL="${AGENTD_LOCAL_MODEL_PATH:-${AGENTD_DATA_DIR:-./data}/models/SmolLM2-135M-Instruct.Q4_1.gguf}"

# shellcheck source=scripts/llama-cpp-tools.sh
. scripts/llama-cpp-tools.sh

[ -f "$MODEL" ] || ./scripts/fetch-model.sh
SERVER="$(build_llama_cpp_tool llama-server)"
cargo build --quiet --release -p agentd-provider-local --bin local-eval

exec python3 benches/local_model_bench.py --model "$MODEL" \
    --local-eval "${CARGO_TARGET_DIR:-target}/release/local-eval" \
    --llama-server "$SERVER" "$@"
