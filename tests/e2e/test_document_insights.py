"""Document Insights (PDFExtractionEngine) beyond the text layer: page images
for models that take them, scans read as images or by OCR, sources of values
(use_source), per-batch retries and progress events, large documents.

PDFs are made with reportlab (pdf_factory.py) or come from Debian packages;
the fake provider records what reached the model and answers from it."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from roe import FileUpload

import pdf_factory
from conftest import make_http, make_roe_client
from fake_openai import Reply
from helpers import MODEL, decode_data_url, expect, image_parts, list_jobs, reader_pids, unique, wait_for_job

PDF = "application/pdf"
SUCCESS = 3
FAILURE = 4
STARTED = 1
#: A model of the models file below that takes text only (served by the fake).
TEXT_ONLY_MODEL = "text-only-reader"

ITEMS_SCHEMA = {
    "type": "object",
    "properties": {
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "price": {"type": "number"}},
                "required": ["name", "price"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["items"],
    "additionalProperties": False,
}

ITEM_LINE = re.compile(r"Item (\d{4}) costs (\d+\.\d\d)")


def insights_config(**config) -> dict:
    engine_config = {
        "pdf_files": "${pdf}",
        "instructions": "List every item with its price.",
        "model": MODEL,
        "output_schema": ITEMS_SCHEMA,
    }
    engine_config.update(config)
    return engine_config


def insights_agent(create_agent, **config) -> dict:
    return create_agent(
        engine_class_id="PDFExtractionEngine",
        input_definitions=[{"key": "pdf", "data_type": PDF, "description": "A catalogue"}],
        engine_config=insights_config(**config),
    )


def user_text(req) -> str:
    return "\n".join(req.message_texts("user"))


def items_on_pages(req) -> Reply:
    """Answers with every item line the request's pages hold."""
    items = [{"name": f"Item {n}", "price": float(p)} for n, p in ITEM_LINE.findall(user_text(req))]
    return Reply.answer({"items": items}).build(req)


def run_pdf(http, agent: dict, data: bytes, name: str = "catalogue.pdf", timeout: float = 120.0) -> dict:
    """Runs the agent on a PDF as an async job and returns its final status."""
    job = expect(http.post(f"/v1/agents/run/{agent['id']}/async/", files={"pdf": (name, data, PDF)}), 200)
    return wait_for_job(http, job, timeout=timeout) | {"id": job}


def outputs_of(http, job_id: str) -> dict[str, object]:
    result = expect(http.get(f"/v1/agents/jobs/{job_id}/result/"), 200)
    outputs = result["outputs"] if isinstance(result, dict) else result
    return {d["key"]: json.loads(d["value"]) for d in outputs}


def user_parts(req) -> list[dict]:
    """The content parts of the user message, in order."""
    message = next(m for m in req.messages if m.get("role") == "user")
    content = message["content"]
    return [{"type": "text", "text": content}] if isinstance(content, str) else content


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:8]
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


# ---------------------------------------------------------------------------
# Page images (convert_to_images)
# ---------------------------------------------------------------------------


def test_each_page_goes_with_its_image_in_order_by_default(http, fake, create_agent):
    agent = insights_agent(create_agent, batch_size=3)
    fake.always(Reply(build=items_on_pages))
    status = run_pdf(http, agent, pdf_factory.catalogue_pdf(5))
    assert status["status"] == SUCCESS, status
    assert len(fake.completions) == 2
    pages_seen = []
    for req in fake.completions:
        parts = user_parts(req)
        # Each page: its marker and text, then its rendering.
        for text_part, image_part in zip(parts[::2], parts[1::2]):
            number = int(re.match(r"--- Page (\d+) ---\n", text_part["text"]).group(1))
            first_item = (number - 1) * 3 + 1
            assert f"Item {first_item:04d}" in text_part["text"], text_part
            assert image_part["type"] == "image_url", image_part
            mime, data = decode_data_url(image_part["image_url"]["url"])
            width, height = png_size(data)
            # A4 at 100 DPI.
            assert mime == "image/png" and abs(width - 827) <= 2 and abs(height - 1169) <= 2, (width, height)
            pages_seen.append(number)
        assert len(parts) % 2 == 0, parts
    assert sorted(pages_seen) == [1, 2, 3, 4, 5]
    items = outputs_of(http, status["id"])["output"]["items"]
    assert [i["name"] for i in items] == [f"Item {n:04d}" for n in range(1, 16)]


