# Sourced by the local-model benchmarks: builds one of llama.cpp's own tools
# (llama-bench, llama-server) from the full llama.cpp source carried by the
# llama-cpp-python sdist on PyPI (llama-cpp-2 vendors only the library),
# into target/llama-cpp/ (once; later runs reuse it).
#
#   build_llama_cpp_tool llama-server    → prints the binary's path
#
# The x86 kernels come from the same GGML_* variables as agentd's build;
# unset ones default to ON, the x86-64-v3 set (AVX, AVX2, FMA, F16C, BMI2,
# SSE4.2) that llama-cpp-sys-2 builds by default (see
# crates/agentd-provider-local/README.md). The compiler runs at nice 19.

LLAMA_CPP_SDIST="llama-cpp-python==0.3.36"
LLAMA_CPP_ROOT="target/llama-cpp"

for flag in GGML_AVX GGML_AVX2 GGML_FMA GGML_F16C GGML_BMI2 GGML_SSE42; do
    export "$flag=${!flag:-ON}"
done

fetch_llama_cpp_source() {
    local download="$LLAMA_CPP_ROOT/download"
    mkdir -p "$download"
    # Only llama-cpp-python itself as source; its build tools come as wheels.
    python3 -m pip download --quiet --no-deps --disable-pip-version-check \
        --no-binary llama-cpp-python "$LLAMA_CPP_SDIST" -d "$download"
    local sdist
    sdist="$(find "$download" -maxdepth 1 -name 'llama_cpp_python-*.tar.gz' | head -n 1)"
    rm -rf "$LLAMA_CPP_ROOT/src.tmp"
    mkdir -p "$LLAMA_CPP_ROOT/src.tmp"
    tar -xzf "$sdist" -C "$LLAMA_CPP_ROOT/src.tmp" --strip-components=3 \
        --wildcards '*/vendor/llama.cpp/*'
    # A submodule pointer to a repository that is not there: cmake would
    # warn about it on every configure.
    rm -f "$LLAMA_CPP_ROOT/src.tmp/.git"
    mv "$LLAMA_CPP_ROOT/src.tmp" "$LLAMA_CPP_ROOT/src"
}

build_llama_cpp_tool() {
    local tool="$1"
    local binary="$LLAMA_CPP_ROOT/build/bin/$tool"
    if [ ! -x "$binary" ]; then
        ./scripts/install-local-model-deps.sh >&2
        [ -f "$LLAMA_CPP_ROOT/src/CMakeLists.txt" ] || fetch_llama_cpp_source
        nice -n 19 cmake -S "$LLAMA_CPP_ROOT/src" -B "$LLAMA_CPP_ROOT/build" \
            -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF -DLLAMA_CURL=OFF \
            -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
            -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON -DGGML_NATIVE=OFF \
            -DGGML_AVX="$GGML_AVX" -DGGML_AVX2="$GGML_AVX2" -DGGML_FMA="$GGML_FMA" \
            -DGGML_F16C="$GGML_F16C" -DGGML_BMI2="$GGML_BMI2" -DGGML_SSE42="$GGML_SSE42" \
            >/dev/null
        nice -n 19 cmake --build "$LLAMA_CPP_ROOT/build" --target "$tool" -j "$(nproc)" >/dev/null
    fi
    echo "$binary"
}
