#!/usr/bin/env bash
# Text-layer pages per second on two real manuals shipped by Debian packages
# (36 and 17 pages), through agentd's PDFium thread and reading-order code
# (best of 5 rounds each), built in release mode.
# Needs the PDFium library: scripts/fetch-pdfium.sh (or AGENTD_PDFIUM_PATH).
set -euo pipefail
cd "$(dirname "$0")/.."

MANUALS=(
    /usr/share/doc/libtasn1-doc/libtasn1.pdf
    /usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf
)
for manual in "${MANUALS[@]}"; do
    if [ ! -f "$manual" ]; then
        echo "bench-documents: $manual is missing (apt-get install libtasn1-doc shared-mime-info)" >&2
        exit 1
    fi
done

./scripts/fetch-pdfium.sh
cargo build --release -q -p agentd-documents --example pdf-bench
target/release/examples/pdf-bench --rounds "${ROUNDS:-5}" "${MANUALS[@]}"