def test_the_page_images_sent_are_saved_as_references_in_page_order(http, client, fake, create_agent):
    agent = insights_agent(create_agent, batch_size=2)
    fake.always(Reply(build=items_on_pages))
    status = run_pdf(http, agent, pdf_factory.catalogue_pdf(5))
    assert status["status"] == SUCCESS, status
    sent = {}
    for req in fake.completions:
        parts = user_parts(req)
        for text_part, image_part in zip(parts[::2], parts[1::2]):
            number = int(re.match(r"--- Page (\d+) ---\n", text_part["text"]).group(1))
            sent[number] = decode_data_url(image_part["image_url"]["url"])[1]
    saved = outputs_of(http, status["id"])["page_images"]
    assert [(s["document"], s["page"]) for s in saved] == [("catalogue.pdf", n) for n in range(1, 6)]
    for entry in saved:
        assert entry["url"].endswith(f"/v1/agents/jobs/{status['id']}/references/{entry['resource_id']}/")
        response = http.get(f"/v1/agents/jobs/{status['id']}/references/{entry['resource_id']}/")
        assert response.status_code == 200 and response.headers["content-type"] == "image/png"
        # The very image the model got, over HTTP and through the SDK.
        assert response.content == sent[entry["page"]], entry
        assert client.agents.jobs.download_reference(status["id"], entry["resource_id"]) == sent[entry["page"]]


def test_without_convert_to_images_pages_go_as_text_only(http, fake, create_agent):
    agent = insights_agent(create_agent, convert_to_images=False)
    fake.always(Reply(build=items_on_pages))
    status = run_pdf(http, agent, pdf_factory.catalogue_pdf(3))
    assert status["status"] == SUCCESS, status
    assert image_parts(fake.only()) == []
    assert "--- Page 3 ---\nItem 0007 costs" in user_text(fake.only())


def test_a_scanned_page_goes_as_its_image_to_a_model_that_takes_images(http, fake, create_agent):
    agent = insights_agent(create_agent, convert_to_images=False)
    fake.always(Reply(build=items_on_pages))
    data = pdf_factory.with_scanned_page(["Item 0001 costs 1.50", "Item 0002 costs 2.50"], ["Invoice 4711"], 1)
    status = run_pdf(http, agent, data)
    assert status["status"] == SUCCESS, status
    parts = user_parts(fake.only())
    texts = [p.get("text", "") for p in parts]
    # Pages 1 and 3 as text only; page 2 (the scan) as its marker, then its image.
    assert [p["type"] for p in parts] == ["text", "text", "image_url", "text"], parts
    assert texts[0].startswith("--- Page 1 ---\nItem 0001") and texts[3].startswith("--- Page 3 ---\nItem 0002")
    assert texts[1].startswith("--- Page 2 ---\n") and "no text layer" in texts[1]


# ---------------------------------------------------------------------------
# OCR for text-only models
# ---------------------------------------------------------------------------

MODELS_TOML = """
[[models]]
id = "{model}"
provider = "openai"
context_window = 128000
max_output_tokens = 4096
"""


@pytest.fixture(scope="module")
def text_only(start_module_server, session_dir):
    path = session_dir / "text-only-models.toml"
    path.write_text(MODELS_TOML.format(model=TEXT_ONLY_MODEL))
    return start_module_server({"AGENTD_MODELS_FILE": str(path)})


def text_only_agent(http, **config) -> dict:
    """A Document Insights agent on a text-only model (TEXT_ONLY_MODEL unless
    `model` says another)."""
    return expect(http.post("/v1/agents/", json={
        "name": unique("text-only-"),
        "engine_class_id": "PDFExtractionEngine",
        "input_definitions": [{"key": "pdf", "data_type": PDF, "description": "A PDF"}],
        "engine_config": insights_config(**({"model": TEXT_ONLY_MODEL} | config)),
    }), 201)


