"""The command-line client (`agentd agents|run|run-many|jobs`), driven as a
subprocess against the suite's server, with the fake OpenAI provider
recording what reached the model.

Exit codes under test: 0 success, 1 a job failed or the server refused the
request, 2 usage error, 3 server unreachable (130 after Ctrl-C).
"""

from __future__ import annotations

import collections
import csv
import json
import os
import re
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from conftest import agentd_bin
from fake_openai import Reply
from helpers import (TEXT_INPUT, agent_body, decode_data_url, expect, extraction_config, image_parts,
                     png_bytes, unique)

CLI_TIMEOUT = 120.0


def cli_env(server, home: Path, **overrides: str | None) -> dict[str, str]:
    """The environment of a client command: the server's URL and key, and a
    HOME of its own (no developer config file is read)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AGENTD_") and k not in ("XDG_CONFIG_HOME",)}
    env.update({
        "HOME": str(home),
        "AGENTD_URL": server.base_url,
        "AGENTD_API_KEY": server.api_key,
        "AGENTD_ORGANIZATION_ID": server.org_id,
        "NO_COLOR": "1",
    })
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def cli(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(agentd_bin()), *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=CLI_TIMEOUT, stdin=subprocess.DEVNULL)


def ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, f"rc {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    return proc.stdout


@pytest.fixture
def env(server, tmp_path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    return cli_env(server, home)


def wait_until(predicate, what: str, timeout: float = 120.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the command ended (rc {proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def complete_lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


# ---------------------------------------------------------------------------
# agents
# ---------------------------------------------------------------------------


AGENT_YAML = """\
name: {name}
engine_class_id: MultimodalExtractionEngine
version_name: first
disable_cache: true
input_definitions:
  - key: text
    data_type: text/plain
    description: Text to be processed
engine_config:
  model: gpt-4.1-2025-04-14
  text: "${{text}}"
  instruction: {instruction}
  output_schema:
    type: object
    properties:
      title: {{type: string}}
    required: [title]
    additionalProperties: false
