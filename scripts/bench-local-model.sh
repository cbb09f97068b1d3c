#!/usr/bin/env bash
# Runs llama.cpp's own `llama-bench` (the ceiling) next to agentd's
# `local-bench` (the provider, decoding under a JSON Schema grammar) on the
# same GGUF with the same thread count.
#
# llama-bench is built by scripts/llama-cpp-tools.sh (from the llama.cpp
# sources of the llama-cpp-python sdist, into target/llama-cpp/, once).
#
#   scripts/bench-local-model.sh [THREADS]      (default: all cores)

set -euo pipefail
cd "$(dirname "$0")/.."

THREADS="${1:-$(nproc)}"
MODEL="${AGENTD_LOCAL_MODEL_PATH:-${AGENTD_DATA_DIR:-./data}/models/SmolLM2-135M-Instruct.Q4_1.gguf}"

# shellcheck source=scripts/llama-cpp-tools.sh
. scripts/llama-cpp-tools.sh

[ -f "$MODEL" ] || ./scripts/fetch-model.sh
BENCH="$(build_llama_cpp_tool llama-bench)"
cargo build --quiet --release -p agentd-provider-local --bin local-bench

# Flash attention on, as the provider runs it; d512 = after a 512-token prompt.
echo "== llama.cpp llama-bench (unconstrained, $THREADS threads)"
"$BENCH" -m "$MODEL" -t "$THREADS" -fa 1 -p 512 -n 128 -d 0,512 -r 3
echo
echo "== agentd local-bench (JSON Schema grammar, $THREADS threads)"
"${CARGO_TARGET_DIR:-target}/release/local-bench" --model "$MODEL" --threads "$THREADS" --reps 3