def test_a_scanned_page_is_read_by_ocr_for_a_text_only_model(text_only, fake):
    with make_http(text_only, text_only.api_key) as http:
        agent = text_only_agent(http)
        fake.always(Reply(build=items_on_pages))
        data = pdf_factory.with_scanned_page(
            ["Item 0001 costs 1.50"], ["Item 0002 costs 2.50", "Item 0003 costs 3.50"], 1)
        status = run_pdf(http, agent, data, timeout=300)
        assert status["status"] == SUCCESS, status
        req = fake.only()
        assert image_parts(req) == [], "a text-only model never gets images"
        text = user_text(req)
        # Page 1 from its text layer, page 2 (the scan) by OCR, in order.
        assert text.index("--- Page 1 ---\nItem 0001 costs 1.50") < text.index("--- Page 2 ---")
        scan = text[text.index("--- Page 2 ---"):]
        assert "Item 0002 costs 2.50" in scan and "Item 0003 costs 3.50" in scan, scan
        items = outputs_of(http, status["id"])["output"]["items"]
        assert [i["name"] for i in items] == ["Item 0001", "Item 0002", "Item 0003"]


def test_values_read_by_ocr_have_sources_on_the_scan(text_only, fake):
    with make_http(text_only, text_only.api_key) as http:
        agent = text_only_agent(http, use_source=True)
        fake.always(Reply(build=items_on_pages))
        lines = ["Item 0002 costs 2.50", "Item 0003 costs 3.50"]
        data = pdf_factory.with_scanned_page(["Item 0001 costs 1.50"], lines, 1)
        status = run_pdf(http, agent, data, timeout=300)
        assert status["status"] == SUCCESS, status
        outputs = outputs_of(http, status["id"])
        assert [i["name"] for i in outputs["output"]["items"]] == ["Item 0001", "Item 0002", "Item 0003"]
        sources = outputs["sources"]
        assert sources["/items/0/name"]["page"] == 1
        # The scan (page 2) is an A4 image of 1240 x 1754 pixels whose lines
        # start at x = 120 px, y = 150 + 70 * line px (top of the text box).
        points_per_pixel = pdf_factory.PAGE_HEIGHT / 1754
        for index, line in ((1, 0), (2, 1)):
            name, price = sources[f"/items/{index}/name"], sources[f"/items/{index}/price"]
            assert name["page"] == 2 and price["page"] == 2, (name, price)
            assert name["text"] == f"Item {index + 1:04d}" and price["text"] == f"{index + 1}.50"
            box = name["bbox"]
            assert abs(box["left"] - 120 * points_per_pixel) < 6, box
            top = (150 + 70 * line) * points_per_pixel
            assert abs(box["top"] - top) < 12 and box["top"] < box["bottom"] < top + 30, (box, top)
            assert price["bbox"]["left"] > box["right"] and abs(price["bbox"]["top"] - box["top"]) < 6


def test_without_tesseract_a_scan_for_a_text_only_model_fails_naming_the_package(
        start_server, session_dir, fake):
    path = session_dir / "text-only-no-ocr.toml"
    path.write_text(MODELS_TOML.format(model=TEXT_ONLY_MODEL))
    srv = start_server({"AGENTD_MODELS_FILE": str(path), "AGENTD_TESSERACT": "/nonexistent/tesseract"})
    with make_http(srv, srv.api_key) as http:
        agent = text_only_agent(http)
        status = run_pdf(http, agent, pdf_factory.with_scanned_page([], ["Item 0001 costs 1.50"], 0))
        assert status["status"] == FAILURE, status
        assert "tesseract-ocr" in status["error_message"], status
        assert fake.completions == []


# ---------------------------------------------------------------------------
# use_source
# ---------------------------------------------------------------------------


def test_sources_give_each_value_its_page_text_and_box(http, fake, create_agent):
    agent = insights_agent(create_agent, use_source=True, batch_size=2, convert_to_images=False)
    fake.always(Reply(build=items_on_pages))
    status = run_pdf(http, agent, pdf_factory.catalogue_pdf(5))
    assert status["status"] == SUCCESS, status
    outputs = outputs_of(http, status["id"])
    items = outputs["output"]["items"]
    sources = outputs["sources"]
    assert len(items) == 15
    for index, item in enumerate(items):
        number = int(item["name"].split()[1])
        page, line = divmod(number - 1, 3)
        name = sources[f"/items/{index}/name"]
        price = sources[f"/items/{index}/price"]
        assert name["document"] == "catalogue.pdf"
        assert name["page"] == page + 1 and price["page"] == page + 1, (item, name, price)
        assert name["text"] == item["name"]
        assert price["text"] == f"{item['price']:.2f}"
        # reportlab wrote the line's baseline at y = 780 - 14 * line (origin
        # bottom left); sources measure from the top left.
        baseline_from_top = pdf_factory.PAGE_HEIGHT - (780 - 14 * line)
        box = name["bbox"]
        assert abs(box["left"] - 72) < 1.5, box
        assert box["top"] < baseline_from_top < box["bottom"] + 0.5, (box, baseline_from_top)
        assert box["bottom"] - box["top"] < 14, box
        assert price["bbox"]["left"] > box["right"], (box, price)
        assert abs(price["bbox"]["top"] - box["top"]) < 1, (box, price)


def test_without_use_source_there_is_one_output(http, fake, create_agent):
    agent = insights_agent(create_agent, convert_to_images=False)
    fake.always(Reply(build=items_on_pages))
    status = run_pdf(http, agent, pdf_factory.catalogue_pdf(2))
    assert list(outputs_of(http, status["id"])) == ["output"]


REAL_PDF = Path("/usr/share/doc/libtasn1-doc/libtasn1.pdf")


@pytest.mark.skipif(not REAL_PDF.exists(), reason="scripts/install-deps.sh installs libtasn1-doc")
def test_sources_point_into_a_real_world_pdf_through_the_sdk(server, fake, tmp_path):
    """The SDK runs Document Insights on a Debian manual; the answer quotes a
    phrase from one page, and its source names that page."""
    chosen = {}

    def quote_from_page_three(req) -> Reply:
        text = user_text(req)
        match = re.search(r"--- Page 3 ---\n(.*?)(?=\n--- Page |\Z)", text, re.S)
        if match:
            words = [w for w in match.group(1).split() if w.isalpha() and len(w) > 3]
            chosen["phrase"] = " ".join(words[:1])
        return Reply.answer({"phrase": chosen.get("phrase", "") if match else ""}).build(req)

    fake.always(Reply(build=quote_from_page_three))
    client = make_roe_client(server, server.api_key, server.org_id)
    try:
        agent = client.agents.create(
            name=unique("manual-"),
            engine_class_id="PDFExtractionEngine",
            input_definitions=[{"key": "pdf", "data_type": PDF, "description": "A manual"}],
            engine_config={
                "pdf_files": "${pdf}", "instructions": "Quote a word of page 3.", "model": MODEL,
                "use_source": True, "convert_to_images": False, "batch_size": 2,
                "output_schema": {"type": "object", "properties": {"phrase": {"type": "string"}},
                                  "required": ["phrase"], "additionalProperties": False},
            },
        )
        path = tmp_path / "libtasn1.pdf"
        path.write_bytes(REAL_PDF.read_bytes())
        outputs = client.agents.run_sync(
            str(agent.id), pdf=FileUpload(path=str(path), filename="libtasn1.pdf", mime_type=PDF))
    finally:
        client.close()
    by_key = {d.key: json.loads(d.value) for d in outputs}
    assert by_key["output"]["phrase"] == chosen["phrase"] and chosen["phrase"]
    source = by_key["sources"]["/phrase"]
    assert source["page"] == 3, source
    assert source["text"].lower() == chosen["phrase"].lower()
    assert 0 <= source["bbox"]["left"] < source["bbox"]["right"]
    assert 0 <= source["bbox"]["top"] < source["bbox"]["bottom"]


# ---------------------------------------------------------------------------
# Batches: retries, progress, many pages
# ---------------------------------------------------------------------------


def test_a_failed_batch_is_retried_alone_and_progress_is_reported(http, fake, create_agent):
    agent = insights_agent(create_agent, batch_size=2, convert_to_images=False)
    failed = {"done": False}

    def fail_page_three_once(req) -> Reply:
        if "--- Page 3 ---" in user_text(req) and not failed["done"]:
            failed["done"] = True
            return Reply.error(500)
        return items_on_pages(req)

    fake.always(Reply(build=fail_page_three_once))
    status = run_pdf(http, agent, pdf_factory.catalogue_pdf(6))
    assert status["status"] == SUCCESS, status
    calls = [re.findall(r"--- Page (\d+) ---", user_text(r)) for r in fake.completions]
    assert sorted(map(tuple, calls)) == [("1", "2"), ("3", "4"), ("3", "4"), ("5", "6")], calls
    items = outputs_of(http, status["id"])["output"]["items"]
    assert [i["name"] for i in items] == [f"Item {n:04d}" for n in range(1, 19)]
    job = next(j for j in list_jobs(http, agent["id"])["results"] if j["id"] == status["id"])
    progress = [e.get("error_message", "") for e in job["status_events"] if e["status_code"] == STARTED]
    done = sorted(m for m in progress if re.match(r"batch \d/3 done", m))
    assert [m[:14] for m in done] == ["batch 1/3 done", "batch 2/3 done", "batch 3/3 done"], progress
    assert any("pages 3-4" in m and "retrying" in m for m in progress), progress


