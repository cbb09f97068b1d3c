#!/usr/bin/env bash
# Installs what building and testing agentd needs on a fresh Debian machine
# with a Rust toolchain: the Python venv module for the SDK tests, rustfmt and
# clippy, real PDFs, Chromium and Firefox ESR for the console's browser tests, Tesseract for
# OCR, PDFium and llama.cpp's build tools. Packages are installed only when
# missing.
set -euo pipefail

# apt-get install the given packages, if any (as root, or through sudo).
apt_install() {
    [ $# -gt 0 ] || return 0
    echo "install-deps: apt-get install $*"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@"
}

need=()
command -v python3 >/dev/null 2>&1 || need+=(python3)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)
command -v cc >/dev/null 2>&1 || need+=(build-essential)
# Real PDFs the document tests and benchmark read (Debian manuals).
[ -f /usr/share/doc/libtasn1-doc/libtasn1.pdf ] || need+=(libtasn1-doc)
[ -f /usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf ] || need+=(shared-mime-info)
# The console's browser tests (tests/e2e/test_console.py) drive Debian's
# Chromium with Playwright; Playwright's own browser download is never used.
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
# Firefox ESR for the console's Firefox smoke test
# (tests/e2e/test_console_firefox.py), driven over its built-in WebDriver BiDi.
[ -x /usr/bin/firefox-esr ] || need+=(firefox-esr)
# OCR of scanned PDF pages for text-only models (Document Insights).
command -v tesseract >/dev/null 2>&1 || need+=(tesseract-ocr)
[ -n "$(ls /usr/share/tesseract-ocr/*/tessdata/eng.traineddata 2>/dev/null)" ] || need+=(tesseract-ocr-eng)
apt_install "${need[@]}"

if command -v rustup >/dev/null 2>&1; then
    rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
    rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
fi

# PDF reading: PDFium from the pinned pypdfium2 wheel.
"$(dirname "$0")/fetch-pdfium.sh"

# The local model provider builds llama.cpp from source.
"$(dirname "$0")/install-local-model-deps.sh"
