"""The reference for the text-layer figure of scripts/bench-documents.sh:
pypdfium2 (the fastest PDF text library a Python user would pick) reading
the same files on the same machine at the same moment, so that a busy
machine slows both alike. Text only: no character boxes, no reading order.

    python benches/pypdfium2_text.py ROUNDS FILE...

Needs `pip install pypdfium2==5.15.2` (the wheel agentd takes libpdfium.so
from); it is a benchmark reference only, not a test dependency."""

from __future__ import annotations

import sys
import time
from importlib.metadata import version

import pypdfium2 as pdfium


def pages_per_cpu_second(path: str, rounds: int) -> tuple[int, float]:
    data = open(path, "rb").read()
    pages = 0
    started = time.process_time()
    for _ in range(rounds):
        document = pdfium.PdfDocument(data)
        for page in document:
            text_page = page.get_textpage()
            text_page.get_text_range()
            text_page.close()
            page.close()
            pages += 1
        document.close()
    return pages // rounds, pages / (time.process_time() - started)


def main() -> None:
    rounds = int(sys.argv[1])
    for path in sys.argv[2:]:
        pages, rate = pages_per_cpu_second(path, rounds)
        print(f"{path}: pypdfium2 {version('pypdfium2')}, {pages} pages, {rate:.0f} pages per CPU-second (text only)")


if __name__ == "__main__":
    main()
