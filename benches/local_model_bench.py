#!/usr/bin/env python3
"""Accuracy and speed of agentd's local model against llama.cpp's llama-server.

Not a test (pytest does not collect it); run it with scripts/bench-local-accuracy.sh, which
builds ``local-eval`` (agentd's local provider, as the extraction engine calls it) and
``llama-server`` (from the llama.cpp sources of the llama-cpp-python sdist) first.

The documents come from ``benches/local_model_docs.py`` (seeded). Each one is sent as
agentd's MultimodalExtractionEngine sends it: its system prompt (read from
crates/agentd-engines/src/multimodal.rs) plus the agent's instruction, the document as the
user message, and the agent's output schema. llama-server gets the same messages with the
schema as ``response_format: json_schema`` and, in its system message, the sentence agentd
used to add before this benchmark ("Answer with one JSON value that matches this JSON
Schema: ..."), greedy decoding (temperature 0), its prompt cache on unless
``--no-server-cache``.

For each side it prints:

* schema-valid answers, all fields exactly right, and per-field exact matches;
* requests/s with ``--clients`` (default 2) clients, each sending its next document when
  its answer comes back;
* the median latency of a request alone (one client, the first ``--latency-count``
  documents);
* prompt tokens evaluated per request (not taken from a cache), and peak RSS.

The two run one after the other on the same GGUF and thread count, so a noisy machine
affects both; compare ratios.

Only the standard library is used.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import local_model_docs  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ENGINE_SOURCE = ROOT / "crates/agentd-engines/src/multimodal.rs"
OLD_SCHEMA_HINT = "Answer with one JSON value that matches this JSON Schema:\n"


def engine_system_prompt() -> str:
    """The extraction engine's system prompt, read from its source."""
    source = ENGINE_SOURCE.read_text()
    match = re.search(r'const SYSTEM_PROMPT: &str = "(.*?)";', source, re.S)
    if not match:
        raise SystemExit(f"SYSTEM_PROMPT not found in {ENGINE_SOURCE}")
    # A Rust string literal with `\` line continuations.
    return re.sub(r"\\\n\s*", "", match.group(1))


def requests_for(documents: list[dict]) -> list[dict]:
    system = engine_system_prompt()
    return [
        {
            "id": d["id"],
            "system": f"{system}\n\nInstruction: {d['instruction']}",
            "user": d["text"],
            "schema": d["schema"],
        }
        for d in documents
    ]


# ---------------------------------------------------------------- scoring


def valid(value, schema: dict) -> bool:
    """Enough of JSON Schema for the benchmark's schemas."""
    kind = schema.get("type")
    if kind == "object":
        if not isinstance(value, dict):
            return False
        props = schema.get("properties", {})
        if any(key not in value for key in schema.get("required", [])):
            return False
        if schema.get("additionalProperties") is False and set(value) - set(props):
            return False
        return all(valid(value[key], props[key]) for key in value if key in props)
    if kind == "string":
        return isinstance(value, str) and len(value) <= schema.get("maxLength", 1 << 30)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return True


def field_right(got, expected) -> bool:
    if isinstance(expected, float):
        return isinstance(got, (int, float)) and abs(got - expected) < 0.005
    return isinstance(got, str) and got.strip() == expected


def score(documents: list[dict], answers: dict) -> dict:
    fields: dict[str, list[int]] = {}
    valid_count = all_right = 0
    for doc in documents:
        text = answers.get(doc["id"], {}).get("text")
        try:
            value = json.loads(text) if text is not None else None
        except json.JSONDecodeError:
            value = None
        ok = value is not None and valid(value, doc["schema"])
        valid_count += ok
        right = [ok and field_right(value.get(k), v) for k, v in doc["expected"].items()]
        all_right += all(right)
        for (key, _), hit in zip(doc["expected"].items(), right):
            fields.setdefault(f"{doc['kind']}.{key}", [0, 0])
            fields[f"{doc['kind']}.{key}"][0] += hit
            fields[f"{doc['kind']}.{key}"][1] += 1
    n = len(documents)
    hits = sum(hit for hit, _ in fields.values())
    total = sum(count for _, count in fields.values())
    return {"valid": valid_count / n, "all_fields": all_right / n, "each_field": hits / total,
            "fields": fields}


