"""The run endpoints over raw HTTP: every body shape a Roe client sends."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from fake_openai import Reply
from helpers import (
    TEXT_INPUT,
    assert_error,
    cost_of,
    data_url,
    decode_data_url,
    expect,
    extraction_config,
    image_parts,
    only_output,
    pdf_bytes,
    png_bytes,
    unique,
)

PHOTO_INPUTS = [TEXT_INPUT, {"key": "photo", "data_type": "image/png", "description": "A photo"}]


@pytest.fixture
def agent(create_agent):
    return create_agent()


@pytest.fixture
def photo_agent(create_agent):
    return create_agent(input_definitions=PHOTO_INPUTS, engine_config=extraction_config(images="${photo}"))


@pytest.fixture
def pdf_agent(create_agent):
    """An agent with a PDF input that its engine config does not use (input checks only)."""
    return create_agent(input_definitions=[TEXT_INPUT, {"key": "doc", "data_type": "application/pdf",
                                                        "description": "A PDF"}])


def run_url(agent: dict) -> str:
    return f"/v1/agents/run/{agent['id']}/"


ANSWER = {"title": "T", "sentiment": "neutral", "score": 4, "tags": ["a", "b"]}


def check_run(resp, fake, text: str) -> dict:
    """A 200 run whose output is the fake's answer, and the rendered text reached the model."""
    datum = only_output(expect(resp, 200))
    assert resp.headers["content-type"].startswith("application/json")
    assert json.loads(datum["value"]) == ANSWER
    assert datum["cost"] == pytest.approx(cost_of(100, 20))
    req = fake.only()
    assert any(text in t for t in req.message_texts("user")), req.messages
    return datum


def test_json_flat_body(http, fake, agent):
    fake.enqueue(Reply.answer(ANSWER))
    text = "flat body " + unique()
    resp = http.post(run_url(agent), json={"text": text, "metadata": {"source": "flat"}})
    check_run(resp, fake, text)


def test_json_wrapped_body(http, fake, agent):
    fake.enqueue(Reply.answer(ANSWER))
    text = "wrapped body " + unique()
    resp = http.post(run_url(agent), json={"inputs": {"text": text}, "metadata": {"source": "wrapped"}})
    check_run(resp, fake, text)


def test_json_metadata_as_string(http, fake, agent):
    fake.enqueue(Reply.answer(ANSWER))
    text = "string metadata " + unique()
    resp = http.post(run_url(agent), json={"text": text, "metadata": json.dumps({"a": "1"})})
    check_run(resp, fake, text)


def test_json_metadata_null(http, fake, agent):
    fake.enqueue(Reply.answer(ANSWER))
    text = "null metadata " + unique()
    check_run(http.post(run_url(agent), json={"text": text, "metadata": None}), fake, text)


def test_json_number_is_text(http, fake, agent):
    resp = http.post(run_url(agent), json={"text": 4242424242})
    only_output(expect(resp, 200))
    assert any("4242424242" in t for t in fake.only().message_texts("user"))


def test_multipart_text_fields(http, fake, agent):
    fake.enqueue(Reply.answer(ANSWER))
    text = "multipart " + unique()
    resp = http.post(run_url(agent), files={"text": (None, text), "metadata": (None, json.dumps({"m": "1"}))})
    assert resp.request.headers["content-type"].startswith("multipart/form-data")
    check_run(resp, fake, text)


def test_urlencoded_form(http, fake, agent):
    """What the roe-ai SDK actually sends for run_sync with text-only inputs."""
    fake.enqueue(Reply.answer(ANSWER))
    text = "urlencoded & co " + unique()
    resp = http.post(run_url(agent), data={"text": text, "metadata": json.dumps({"m": "1"})})
    assert resp.request.headers["content-type"] == "application/x-www-form-urlencoded"
    check_run(resp, fake, text)


def test_multipart_text_input_as_text_file(http, fake, agent):
    fake.enqueue(Reply.answer(ANSWER))
    text = "from a file part " + unique()
    resp = http.post(run_url(agent), files={"text": ("notes.txt", text.encode(), "text/plain")})
    check_run(resp, fake, text)


def test_multipart_file_part(http, fake, photo_agent):
    png = png_bytes(4, 4)
    text = "with a photo " + unique()
    resp = http.post(
        run_url(photo_agent),
        data={"text": text, "metadata": json.dumps({"kind": "upload"})},
        files={"photo": ("photo.png", png, "image/png")},
    )
    only_output(expect(resp, 200))
    urls = image_parts(fake.only())
    assert len(urls) == 1, fake.only().messages
    assert decode_data_url(urls[0]) == ("image/png", png)


def test_file_as_data_url(http, fake, photo_agent):
    png = png_bytes(5, 1)
    text = "data url " + unique()
    resp = http.post(run_url(photo_agent), json={"text": text, "photo": data_url(png, "image/png")})
    only_output(expect(resp, 200))
    assert decode_data_url(image_parts(fake.only())[0]) == ("image/png", png)


def test_image_data_url_whose_bytes_are_not_an_image(http, fake, photo_agent):
    resp = http.post(run_url(photo_agent), json={"text": "x", "photo": data_url(b"just some text", "image/png")})
    assert_error(resp, 400, field="photo")
    assert fake.completions == []


