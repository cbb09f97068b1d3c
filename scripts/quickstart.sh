#!/usr/bin/env bash
# Quickstart: installs what is missing, fetches the default local model,
# builds agentd, starts it on a free port with a fresh SQLite database,
# creates an extraction agent that runs on the in-process model (no API key,
# no network), runs it with curl as the Roe docs show, prints the outputs,
# and stops the server.
set -euo pipefail
cd "$(dirname "$0")/.."

export AGENTD_DATA_DIR="${AGENTD_DATA_DIR:-$PWD/data}"
./scripts/install-deps.sh
./scripts/fetch-model.sh

echo "== building agentd (release; the first build compiles llama.cpp and takes a few minutes)"
cargo build --release -p agentd

workdir="$AGENTD_DATA_DIR/quickstart"
rm -rf "$workdir"
mkdir -p "$workdir"
org_id="$(python3 -c 'import uuid; print(uuid.uuid4())')"
api_key="quickstart-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"

AGENTD_ADDR=127.0.0.1:0 \
DATABASE_URL="sqlite://$workdir/agentd.db" \
AGENTD_LOCAL_MODEL=on \
AGENTD_BOOTSTRAP_ORG_ID="$org_id" \
AGENTD_BOOTSTRAP_API_KEY="$api_key" \
    target/release/agentd serve >"$workdir/agentd.out" 2>"$workdir/agentd.log" &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT

base=""
for _ in $(seq 1 100); do
    base="$(sed -n 's/^agentd listening on //p' "$workdir/agentd.out")"
    [ -n "$base" ] && break
    if ! kill -0 $server 2>/dev/null; then
        cat "$workdir/agentd.log" >&2
        exit 1
    fi
    sleep 0.1
done
[ -n "$base" ] || { echo "agentd did not start; see $workdir/agentd.log" >&2; exit 1; }
echo "== agentd is listening on $base"

agent="$(curl -sS --fail-with-body "$base/v1/agents/" \
    -H "Authorization: Bearer $api_key" -H "Content-Type: application/json" \
    -d '{
      "name": "Contact extractor",
      "engine_class_id": "MultimodalExtractionEngine",
      "input_definitions": [{"key": "text", "data_type": "text/plain", "description": "An email"}],
      "engine_config": {
        "text": "${text}",
        "instruction": "Extract the sender name and company.",
        "output_schema": {"type": "object",
          "properties": {"name": {"type": "string", "maxLength": 80},
                         "company": {"type": "string", "maxLength": 80}},
          "required": ["name", "company"]}
      }
    }')"
agent_id="$(printf '%s' "$agent" | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')"
echo "== created agent $agent_id (no model named: the local model runs it)"

echo "== curl --request POST $base/v1/agents/run/$agent_id/"
curl -sS --fail-with-body --request POST \
    --url "$base/v1/agents/run/$agent_id/" \
    --header "Authorization: Bearer $api_key" \
    --header "Content-Type: application/json" \
    --data '{"inputs": {"text": "Hi, this is Ada Lovelace from Analytical Engines Ltd."}}' \
    | python3 -m json.tool
echo "== done; stopping agentd"