# ---------------------------------------------------------------- agentd


def run_local_eval(args, requests: list[dict], clients: int) -> tuple[dict, dict]:
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        for r in requests:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
        path = f.name
    command = [args.local_eval, "--requests", path, "--model", args.model,
               "--threads", str(args.threads), "--sequences", str(args.sequences),
               "--clients", str(clients), "--layout", args.layout]
    if args.no_prefix_cache:
        command.append("--no-prefix-cache")
    try:
        out = subprocess.run(command, check=True, capture_output=True, text=True,
                             env={**os.environ, "RUST_LOG": "warn"}).stdout
    finally:
        os.unlink(path)
    answers, summary = {}, {}
    for line in out.splitlines():
        item = json.loads(line)
        if "summary" in item:
            summary = item["summary"]
        else:
            answers[item["id"]] = item
    return answers, summary


# ---------------------------------------------------------------- llama-server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    def __init__(self, args):
        self.port = free_port()
        self.cache = not args.no_server_cache
        command = [
            args.llama_server, "-m", args.model, "-t", str(args.threads),
            "-tb", str(args.threads), "-np", str(args.sequences),
            "-c", str(2048 * args.sequences), "-fa", "on", "--host", "127.0.0.1",
            "--port", str(self.port), "--no-webui",
        ]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        self.peak_rss_mib = 0.0
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2):
                    return
            except (urllib.error.URLError, ConnectionError, OSError):
                if self.process.poll() is not None:
                    raise SystemExit(f"llama-server exited: {' '.join(command)}")
                time.sleep(0.2)
        raise SystemExit("llama-server did not become healthy in 120 s")

    def complete(self, request: dict) -> dict:
        body = {
            "messages": [
                {"role": "system", "content": f"{request['system']}\n\n{OLD_SCHEMA_HINT}"
                 f"{json.dumps(request['schema'], separators=(',', ':'))}"},
                {"role": "user", "content": request["user"]},
            ],
            "response_format": {"type": "json_schema",
                                "json_schema": {"name": "output", "schema": request["schema"]}},
            "temperature": 0,
            "max_tokens": 512,
            "cache_prompt": self.cache,
        }
        started = time.monotonic()
        post = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/v1/chat/completions",
            data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(post, timeout=600) as response:
                answer = json.load(response)
        except urllib.error.HTTPError as e:
            return {"id": request["id"], "error": e.read().decode(errors="replace"),
                    "latency_s": time.monotonic() - started}
        latency = time.monotonic() - started
        timings = answer.get("timings", {})
        return {
            "id": request["id"],
            "text": answer["choices"][0]["message"]["content"],
            "latency_s": latency,
            "prompt_tokens": answer.get("usage", {}).get("prompt_tokens"),
            "evaluated_tokens": timings.get("prompt_n"),
            "generated_tokens": answer.get("usage", {}).get("completion_tokens"),
        }

    def sample_rss(self) -> None:
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
            kib = int(re.search(r"VmHWM:\s+(\d+)", status).group(1))
            self.peak_rss_mib = max(self.peak_rss_mib, kib / 1024)
        except (OSError, AttributeError):
            pass

    def stop(self) -> None:
        self.sample_rss()
        self.process.terminate()
        self.process.wait(timeout=30)


def run_server(server: LlamaServer, requests: list[dict], clients: int) -> tuple[dict, dict]:
    queue = list(reversed(requests))
    lock = threading.Lock()

    def client() -> list[dict]:
        done = []
        while True:
            with lock:
                if not queue:
                    return done
                request = queue.pop()
            done.append(server.complete(request))

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        results = [a for part in pool.map(lambda _: client(), range(clients)) for a in part]
    wall = time.monotonic() - started
    answers = {a["id"]: a for a in results}
    return answers, {"requests": len(requests), "wall_s": wall,
                     "requests_per_s": len(requests) / wall}


# ---------------------------------------------------------------- report


def evaluated(answer: dict) -> int | None:
    if "evaluated_tokens" in answer:
        return answer["evaluated_tokens"]
    if "prompt_tokens" in answer:
        return answer["prompt_tokens"] - answer.get("reused_tokens", 0)
    return None


