#!/usr/bin/env bash
# Installs what building the local model provider needs on Debian/Ubuntu:
# llama-cpp-sys-2 compiles llama.cpp from source with CMake and generates its
# bindings with bindgen (libclang). Installs only what is missing.
set -euo pipefail

need_apt=()
command -v cmake >/dev/null 2>&1 || need_apt+=(cmake)
command -v clang >/dev/null 2>&1 || need_apt+=(clang)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
command -v c++ >/dev/null 2>&1 || need_apt+=(g++)
# bindgen loads libclang.so at build time; clang alone does not always ship it.
if ! ldconfig -p 2>/dev/null | grep -q 'libclang[-.0-9]*\.so'; then
    need_apt+=(libclang-dev)
fi

if [ ${#need_apt[@]} -gt 0 ]; then
    echo "install-local-model-deps: apt-get install ${need_apt[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi
