#!/usr/bin/env python3
"""Document Insights end to end: one N-page PDF (default 500) through the
release agentd against a fake model that answers every call after a fixed
latency (default 100 ms).

Not a test; run it with scripts/bench-documents.sh. For each
(PDF readers, batch_size, provider concurrency, convert_to_images) it starts
agentd on a fresh SQLite database with AGENTD_PDF_READERS set, uploads the
PDF in one async run, waits for the job, and prints:

  pages | readers | batch | concurrency | images | calls | wall s | ideal s | % of ideal | peak in flight | peak RSS growth MiB

* ideal s: waves × latency, where a wave is as many batches as run at once:
  min(8 batches in flight per run, the provider's max_concurrency). Reading,
  rendering and everything else is taken to cost nothing.
* peak RSS growth: the highest VmRSS of the server and its PDF reader
  processes together while the job ran, minus theirs before (readers are
  started by the upload, so theirs counts wholly).

The fake model and the server come from jobs_bench.py (same folder).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))

import jobs_bench  # noqa: E402
import pdf_factory  # noqa: E402
from helpers import reader_pids  # noqa: E402

BATCHES_IN_FLIGHT = 8
SCHEMA = jobs_bench.SCHEMA


def multipart(field: str, name: str, data: bytes, mime: str) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{name}\"\r\n"
        f"Content-Type: {mime}\r\n\r\n"
    ).encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def rss_kib(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def with_readers(pid: int) -> list[int]:
    """The server and its PDF reader processes."""
    return [pid, *reader_pids(pid)]


def measure(binary: Path, fake: jobs_bench.FakeModel, pdf: bytes, pages: int, readers: int, batch: int,
            concurrency: int, images: bool) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="agentd-docbench-"))
    models = workdir / "models.toml"
    models.write_text(f"[providers.openai]\nmax_concurrency = {concurrency}\n")
    os.environ["AGENTD_MODELS_FILE"] = str(models)
    os.environ["AGENTD_PDF_READERS"] = str(readers)
    srv = jobs_bench.Agentd(binary, workdir, fake.base_url, workers=4,
                            database_url=f"sqlite://{workdir / 'agentd.db'}")
    try:
        agent = srv.request("POST", "/v1/agents/", {
            "name": "docbench",
            "engine_class_id": "PDFExtractionEngine",
            "input_definitions": [{"key": "pdf", "data_type": "application/pdf", "description": "PDF"}],
            "engine_config": {"model": jobs_bench.MODEL, "pdf_files": "${pdf}", "instructions": "Label it.",
                              "batch_size": batch, "convert_to_images": images, "output_schema": SCHEMA},
        })
        fake.reset()
        body, content_type = multipart("pdf", "bench.pdf", pdf, "application/pdf")
        before = sum(rss_kib(p) for p in with_readers(srv.proc.pid))
        peak = before
        started = time.monotonic()
        req = urllib.request.Request(f"{srv.base_url}/v1/agents/run/{agent['id']}/async/", data=body, method="POST",
                                     headers={"Authorization": f"Bearer {srv.api_key}", "Content-Type": content_type})
        with urllib.request.urlopen(req, timeout=120) as resp:
            job = json.loads(resp.read())
        while True:
            peak = max(peak, sum(rss_kib(p) for p in with_readers(srv.proc.pid)))
            status = srv.request("GET", f"/v1/agents/jobs/{job}/status/")
            if status.get("status") in jobs_bench.FINAL:
                break
            time.sleep(0.02)
        wall = time.monotonic() - started
        if status["status"] != 3:
            raise SystemExit(f"the job did not succeed: {status}")
        calls = math.ceil(pages / batch)
        waves = math.ceil(calls / min(BATCHES_IN_FLIGHT, concurrency))
        ideal = waves * fake.latency
        return {"pages": pages, "readers": readers, "batch": batch, "concurrency": concurrency, "images": images,
                "calls": fake.count, "wall": wall, "ideal": ideal, "pct": 100 * ideal / wall,
                "in_flight": fake.max_in_flight, "rss": (peak - before) / 1024}
    finally:
        srv.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=500)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--batches", default="10,50", help="batch sizes, comma-separated")
    parser.add_argument("--concurrency", default="4,16", help="provider max_concurrency values")
    parser.add_argument("--images", default="false,true", help="convert_to_images values")
    parser.add_argument("--readers", default="1,2", help="AGENTD_PDF_READERS values")
    args = parser.parse_args()
    binary = Path(os.environ.get("AGENTD_BIN", "target/release/agentd")).resolve()
    os.environ.setdefault("AGENTD_PDFIUM_PATH", str(Path("data/lib/libpdfium.so").resolve()))
    pdf = pdf_factory.catalogue_pdf(args.pages)
    fake = jobs_bench.FakeModel(args.latency).start()
    print("pages | readers | batch | concurrency | images | calls | wall s | ideal s | % of ideal "
          "| peak in flight | peak RSS growth MiB")
    try:
        for images in [v.strip() == "true" for v in args.images.split(",")]:
            for batch in [int(v) for v in args.batches.split(",")]:
                for concurrency in [int(v) for v in args.concurrency.split(",")]:
                    for readers in [int(v) for v in args.readers.split(",")]:
                        r = measure(binary, fake, pdf, args.pages, readers, batch, concurrency, images)
                        print(f"{r['pages']} | {r['readers']} | {r['batch']} | {r['concurrency']} | "
                              f"{r['images']} | {r['calls']} | {r['wall']:.2f} | {r['ideal']:.2f} | "
                              f"{r['pct']:.0f}% | {r['in_flight']} | {r['rss']:.0f}", flush=True)
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
