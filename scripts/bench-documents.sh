#!/usr/bin/env bash
# Document benchmarks, built in release mode:
# 1. text-layer pages per second on two real manuals shipped by Debian
#    packages (36 and 17 pages), through agentd's PDF reader processes, pipe
#    protocol and reading-order code, with 1 reader and with READERS
#    (default 2) reading at once (wall: best of ROUNDS rounds; CPU: pages per
#    CPU-second of the bench and its readers over all rounds, which a busy
#    machine inflates far less); then, at the same moment, the references a
#    Python user would pick for speed (benches/python_pdf_text.py: pypdfium2
#    and PyMuPDF, text only, installed pinned into target/bench-venv); TRIALS
#    times over (default 1), interleaved; then pages rendered to PNG per
#    second at the 100 DPI Document Insights sends to models, in batches of
#    10 pages, with 1 reader and READERS;
# 2. Document Insights end to end: a 500-page PDF through agentd against a
#    fake model at 100 ms a call (benches/documents_bench.py), wall time
#    against the ideal given batch_size and the provider's concurrency, with
#    1 and 2 PDF readers.
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
ROUNDS="${ROUNDS:-30}"
READERS="${READERS:-2}"
TRIALS="${TRIALS:-1}"

./scripts/fetch-pdfium.sh
cargo build --release -q -p agentd-documents --example pdf-bench
BENCH=target/release/examples/pdf-bench

# The references, pinned, in a venv of the benchmark's own.
REFERENCES=target/bench-venv
if [ ! -x "$REFERENCES/bin/python" ]; then
    python3 -m venv "$REFERENCES"
fi
if ! "$REFERENCES/bin/python" -m pip install -q pypdfium2==5.15.2 pymupdf==1.26.7; then
    echo "bench-documents: pypdfium2 and PyMuPDF could not be installed; no reference figures"
    REFERENCES=
fi

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
for trial in $(seq "$TRIALS"); do
    [ "$TRIALS" = 1 ] || echo "trial $trial of $TRIALS"
    "$BENCH" --rounds "$ROUNDS" --dpi 0 --readers 1 "${MANUALS[@]}"
    "$BENCH" --rounds "$ROUNDS" --dpi 0 --readers "$READERS" "${MANUALS[@]}"
    if [ -n "$REFERENCES" ]; then
        "$REFERENCES/bin/python" benches/python_pdf_text.py pypdfium2 "$ROUNDS" "${MANUALS[@]}"
        "$REFERENCES/bin/python" benches/python_pdf_text.py pymupdf "$ROUNDS" "${MANUALS[@]}"
    fi
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
# Rendering (one round of text first: it starts the readers).
"$BENCH" --rounds 1 --dpi 100 --readers 1 "${MANUALS[@]}" | grep rendered
"$BENCH" --rounds 1 --dpi 100 --readers "$READERS" "${MANUALS[@]}" | grep rendered

PYTHON="${PYTHON:-}"
if [ -z "$PYTHON" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
if [ -z "${AGENTD_BIN:-}" ]; then
    cargo build --release -q -p agentd
    export AGENTD_BIN=target/release/agentd
fi
exec "$PYTHON" benches/documents_bench.py "$@"
