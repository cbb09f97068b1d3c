"""File inputs given as http(s) URLs (fetched by the worker that runs the job)
or as the ids of files stored by an earlier run; images named in engine_config
by URL."""

from __future__ import annotations

from typing import Iterator

import pytest

from file_server import FileServer
from helpers import (
    PHOTO_INPUTS,
    TEXT_INPUT,
    assert_error,
    decode_data_url,
    expect,
    extraction_config,
    image_parts,
    list_jobs,
    only_output,
    png_bytes,
    unique,
)


@pytest.fixture(scope="module")
def files() -> Iterator[FileServer]:
    server = FileServer()
    yield server
    server.close()


def run_url(agent: dict) -> str:
    return f"/v1/agents/run/{agent['id']}/"


def test_a_file_input_given_as_a_url_is_fetched(http, fake, files, create_agent):
    agent = create_agent(input_definitions=PHOTO_INPUTS, engine_config=extraction_config(images="${photo}"))
    png = png_bytes(3, 2)
    files.files["/photo.png"] = (png, "image/png")
    resp = http.post(run_url(agent), json={"text": "url " + unique(), "photo": files.url("/photo.png")})
    only_output(expect(resp, 200))
    assert decode_data_url(image_parts(fake.only())[0]) == ("image/png", png)
    job = list_jobs(http, agent["id"])["results"][0]
    photo = next(i for i in job["job_inputs"] if i["key"] == "photo")
    assert photo["file_name"] == "photo.png"


def test_a_url_that_fails_or_holds_the_wrong_type_fails_the_run(http, fake, files, create_agent):
    """The worker fetches URL inputs: a sync run answers 400 naming the input
    (the job failed); async runs are covered in test_file_lifecycle.py."""
    agent = create_agent(input_definitions=PHOTO_INPUTS, engine_config=extraction_config(images="${photo}"))
    files.files["/notes.txt"] = (b"plain text", "text/plain")
    missing = http.post(run_url(agent), json={"text": "x", "photo": files.url("/missing.png")})
    body = assert_error(missing, 400, mentions="404")
    assert "photo" in body["detail"], body
    wrong = http.post(run_url(agent), json={"text": "x", "photo": files.url("/notes.txt")})
    body = assert_error(wrong, 400, mentions="data_type")
    assert "photo" in body["detail"], body
    assert fake.completions == []


def test_a_stored_file_id_is_reused(http, fake, create_agent):
    agent = create_agent(input_definitions=PHOTO_INPUTS, engine_config=extraction_config(images="${photo}"))
    png = png_bytes(4, 4)
    first = http.post(run_url(agent), data={"text": "first " + unique()},
                      files={"photo": ("p.png", png, "image/png")})
    only_output(expect(first, 200))
    job = list_jobs(http, agent["id"])["results"][0]
    file_id = next(i for i in job["job_inputs"] if i["key"] == "photo")["value"]
    fake.reset()
    second = http.post(run_url(agent), json={"text": "second " + unique(), "photo": file_id})
    only_output(expect(second, 200))
    assert decode_data_url(image_parts(fake.only())[0]) == ("image/png", png)
    unknown = http.post(run_url(agent), json={"text": "x", "photo": "00000000-0000-4000-8000-000000000000"})
    assert_error(unknown, 400, field="photo", mentions="not found")


def test_images_in_the_config_may_be_urls(http, fake, files, create_agent):
    png = png_bytes(2, 2)
    files.files["/fixed.png"] = (png, "image/png")
    agent = create_agent(input_definitions=[TEXT_INPUT],
                         engine_config=extraction_config(images=files.url("/fixed.png")))
    only_output(expect(http.post(run_url(agent), json={"text": "fixed " + unique()}), 200))
    assert decode_data_url(image_parts(fake.only())[0]) == ("image/png", png)