def test_a_batch_that_keeps_failing_fails_the_job(http, fake, create_agent):
    agent = insights_agent(create_agent, batch_size=2, convert_to_images=False)
    fake.always(Reply.error(500))
    status = run_pdf(http, agent, pdf_factory.catalogue_pdf(2))
    assert status["status"] == FAILURE, status
    assert len(fake.completions) == 3, "three attempts of the one batch"


SMALL_MODEL = "small-context-reader"


@pytest.fixture(scope="module")
def small_context(start_module_server, session_dir):
    """A text-only model with the local model's 2,048-token context window."""
    path = session_dir / "small-context-models.toml"
    path.write_text(MODELS_TOML.format(model=SMALL_MODEL).replace("128000", "2048"))
    return start_module_server({"AGENTD_MODELS_FILE": str(path)})


def long_catalogue_pages(pages: int, items_per_page: int) -> list[str]:
    """Pages of long item lines, numbered across the document."""
    filler = "in stock, ships in two days, warranty included"
    return ["\n".join(
        f"Item {n:04d} costs {n % 97 + 0.5:.2f} {filler}"
        for n in range(page * items_per_page + 1, (page + 1) * items_per_page + 1)
    ) for page in range(pages)]


def test_a_batch_over_a_2048_token_context_is_split_never_cut(small_context, fake):
    with make_http(small_context, small_context.api_key) as http:
        agent = text_only_agent(http, model=SMALL_MODEL, batch_size=10)
        fake.always(Reply(build=items_on_pages))
        # 10 pages of 10 lines of about 70 characters (some 230 tokens a
        # page): one batch of 10 pages, more than a 2,048-token window holds,
        # so it must reach the model in parts.
        status = run_pdf(http, agent, pdf_factory.pages_pdf(long_catalogue_pages(10, 10)))
        assert status["status"] == SUCCESS, status
        calls = [re.findall(r"--- Page (\d+) ---", user_text(r)) for r in fake.completions]
        assert len(calls) > 1, calls
        assert sorted(int(p) for call in calls for p in call) == list(range(1, 11)), calls
        for req in fake.completions:
            # Each part fits the window with room for the answer (3 characters a token).
            assert len(user_text(req)) < 3 * 2048, len(user_text(req))
        items = outputs_of(http, status["id"])["output"]["items"]
        assert [i["name"] for i in items] == [f"Item {n:04d}" for n in range(1, 101)]


def test_a_page_larger_than_the_context_fails_the_job_saying_so(small_context, fake):
    with make_http(small_context, small_context.api_key) as http:
        agent = text_only_agent(http, model=SMALL_MODEL)
        fake.always(Reply(build=items_on_pages))
        # 54 lines of about 90 characters: some 1,600 tokens, more than the
        # window leaves for pages once the instructions and the answer have room.
        crowded = "\n".join(f"{line}, sold by the dozen only" for line in long_catalogue_pages(1, 54)[0].split("\n"))
        status = run_pdf(http, agent, pdf_factory.pages_pdf(["Item 0001 costs 1.50", crowded]))
        assert status["status"] == FAILURE, status
        assert "page 2 of 'catalogue.pdf'" in status["error_message"], status
        assert "context window" in status["error_message"], status
        assert fake.completions == [], "nothing is sent cut short"


def items_per_page(http, fake, create_agent, pages: int) -> float:
    agent = insights_agent(create_agent, batch_size=10, convert_to_images=False)
    fake.always(Reply(build=items_on_pages))
    status = run_pdf(http, agent, pdf_factory.catalogue_pdf(pages), timeout=300)
    assert status["status"] == SUCCESS, status
    items = outputs_of(http, status["id"])["output"]["items"]
    assert [i["name"] for i in items] == [f"Item {n:04d}" for n in range(1, 3 * pages + 1)]
    return len(items) / pages