"""


def test_agents_create_export_update_delete_round_trip(env, http, tmp_path):
    name = unique("cli-agent-")
    source = tmp_path / "agent.yaml"
    source.write_text(AGENT_YAML.format(name=name, instruction="Give it a title."))
    agent_id = ok(cli(env, "agents", "create", "-f", str(source))).strip()
    uuid.UUID(agent_id)
    agent = expect(http.get(f"/v1/agents/{agent_id}/"), 200)
    assert agent["name"] == name and agent["disable_cache"] is True

    listed = ok(cli(env, "agents", "list"))
    assert any(line.startswith(agent_id) and name in line for line in listed.splitlines()), listed
    assert agent_id in {a["id"] for a in json.loads(ok(cli(env, "agents", "list", "--json")))}
    shown = json.loads(ok(cli(env, "agents", "get", agent_id)))
    assert shown["agent"]["id"] == agent_id
    assert shown["current_version"]["engine_config"]["instruction"] == "Give it a title."

    # The YAML export is a file `create -f` accepts: the copy has the same configuration.
    exported = tmp_path / "exported.yaml"
    exported.write_text(ok(cli(env, "agents", "export", agent_id)))
    as_json = json.loads(ok(cli(env, "agents", "export", agent_id, "--format", "json")))
    assert as_json["name"] == name
    assert as_json["disable_cache"] is True
    assert as_json["engine_config"]["instruction"] == "Give it a title."
    assert as_json["input_definitions"][0]["key"] == "text"
    copy_id = ok(cli(env, "agents", "create", "-f", str(exported))).strip()
    assert copy_id != agent_id
    copy = json.loads(ok(cli(env, "agents", "export", copy_id, "--format", "json")))
    assert copy == as_json
    json_file = tmp_path / "agent.json"
    json_file.write_text(json.dumps(as_json))
    json_copy = ok(cli(env, "agents", "create", "-f", str(json_file))).strip()
    assert json.loads(ok(cli(env, "agents", "export", json_copy, "--format", "json"))) == as_json

    # update: a changed configuration makes a new, current version.
    first_version = agent["current_version_id"]
    source.write_text(AGENT_YAML.format(name=name, instruction="A better title.").replace(
        "version_name: first", "version_name: second"))
    new_version = ok(cli(env, "agents", "update", agent_id, "-f", str(source))).strip()
    assert new_version != first_version
    current = expect(http.get(f"/v1/agents/{agent_id}/versions/current/"), 200)
    assert current["id"] == new_version
    assert current["version_name"] == "second"
    assert current["engine_config"]["instruction"] == "A better title."
    assert len(expect(http.get(f"/v1/agents/{agent_id}/versions/"), 200)) == 2
    # The same file again changes nothing.
    assert ok(cli(env, "agents", "update", agent_id, "-f", str(source))).strip() == new_version
    assert len(expect(http.get(f"/v1/agents/{agent_id}/versions/"), 200)) == 2

    # A file naming another engine is a usage error, refused before any change.
    other = tmp_path / "other.yaml"
    other.write_text(source.read_text().replace("MultimodalExtractionEngine", "PDFExtractionEngine"))
    refused = cli(env, "agents", "update", agent_id, "-f", str(other))
    assert refused.returncode == 2, refused.stderr
    assert "engine" in refused.stderr

    for gone in (agent_id, copy_id, json_copy):
        ok(cli(env, "agents", "delete", gone))
    assert http.get(f"/v1/agents/{agent_id}/").status_code == 404
    missing = cli(env, "agents", "get", agent_id)
    assert missing.returncode == 1
    # The server's own `detail` is shown.
    detail = http.get(f"/v1/agents/{agent_id}/").json()["detail"]
    assert detail in missing.stderr


def test_agent_file_with_unknown_field_is_a_usage_error(env, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(AGENT_YAML.format(name=unique("x-"), instruction="t") + "modle: typo\n")
    proc = cli(env, "agents", "create", "-f", str(bad))
    assert proc.returncode == 2
    assert "modle" in proc.stderr


def test_profiles_from_the_config_file_and_env_overrides(server, tmp_path, create_agent):
    agent = create_agent()
    home = tmp_path / "home"
    config_dir = home / ".config" / "agentd"
    config_dir.mkdir(parents=True)
    closed = closed_port_url()
    (config_dir / "config.toml").write_text(
        f'[profiles.default]\nurl = "{closed}"\napi_key = "nope"\n\n'
        f'[profiles.main]\nurl = "{server.base_url}"\napi_key = "{server.api_key}"\n'
        f'organization_id = "{server.org_id}"\n'
    )
    bare = cli_env(server, home, AGENTD_URL=None, AGENTD_API_KEY=None, AGENTD_ORGANIZATION_ID=None)
    # The default profile points at a closed port: 3.
    assert cli(bare, "agents", "list").returncode == 3
    # --profile picks another one.
    assert agent["id"] in ok(cli(bare, "agents", "--profile", "main", "list"))
    assert agent["id"] in ok(cli(bare, "agents", "list", "--profile", "main"))
    # Environment variables override the profile's values.
    overridden = cli_env(server, home)
    assert agent["id"] in ok(cli(overridden, "agents", "list"))
    # An unknown profile, or no server at all, is a usage error.
    assert cli(bare, "agents", "list", "--profile", "nope").returncode == 2
    (config_dir / "config.toml").unlink()
    assert cli(bare, "agents", "list").returncode == 2
    # organization_id is sent: another organization's id is refused (403, exit 1).
    wrong_org = cli_env(server, home, AGENTD_ORGANIZATION_ID=str(uuid.uuid4()))
    refused = cli(wrong_org, "agents", "list")
    assert refused.returncode == 1 and "403" in refused.stderr


# ---------------------------------------------------------------------------
# run
# ---------------------------------------------------------------------------


def test_run_with_text_and_a_file(env, fake, create_agent, tmp_path):
    defs = [TEXT_INPUT, {"key": "photo", "data_type": "image/png", "description": "A photo"}]
    agent = create_agent(input_definitions=defs, engine_config=extraction_config(images="${photo}"))
    png = png_bytes(2, 3)
    picture = tmp_path / "pic.png"
    picture.write_bytes(png)
    marker = unique("cli-run-")
    fake.enqueue(Reply.answer({"title": "A red square", "sentiment": "neutral", "score": 4, "tags": ["x"]}))
    table = ok(cli(env, "run", agent["id"], "--input", f"text=look at {marker}", "--input", f"photo=@{picture}"))
    lines = table.splitlines()
    assert lines[0].split() == ["OUTPUT", "VALUE", "COST"]
    assert any(line.startswith("output.title") and "A red square" in line for line in lines), table
    assert any(line.startswith("output.score") and " 4" in line for line in lines), table
    request = fake.only()
    assert marker in request.all_text()
    urls = image_parts(request)
    assert len(urls) == 1
    assert decode_data_url(urls[0]) == ("image/png", png)

    outputs = json.loads(ok(cli(env, "run", agent["id"], "--json", "--input", f"text=again {marker}",
                                "--input", f"photo=@{picture}")))
    assert outputs[0]["key"] == "output"
    assert set(json.loads(outputs[0]["value"])) == {"title", "sentiment", "score", "tags"}


def test_run_a_given_version(env, fake, http, create_agent):
    agent = create_agent(engine_config=extraction_config(instruction="old instruction"))
    first = agent["current_version_id"]
    expect(http.post(f"/v1/agents/{agent['id']}/versions/",
                     json={"engine_config": extraction_config(instruction="new instruction"),
                           "input_definitions": [TEXT_INPUT]}), 201)
    ok(cli(env, "run", agent["id"], "--version", first, "--input", "text=" + unique()))
    assert "old instruction" in fake.only().all_text()


# ---------------------------------------------------------------------------
# run-many
# ---------------------------------------------------------------------------


ROW_RE = re.compile(r"rowmark-(\w+)-(\d+)")


def test_run_many_interrupted_with_sigint_then_resumed_runs_every_row_once(env, fake, http, create_agent, tmp_path):
    # No result cache: a row run twice would reach the fake twice.
    agent = create_agent(engine_config=extraction_config(text="${text}"))
    expect(http.put(f"/v1/agents/{agent['id']}/", json={"disable_cache": True}), 200)
    run_id = uuid.uuid4().hex[:8]
    total = 2000
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"text": f"rowmark-{run_id}-{i}"}) + "\n" for i in range(total)))
    out = tmp_path / "results.jsonl"
    state = tmp_path / "results.jsonl.state"
    args = [str(agentd_bin()), "run-many", agent["id"], "--inputs", str(rows), "--out", str(out),
            "--concurrency", "200"]
    stderr_path = tmp_path / "first.err"
    with open(stderr_path, "w") as stderr:
        first = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=stderr,
                                 stdin=subprocess.DEVNULL)
        try:
            # Half-way: a good share of the rows has results.
            wait_until(lambda: complete_lines(out) >= total // 4, "a quarter of the results", proc=first)
            first.send_signal(signal.SIGINT)
            rc = first.wait(60)
        finally:
            if first.poll() is None:
                first.kill()
    err = stderr_path.read_text()
    assert rc == 130, f"rc {rc}; stderr: {err}"
    assert "resume" in err
    written = complete_lines(out)
    assert total // 4 <= written < total
    assert "progress:" in err  # plain progress lines when stderr is not a terminal

    second = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert second.returncode == 0, second.stderr
    assert f"{total} rows: {total} succeeded, 0 failed" in second.stderr

    results = read_lines(out)
    assert [r["row"] for r in results] == list(range(total))
    for i, result in enumerate(results):
        assert result["input"] == {"text": f"rowmark-{run_id}-{i}"}
        assert result["status"] == "SUCCESS"
        assert result["outputs"][0]["key"] == "output"
    assert len({r["job_id"] for r in results}) == total
    # The fake saw every row exactly once, and the server made one job per row.
    seen = collections.Counter()
    for request in fake.completions:
        for found in set(ROW_RE.findall(request.all_text())):
            if found[0] == run_id:
                seen[int(found[1])] += 1
    assert sorted(seen) == list(range(total))
    assert [row for row, n in seen.items() if n != 1] == []
    assert expect(http.get(f"/v1/agents/{agent['id']}/"), 200)["job_count"] == total
    assert state.exists()

    # Once finished, the same command again changes nothing and runs nothing.
    before = len(fake.completions)
    again = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert again.returncode == 0, again.stderr
    assert read_lines(out) == results
    assert len(fake.completions) == before


def test_async_many_with_the_same_idempotency_key_answers_the_same_jobs(http, fake, create_agent):
    """What run-many relies on when a batch's answer was lost: the same batch
    with the same key makes no new job."""
    agent = create_agent()
    expect(http.put(f"/v1/agents/{agent['id']}/", json={"disable_cache": True}), 200)
    body = {"inputs": [{"text": unique("idem-")} for _ in range(3)]}
    key = {"Idempotency-Key": unique("batch-")}
    first = expect(http.post(f"/v1/agents/run/{agent['id']}/async/many/", json=body, headers=key), 200)
    again = expect(http.post(f"/v1/agents/run/{agent['id']}/async/many/", json=body, headers=key), 200)
    assert again == first and len(set(first)) == 3
    other = expect(http.post(f"/v1/agents/run/{agent['id']}/async/many/", json=body,
                             headers={"Idempotency-Key": unique("other-")}), 200)
    assert not set(other) & set(first)
    fake.wait_for_requests(6)
    assert expect(http.get(f"/v1/agents/{agent['id']}/"), 200)["job_count"] == 6


def test_run_many_reads_csv_with_quoted_commas_and_line_breaks(env, fake, create_agent, tmp_path):
    defs = [TEXT_INPUT, {"key": "lang", "data_type": "text/plain", "description": "Language"}]
    agent = create_agent(input_definitions=defs,
                         engine_config=extraction_config(text="${text} (language: ${lang})"))
    texts = [f"Hello, world {unique()}", f"two\nlines, \"quoted\" {unique()}", f"plain {unique()}"]
    rows = tmp_path / "rows.csv"
    with open(rows, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "lang"])
        for text in texts:
            writer.writerow([text, "en, mostly"])
    assert "\"Hello, world" in rows.read_text()
    out = tmp_path / "out.jsonl"
    proc = cli(env, "run-many", agent["id"], "--inputs", str(rows), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    results = read_lines(out)
    assert [r["input"] for r in results] == [{"text": t, "lang": "en, mostly"} for t in texts]
    prompts = [req.all_text() for req in fake.completions]
    for text in texts:
        assert sum(f"{text} (language: en, mostly)" in p for p in prompts) == 1, (text, prompts)


# ---------------------------------------------------------------------------
# jobs and exit codes
# ---------------------------------------------------------------------------


def closed_port_url() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_exit_codes(env, fake, http, create_agent, tmp_path, server):
    agent = create_agent()
    # 0: success.
    assert cli(env, "agents", "list").returncode == 0
    # 2: usage errors, from clap and from the client's own checks.
    assert cli(env, "run").returncode == 2
    assert cli(env, "run-many", agent["id"], "--inputs", "x.jsonl").returncode == 2
    assert cli(env, "run", agent["id"], "--input", "no-equals-sign").returncode == 2
    assert cli(env, "run", agent["id"], "--input", f"text=@{tmp_path / 'missing.txt'}").returncode == 2
    assert cli(env, "run-many", agent["id"], "--concurrency", "0", "--inputs", "a.jsonl", "--out", "b").returncode == 2
    bad_rows = tmp_path / "bad.jsonl"
    bad_rows.write_text('{"text": "a"}\n[1, 2]\n')
    bad = cli(env, "run-many", agent["id"], "--inputs", str(bad_rows), "--out", str(tmp_path / "bad.out"))
    assert bad.returncode == 2 and "line 2" in bad.stderr
    # 3: nobody listens.
    down = dict(env, AGENTD_URL=closed_port_url())
    for args in (("agents", "list"), ("run", agent["id"], "--input", "text=x"), ("jobs", "get", str(uuid.uuid4()))):
        proc = cli(down, *args)
        assert proc.returncode == 3, (args, proc.stderr)
        assert "cannot reach" in proc.stderr
    # 1: the job failed; the server's detail is printed.
    fake.always(Reply.error(400, "the fake refuses this", "invalid_request_error"))
    failed = cli(env, "run", agent["id"], "--input", "text=" + unique())
    assert failed.returncode == 1, failed.stderr
    job_id = expect(http.post(f"/v1/agents/run/{agent['id']}/async/", json={"text": unique()}), 200)
    waited = cli(env, "jobs", "wait", job_id)
    assert waited.returncode == 1, waited.stderr
    shown = json.loads(waited.stdout)
    assert shown["id"] == job_id and shown["status"] == "FAILURE" and shown["error_message"]
    assert cli(env, "jobs", "get", job_id).returncode == 1
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"text": unique()}) + "\n")
    many = cli(env, "run-many", agent["id"], "--inputs", str(rows), "--out", str(tmp_path / "fail.jsonl"))
    assert many.returncode == 1 and "1 rows: 0 succeeded, 1 failed" in many.stderr
    assert read_lines(tmp_path / "fail.jsonl")[0]["status"] == "FAILURE"
    # A job that succeeded: 0, with its outputs.
    fake.always(None)
    good = expect(http.post(f"/v1/agents/run/{agent['id']}/async/", json={"text": unique()}), 200)
    waited = cli(env, "jobs", "wait", good)
    assert waited.returncode == 0, waited.stderr
    assert json.loads(waited.stdout)["status"] == "SUCCESS"
    assert json.loads(ok(cli(env, "jobs", "get", good)))["outputs"][0]["key"] == "output"
    # An unknown job: the server's 404 detail, exit 1.
    unknown = cli(env, "jobs", "get", str(uuid.uuid4()))
    assert unknown.returncode == 1 and "404" in unknown.stderr


def test_jobs_cancel_a_pending_job(start_server, fake, tmp_path):
    """One worker, busy with a slow job: the next job waits, and is cancelled."""
    srv = start_server({"AGENTD_WORKERS": "1"})
    home = tmp_path / "home"
    home.mkdir()
    env = cli_env(srv, home)
    import httpx
    with httpx.Client(base_url=srv.base_url, headers={"Authorization": f"Bearer {srv.api_key}"},
                      timeout=30) as http:
        agent = expect(http.post("/v1/agents/", json=agent_body()), 201)
        fake.enqueue(Reply.default(delay=5.0))
        busy = expect(http.post(f"/v1/agents/run/{agent['id']}/async/", json={"text": unique()}), 200)
        fake.wait_for_requests(1)
        pending = expect(http.post(f"/v1/agents/run/{agent['id']}/async/", json={"text": unique()}), 200)
        assert json.loads(ok(cli(env, "jobs", "get", pending)))["status"] == "PENDING"
        cancelled = cli(env, "jobs", "cancel", pending)
        assert cancelled.returncode == 0, cancelled.stderr
        waited = cli(env, "jobs", "wait", pending)
        assert waited.returncode == 1
        assert json.loads(waited.stdout)["status"] == "CANCELLED"
        assert cli(env, "jobs", "wait", busy).returncode == 0


def test_a_batch_whose_answer_was_lost_is_not_run_again(env, fake, http, create_agent, tmp_path):
    """Without the state file (as when the client died before recording the
    server's answer), the batch is sent again with the same idempotency key
    and the server answers the jobs it already made."""
    agent = create_agent()
    expect(http.put(f"/v1/agents/{agent['id']}/", json={"disable_cache": True}), 200)
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"text": unique(f"lost-{i}-")}) + "\n" for i in range(5)))
    out = tmp_path / "out.jsonl"
    args = ["run-many", agent["id"], "--inputs", str(rows), "--out", str(out)]
    ok(cli(env, *args))
    first = read_lines(out)
    assert len(fake.completions) == 5
    out.unlink()
    (tmp_path / "out.jsonl.state").unlink()
    ok(cli(env, *args))
    assert read_lines(out) == first
    assert len(fake.completions) == 5
    assert expect(http.get(f"/v1/agents/{agent['id']}/"), 200)["job_count"] == 5


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_run_many_carries_on_across_a_server_restart(start_server, fake, tmp_path):
    settings = {"AGENTD_ADDR": f"127.0.0.1:{free_port()}", "AGENTD_JOB_LEASE_SECS": "2",
                "AGENTD_JOB_POLL_MS": "200"}
    workdir = tmp_path / "server"
    srv = start_server(settings, workdir=workdir)
    import httpx
    with httpx.Client(base_url=srv.base_url, headers={"Authorization": f"Bearer {srv.api_key}"},
                      timeout=30) as http:
        agent = expect(http.post("/v1/agents/", json=agent_body()), 201)
    home = tmp_path / "home"
    home.mkdir()
    env = cli_env(srv, home)
    total = 600
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"text": f"restart row {i} {unique()}"}) + "\n" for i in range(total)))
    out = tmp_path / "out.jsonl"
    args = [str(agentd_bin()), "run-many", agent["id"], "--inputs", str(rows), "--out", str(out),
            "--concurrency", "100"]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)
    try:
        wait_until(lambda: complete_lines(out) >= 100, "the first results", proc=proc)
        srv.stop()
        start_server(settings, workdir=workdir, org_id=srv.org_id, api_key=srv.api_key)
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    # The client retries for a while; if the server took longer, running the
    # same command again is the way to resume.
    if proc.returncode == 3:
        again = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300,
                               stdin=subprocess.DEVNULL)
        proc.returncode, err = again.returncode, again.stderr
    assert proc.returncode == 0, err
    results = read_lines(out)
    assert [r["row"] for r in results] == list(range(total))
    assert all(r["status"] == "SUCCESS" for r in results)
    assert len({r["job_id"] for r in results}) == total
