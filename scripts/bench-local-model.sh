#!/usr/bin/env bash
# Runs llama.cpp's own `llama-bench` (the ceiling) next to agentd's
# `local-bench` (the provider, decoding under a JSON Schema grammar) on the
# same GGUF with the same thread count.
#
# llama-cpp-2 vendors only the llama.cpp library, so llama-bench is built
# from the full llama.cpp source carried by the llama-cpp-python sdist on
# PyPI, into target/llama-bench/ (once; later runs reuse it).
#
#   scripts/bench-local-model.sh [THREADS]      (default: all cores)
#
# Both builds get their x86 kernels from the same GGML_* variables; unset
# ones default to ON, the x86-64-v3 set (AVX, AVX2, FMA, F16C, BMI2,
# SSE4.2) that llama-cpp-sys-2 builds by default (see
# crates/agentd-provider-local/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."

THREADS="${1:-$(nproc)}"
SDIST="llama-cpp-python==0.3.36"
MODEL="${AGENTD_LOCAL_MODEL_PATH:-${AGENTD_DATA_DIR:-./data}/models/SmolLM2-135M-Instruct.Q4_1.gguf}"
ROOT="target/llama-bench"
BENCH="$ROOT/build/bin/llama-bench"

for flag in GGML_AVX GGML_AVX2 GGML_FMA GGML_F16C GGML_BMI2 GGML_SSE42; do
    export "$flag=${!flag:-ON}"
done

[ -f "$MODEL" ] || ./scripts/fetch-model.sh

fetch_llama_cpp_source() {
    local download="$ROOT/download"
    mkdir -p "$download"
    # Only llama-cpp-python itself as source; its build tools come as wheels.
    python3 -m pip download --quiet --no-deps --disable-pip-version-check \
        --no-binary llama-cpp-python "$SDIST" -d "$download"
    local sdist
    sdist="$(find "$download" -maxdepth 1 -name 'llama_cpp_python-*.tar.gz' | head -n 1)"
    rm -rf "$ROOT/src.tmp"
    mkdir -p "$ROOT/src.tmp"
    tar -xzf "$sdist" -C "$ROOT/src.tmp" --strip-components=3 \
        --wildcards '*/vendor/llama.cpp/*'
    # A submodule pointer to a repository that is not there: cmake would
    # warn about it on every configure.
    rm -f "$ROOT/src.tmp/.git"
    mv "$ROOT/src.tmp" "$ROOT/src"
}

build_llama_bench() {
    ./scripts/install-local-model-deps.sh
    [ -f "$ROOT/src/CMakeLists.txt" ] || fetch_llama_cpp_source
    cmake -S "$ROOT/src" -B "$ROOT/build" -DCMAKE_BUILD_TYPE=Release \
        -DBUILD_SHARED_LIBS=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF \
        -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DGGML_NATIVE=OFF \
        -DGGML_AVX="$GGML_AVX" -DGGML_AVX2="$GGML_AVX2" -DGGML_FMA="$GGML_FMA" \
        -DGGML_F16C="$GGML_F16C" -DGGML_BMI2="$GGML_BMI2" -DGGML_SSE42="$GGML_SSE42" \
        >/dev/null
    cmake --build "$ROOT/build" --target llama-bench -j "$(nproc)" >/dev/null
}

[ -x "$BENCH" ] || build_llama_bench
cargo build --quiet --release -p agentd-provider-local --bin local-bench

# Flash attention on, as the provider runs it; d512 = after a 512-token prompt.
echo "== llama.cpp llama-bench (unconstrained, $THREADS threads)"
"$BENCH" -m "$MODEL" -t "$THREADS" -fa 1 -p 512 -n 128 -d 0,512 -r 3
echo
echo "== agentd local-bench (JSON Schema grammar, $THREADS threads)"
"${CARGO_TARGET_DIR:-target}/release/local-bench" --model "$MODEL" --threads "$THREADS" --reps 3