def test_a_200_page_catalogue_yields_as_many_items_per_page_as_a_5_page_excerpt(http, fake, create_agent):
    excerpt = items_per_page(http, fake, create_agent, 5)
    fake.reset()
    whole = items_per_page(http, fake, create_agent, 200)
    assert whole == excerpt == 3


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    """A process's RSS (or VmHWM) in KiB; 0 once it has exited."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0
    for line in status.splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def server_processes(server) -> list[int]:
    """The server and its PDF reader processes, where PDFium's memory is."""
    return [server.proc.pid, *reader_pids(server.proc.pid)]


def total_rss_kib(pids: list[int], field: str = "VmRSS") -> int:
    return sum(rss_kib(pid, field) for pid in pids)


def reset_peak_rss(pid: int) -> bool:
    """Sets the process's VmHWM back to its current RSS (Linux 4.0+)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


@pytest.mark.parametrize("pages, batch_size, images", [
    (1000, 50, False),
    # Rendering is slow in debug builds: fewer pages, but three times as
    # many batches as run at once, so that memory held by finished batches
    # would show.
    (240, 10, True),
])
def test_a_large_pdf_runs_in_memory_bounded_by_the_pages_in_flight(
        server, http, fake, create_agent, pages, batch_size, images):
    agent = insights_agent(create_agent, batch_size=batch_size, convert_to_images=images)
    fake.always(Reply(build=items_on_pages))
    # Warm up: PDFium loaded, pools filled.
    assert run_pdf(http, agent, pdf_factory.catalogue_pdf(3))["status"] == SUCCESS
    fake.reset()
    fake.always(Reply(build=items_on_pages))
    data = pdf_factory.catalogue_pdf(pages, items_per_page=1)
    # The server and its PDF readers together; a reader started during the
    # job counts wholly as growth.
    processes = server_processes(server)
    before = total_rss_kib(processes)
    hwm_reset = all([reset_peak_rss(pid) for pid in processes])
    job = expect(http.post(f"/v1/agents/run/{agent['id']}/async/", files={"pdf": ("big.pdf", data, PDF)}), 200)
    # The highest RSS seen while the job runs (sampled between status polls).
    peak = before
    deadline = time.monotonic() + 900
    while True:
        processes = sorted(set(processes) | set(server_processes(server)))
        peak = max(peak, total_rss_kib(processes))
        status = expect(http.get(f"/v1/agents/jobs/{job}/status/"), 200)
        if status["status"] in (SUCCESS, FAILURE) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    # The kernel's high-water marks, reset when the job started, catch a
    # peak between two samples (their sum bounds the peak of the sum).
    if hwm_reset:
        peak = max(peak, total_rss_kib(processes, "VmHWM"))
    assert status["status"] == SUCCESS, status
    assert len(fake.completions) == pages // batch_size
    if images:
        assert len(image_parts(fake.completions[0])) == batch_size
    growth = peak - before
    print(f"{pages} pages, images={images}: RSS of the server and {len(processes) - 1} PDF reader(s) "
          f"{before // 1024} MiB before, peak {peak // 1024} MiB")
    assert growth < 200 * 1024, f"RSS grew by {growth // 1024} MiB"


def test_a_job_saving_page_images_survives_frequent_lease_renewals(start_server, fake):
    """A lease is renewed every second while the job saves a page image
    after another: the renewal waits for SQLite's write lock, which a save
    of the job holds (it once deadlocked the job when the worker stopped
    polling the job during the renewal)."""
    srv = start_server({"AGENTD_JOB_LEASE_SECS": "3", "AGENTD_PDF_READERS": "2"})
    fake.always(Reply(build=items_on_pages))
    with make_http(srv, srv.api_key) as http:
        agent = insights_agent(lambda **kw: expect(http.post("/v1/agents/", json={
            "name": unique("leases-"), **kw}), 201), batch_size=10)
        status = run_pdf(http, agent, pdf_factory.catalogue_pdf(120, items_per_page=1), timeout=600)
        assert status["status"] == SUCCESS, status
        assert len(outputs_of(http, status["id"])["page_images"]) == 120
