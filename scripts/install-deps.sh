#!/usr/bin/env bash
# Installs what building and testing agentd needs on a fresh Debian machine
# with a Rust toolchain: the Python venv module for the SDK tests, and
# rustfmt/clippy. Packages are installed only when missing.
set -euo pipefail

need_apt=()
need_docs=()
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need_apt+=(python3-venv)
command -v cc >/dev/null 2>&1 || need_apt+=(build-essential)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "install-deps: apt-get install ${need_apt[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi

if command -v rustup >/dev/null 2>&1; then
    rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
    rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
fi

# Real PDFs the document tests and benchmark read (Debian manuals).
[ -f /usr/share/doc/libtasn1-doc/libtasn1.pdf ] || need_docs+=(libtasn1-doc)
[ -f /usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf ] || need_docs+=(shared-mime-info)
if [ ${#need_docs[@]} -gt 0 ]; then
    echo "install-deps: apt-get install ${need_docs[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_docs[@]}"
fi

# The console's browser tests (tests/e2e/test_console.py) drive Debian's
# Chromium with Playwright; Playwright's own browser download is never used.
need_browser=()
[ -x /usr/bin/chromium ] || need_browser+=(chromium)
[ -x /usr/bin/chromedriver ] || need_browser+=(chromium-driver)
if [ ${#need_browser[@]} -gt 0 ]; then
    echo "install-deps: apt-get install ${need_browser[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_browser[@]}"
fi

# OCR of scanned PDF pages for text-only models (Document Insights).
need_ocr=()
command -v tesseract >/dev/null 2>&1 || need_ocr+=(tesseract-ocr)
[ -n "$(ls /usr/share/tesseract-ocr/*/tessdata/eng.traineddata 2>/dev/null)" ] || need_ocr+=(tesseract-ocr-eng)
if [ ${#need_ocr[@]} -gt 0 ]; then
    echo "install-deps: apt-get install ${need_ocr[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_ocr[@]}"
fi

# PDF reading: PDFium from the pinned pypdfium2 wheel.
"$(dirname "$0")/fetch-pdfium.sh"

# The local model provider builds llama.cpp from source.
"$(dirname "$0")/install-local-model-deps.sh"