def test_pdf_data_url(http, fake, pdf_agent):
    ok = http.post(run_url(pdf_agent), json={"text": "pdf data url " + unique(), "doc": data_url(pdf_bytes(), "application/pdf")})
    only_output(expect(ok, 200))
    for bad in (data_url(b"just some text", "application/pdf"), data_url(png_bytes(), "image/png"),
                "data:application/pdf;base64,@@not-base64@@", "not a file reference"):
        assert_error(http.post(run_url(pdf_agent), json={"text": "x", "doc": bad}), 400, field="doc")
    assert len(fake.completions) == 1


def test_pdf_input_accepts_pdf_and_rejects_others(http, fake, pdf_agent):
    agent = pdf_agent
    ok = http.post(run_url(agent), data={"text": "pdf " + unique()},
                   files={"doc": ("a.pdf", pdf_bytes(), "application/pdf")})
    only_output(expect(ok, 200))
    for name, content, ctype in [
        ("a.pdf", png_bytes(), "application/pdf"),  # a PNG that claims to be a PDF
        ("a.pdf", b"plain text, not a pdf", "application/pdf"),
        ("a.png", png_bytes(), "image/png"),
    ]:
        bad = http.post(run_url(agent), data={"text": "x"}, files={"doc": (name, content, ctype)})
        body = assert_error(bad, 400, field="doc")
        assert "pdf" in json.dumps(body).lower()
    assert len(fake.completions) == 1


def test_run_version_endpoint(http, fake, create_agent):
    agent = create_agent(engine_config=extraction_config("First instruction."))
    v1 = agent["current_version_id"]
    expect(http.post(f"/v1/agents/{agent['id']}/versions/",
                     json={"input_definitions": [TEXT_INPUT],
                           "engine_config": extraction_config("Second instruction.")}), 201)
    text = "versioned " + unique()
    resp = http.post(f"/v1/agents/run/{agent['id']}/versions/{v1}/", json={"text": text, "metadata": {"v": "1"}})
    only_output(expect(resp, 200))
    assert "First instruction." in fake.only().all_text()
    assert "Second instruction." not in fake.only().all_text()

    fake.reset()
    resp = http.post(f"/v1/agents/run/{agent['id']}/versions/{v1}/", files={"text": (None, text + "m")})
    only_output(expect(resp, 200))
    assert "First instruction." in fake.only().all_text()


def test_organization_id_in_query_is_accepted(http, fake, agent, org_id):
    resp = http.post(run_url(agent), params={"organization_id": org_id}, json={"text": "q " + unique()})
    only_output(expect(resp, 200))


def test_metadata_invalid(http, fake, agent):
    for bad in ("not json at all", "[1, 2]", 17):
        resp = http.post(run_url(agent), json={"text": "x", "metadata": bad})
        assert_error(resp, 400, field="metadata")
    assert fake.completions == []


def test_concurrent_runs_get_their_own_answers(server, api_key, fake, agent):
    """Runs in flight together: each response carries the answer to its own input."""
    fake.always(Reply.default(delay=0.3))  # keeps several provider calls open at once
    texts = [f"parallel-{i}-{unique()}" for i in range(6)]

    def run(text: str):
        with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {api_key}"},
                          timeout=30) as c:
            return text, c.post(run_url(agent), json={"text": text})

    with ThreadPoolExecutor(max_workers=len(texts)) as pool:
        results = list(pool.map(run, texts))
    for text, resp in results:
        value = json.loads(only_output(expect(resp, 200))["value"])
        assert text in value["title"], (text, value)  # the fake echoes the user text into strings
    assert len(fake.completions) == len(texts)


def test_job_count_and_most_recent_job(http, fake, agent):
    assert agent["job_count"] == 0 and agent["most_recent_job"] is None
    for i in range(2):
        only_output(expect(http.post(run_url(agent), json={"text": f"count {i} " + unique()}), 200))
    got = expect(http.get(f"/v1/agents/{agent['id']}/"), 200)
    assert got["job_count"] == 2
    assert got["most_recent_job"] is not None


@pytest.mark.parametrize("shape", ["json-flat", "json-wrapped", "multipart", "urlencoded"])
def test_unicode_text_survives_every_body_shape(http, fake, agent, shape):
    text = f"Crème brûlée — 東京 🍮 {unique()}"
    url = run_url(agent)
    if shape == "json-flat":
        resp = http.post(url, json={"text": text})
    elif shape == "json-wrapped":
        resp = http.post(url, json={"inputs": {"text": text}})
    elif shape == "multipart":
        resp = http.post(url, files={"text": (None, text.encode())})
    else:
        resp = http.post(url, data={"text": text})
    only_output(expect(resp, 200))
    assert fake.only().message_texts("user") and any(text in t for t in fake.only().message_texts("user"))


def test_organization_id_body_field_is_not_an_input(http, fake, agent, org_id):
    """SPEC: organization_id may come as a body field; it is checked, not taken as an agent input."""
    ok = http.post(run_url(agent), json={"text": "org in body " + unique(), "organization_id": org_id})
    only_output(expect(ok, 200))
    ok = http.post(run_url(agent), data={"text": "org in form " + unique(), "organization_id": org_id})
    only_output(expect(ok, 200))
    assert_error(http.post(run_url(agent), json={"text": "x", "organization_id": "00000000-0000-4000-8000-000000000000"}), 403)
    assert len(fake.completions) == 2
