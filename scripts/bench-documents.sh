#!/usr/bin/env bash
# Document benchmarks, built in release mode:
# 1. text-layer pages per second on two real manuals shipped by Debian
#    packages (36 and 17 pages), through agentd's PDFium thread and
#    reading-order code (wall: best of ROUNDS rounds; CPU: pages per
#    CPU-second over all rounds, which a busy machine inflates far less),
#    then, when pypdfium2 is in the venv, pypdfium2 on the same files at the
#    same moment as the reference (benches/pypdfium2_text.py); and pages
#    rendered to PNG per second at the 100 DPI Document Insights sends to
#    models;
# 2. Document Insights end to end: a 500-page PDF through agentd against a
#    fake model at 100 ms a call (benches/documents_bench.py), wall time
#    against the ideal given batch_size and the provider's concurrency.
# Needs the PDFium library: scripts/fetch-pdfium.sh (or AGENTD_PDFIUM_PATH),
# and the e2e venv (.venv, for reportlab) for part 2.
# Extra arguments go to documents_bench.py, e.g. --pages 200 --batches 10.
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
target/release/examples/pdf-bench --rounds "${ROUNDS:-30}" "${MANUALS[@]}"

PYTHON="${PYTHON:-}"
if [ -z "$PYTHON" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
if "$PYTHON" -c "import pypdfium2" 2>/dev/null; then
    "$PYTHON" benches/pypdfium2_text.py "${ROUNDS:-30}" "${MANUALS[@]}"
else
    echo "bench-documents: pypdfium2 is not installed, no reference figure" \
        "($PYTHON -m pip install pypdfium2==5.15.2)"
fi

if [ -z "${AGENTD_BIN:-}" ]; then
    cargo build --release -q -p agentd
    export AGENTD_BIN=target/release/agentd
fi
exec "$PYTHON" benches/documents_bench.py "$@"
