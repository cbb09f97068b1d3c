"""Files in an S3 bucket (a moto server on loopback): a file uploaded to one
host is read by a worker process on another host (its own data folder),
delete-data removes the object from the bucket, and a bucket that does not
answer gives uploads a 503 and jobs a readable error, never a lost job."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import httpx
import pytest

from file_server import FileServer
from helpers import (
    PHOTO_INPUTS,
    FAILURE,
    SUCCESS,
    TEXT_INPUT,
    agent_body,
    assert_error,
    decode_data_url,
    expect,
    extraction_config,
    image_parts,
    list_jobs,
    png_bytes,
    unique,
    wait_for_job,
)
from conftest import AgentdWorker
from hosts import MotoS3, unreachable_store_env


@pytest.fixture(scope="module")
def moto(session_dir: Path) -> Iterator[MotoS3]:
    s3 = MotoS3(session_dir)
    yield s3
    s3.stop()


def http_of(srv) -> httpx.Client:
    return httpx.Client(base_url=srv.base_url, headers={"Authorization": f"Bearer {srv.api_key}"}, timeout=60)


def photo_agent(http: httpx.Client) -> dict:
    body = agent_body(input_definitions=PHOTO_INPUTS, engine_config=extraction_config(images="${photo}"))
    return expect(http.post("/v1/agents/", json=body), 201)


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_a_file_uploaded_to_one_host_is_read_by_a_worker_on_another(start_server, session_dir, moto, fake):
    # Host A answers the API and runs nothing; host B only runs jobs.
    host_a = start_server({**moto.env(), "AGENTD_WORKERS": "0"})
    worker = AgentdWorker.beside(host_a, session_dir / ("host-b-" + unique()),
                                 {**moto.env(), "AGENTD_WORKERS": "2"})
    try:
        with http_of(host_a) as http:
            agent = photo_agent(http)
            png = png_bytes(7, 3)
            job_id = expect(http.post(f"/v1/agents/run/{agent['id']}/async/", data={"text": "t " + unique()},
                                      files={"photo": ("p.png", png, "image/png")}), 200)
            (job,) = list_jobs(http, agent["id"])["results"]
            assert job["id"] == job_id
            file_id = next(i for i in job["job_inputs"] if i["key"] == "photo")["value"]
            assert f"files/{file_id}" in moto.keys()
            assert wait_for_job(http, job_id, timeout=60)["status"] == SUCCESS
            # Host B sent the uploaded bytes to the provider, read from the bucket.
            assert decode_data_url(image_parts(fake.only())[0]) == ("image/png", png)
            # Neither host kept a copy in its own folder.
            assert files_in(host_a.workdir / "files") == []
            assert files_in(worker.workdir / "files") == []

            got = expect(http.post(f"/v1/agents/jobs/{job_id}/delete-data/"), 200)
            assert got["deleted_count"] == 1, got
            assert f"files/{file_id}" not in moto.keys()
    finally:
        worker.stop()


def test_deleting_an_agent_removes_its_objects(start_server, moto, fake):
    host = start_server(moto.env())
    with http_of(host) as http:
        agent = photo_agent(http)
        before = set(moto.keys())
        resp = http.post(f"/v1/agents/run/{agent['id']}/", data={"text": "t " + unique()},
                         files={"photo": ("p.png", png_bytes(2, 2), "image/png")})
        expect(resp, 200)
        added = set(moto.keys()) - before
        assert len(added) == 1, added
        expect(http.delete(f"/v1/agents/{agent['id']}/"), 204)
        assert not added & set(moto.keys())


@pytest.fixture
def file_server() -> Iterator[FileServer]:
    server = FileServer()
    yield server
    server.close()


def test_an_unreachable_store_is_a_503_for_uploads_and_a_readable_job_error(start_server, file_server, fake):
    host = start_server(unreachable_store_env())
    with http_of(host) as http:
        agent = photo_agent(http)
        resp = http.post(f"/v1/agents/run/{agent['id']}/async/", data={"text": "t"},
                         files={"photo": ("p.png", png_bytes(), "image/png")})
        body = assert_error(resp, 503, mentions="file store is unavailable")
        assert "127.0.0.1" not in str(body), body

        # A URL input is fetched by the worker, which cannot store it: the
        # job is accepted, then ends failed with a readable reason.
        file_server.files["/p.png"] = (png_bytes(), "image/png")
        job_id = expect(http.post(f"/v1/agents/run/{agent['id']}/async/",
                                  json={"text": "t", "photo": file_server.url("/p.png")}), 200)
        status = wait_for_job(http, job_id, timeout=120)
        assert status["status"] == FAILURE, status
        message = status.get("error_message") or ""
        assert "file store could not be reached" in message, message
        for internal in ("127.0.0.1", "S3", "Generic", "error sending request"):
            assert internal not in message, message
        assert fake.completions == []