def measure(name: str, run, documents, requests, args) -> dict:
    warm = [dict(requests[0], user="Warm-up.")]
    run(warm, 1)
    answers, summary = run(requests, args.clients)
    lone, _ = run(requests[: args.latency_count], 1)
    result = score(documents, answers)
    result["requests_per_s"] = summary["requests_per_s"]
    result["lone_median_s"] = statistics.median(a["latency_s"] for a in lone.values())
    counts = [evaluated(a) for a in answers.values() if evaluated(a) is not None]
    result["evaluated_median"] = statistics.median(counts) if counts else None
    result["errors"] = sorted({a["error"][:120] for a in answers.values() if "error" in a})
    result["answers"] = answers
    print(f"== {name}: {summary['requests']} requests, {args.clients} clients, "
          f"{summary['wall_s']:.1f} s", file=sys.stderr)
    return result


def print_report(results: dict, args) -> None:
    names = list(results)
    load = os.getloadavg()
    print(f"\n{args.count} documents (seed {args.seed}), {args.threads} threads, "
          f"{args.sequences} sequences, {args.clients} clients, layout {args.layout}, "
          f"load average {load[0]:.1f}\n")
    print("| | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    rows = [
        ("requests/s", lambda r: f"{r['requests_per_s']:.2f}"),
        ("one request alone, median", lambda r: f"{r['lone_median_s']:.2f} s"),
        ("schema-valid", lambda r: f"{100 * r['valid']:.1f} %"),
        ("all fields exactly right", lambda r: f"{100 * r['all_fields']:.1f} %"),
        ("fields exactly right (of all fields)", lambda r: f"{100 * r['each_field']:.1f} %"),
        ("prompt tokens evaluated, median",
         lambda r: "?" if r["evaluated_median"] is None else f"{r['evaluated_median']:.0f}"),
        ("peak RSS", lambda r: f"{r['peak_rss_mib']:.0f} MiB" if r.get("peak_rss_mib") else "?"),
    ]
    for label, cell in rows:
        print(f"| {label} | " + " | ".join(cell(results[n]) for n in names) + " |")
    for field in results[names[0]]["fields"]:
        cells = []
        for n in names:
            hit, total = results[n]["fields"][field]
            cells.append(f"{100 * hit / total:.0f} %")
        print(f"| {field} | " + " | ".join(cells) + " |")
    for n in names:
        for error in results[n]["errors"]:
            print(f"{n} error: {error}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=120)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--sequences", type=int, default=4)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--latency-count", type=int, default=24)
    parser.add_argument("--model", required=True)
    parser.add_argument("--local-eval", help="agentd's local-eval binary")
    parser.add_argument("--llama-server", help="llama.cpp's llama-server binary")
    parser.add_argument("--layout", default="flexible", choices=["flexible", "compact"])
    parser.add_argument("--no-prefix-cache", action="store_true")
    parser.add_argument("--no-server-cache", action="store_true")
    parser.add_argument("--answers", help="write every answer to this JSON file")
    args = parser.parse_args()

    documents = local_model_docs.generate(args.count, args.seed)
    requests = requests_for(documents)
    results = {}
    if args.local_eval:
        before = _children_peak_mib()
        results["agentd"] = measure(
            "agentd", lambda reqs, c: run_local_eval(args, reqs, c), documents, requests, args)
        after = _children_peak_mib()
        results["agentd"]["peak_rss_mib"] = after if after > before else None
    if args.llama_server:
        server = LlamaServer(args)
        try:
            def run(reqs, c):
                out = run_server(server, reqs, c)
                server.sample_rss()
                return out
            results["llama-server"] = measure("llama-server", run, documents, requests, args)
            results["llama-server"]["peak_rss_mib"] = server.peak_rss_mib
        finally:
            server.stop()
    if not results:
        parser.error("give --local-eval, --llama-server or both")
    if args.answers:
        dump = {n: {"documents": documents, "answers": r["answers"]} for n, r in results.items()}
        Path(args.answers).write_text(json.dumps(dump, ensure_ascii=False, indent=1))
    print_report(results, args)
    return 0


def _children_peak_mib() -> float:
    import resource
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


if __name__ == "__main__":
    sys.exit(main())
