#!/usr/bin/env bash
# The job queries at 10 million rows on PostgreSQL: creates a fresh database
# agentd_pgscale_<random> on $AGENTD_BENCH_POSTGRES_URL (default: the local
# server, user postgres), applies agentd's migrations (`agentd admin migrate`),
# seeds ROWS jobs with generate_series (100 agents, most jobs final, a few
# thousand runnable or running), then prints each query's execution time and
# the indexes its plan uses (EXPLAIN ANALYZE). The database is dropped at the
# end. Figures, not assertions.
#   scripts/bench-jobs-10m.sh [ROWS]      (default 10000000)
# Set AGENTD_BIN to use another binary (default target/debug/agentd, built).
set -euo pipefail
cd "$(dirname "$0")/.."

ROWS="${1:-10000000}"
ADMIN_URL="${AGENTD_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
DB="agentd_pgscale_$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')"
DB_URL="${ADMIN_URL%/*}/$DB"

if [ -z "${AGENTD_BIN:-}" ]; then
    cargo build -p agentd
    AGENTD_BIN=target/debug/agentd
fi

psql -q -v ON_ERROR_STOP=1 "$ADMIN_URL" -c "CREATE DATABASE $DB"
trap 'psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)"' EXIT
DATABASE_URL="$DB_URL" "$AGENTD_BIN" admin migrate

sql() { psql -X -q -v ON_ERROR_STOP=1 "$DB_URL" "$@"; }

echo "== seeding $ROWS jobs"
start=$(date +%s)
sql -v rows="$ROWS" <<'SQL'
INSERT INTO organizations (id, name, created_at)
VALUES ('00000000-0000-0000-0000-000000000001', 'bench', now());
INSERT INTO agents (id, organization_id, name, engine_class_id, current_version_id, created_at, updated_at)
SELECT ('00000000-0000-0000-0001-' || lpad(to_hex(a), 12, '0'))::uuid,
       '00000000-0000-0000-0000-000000000001', 'agent ' || a, 'MultimodalExtractionEngine',
       ('00000000-0000-0000-0002-' || lpad(to_hex(a), 12, '0'))::uuid, now(), now()
FROM generate_series(1, 100) a;
INSERT INTO agent_versions (id, agent_id, version_name, input_definitions, engine_config, created_at)
SELECT ('00000000-0000-0000-0002-' || lpad(to_hex(a), 12, '0'))::uuid,
       ('00000000-0000-0000-0001-' || lpad(to_hex(a), 12, '0'))::uuid, 'v1', '[]', '{}', now()
FROM generate_series(1, 100) a;
-- Indexes are rebuilt after the load (faster than maintaining them per row).
CREATE TEMP TABLE saved_indexes AS
SELECT indexname, indexdef FROM pg_indexes
WHERE tablename = 'jobs' AND indexdef NOT LIKE '%UNIQUE%';
DO $$ DECLARE i record; BEGIN
  FOR i IN SELECT indexname FROM saved_indexes LOOP EXECUTE 'DROP INDEX ' || i.indexname; END LOOP;
END $$;
-- Job n: agent n % 100, created n seconds after a year ago; the newest
-- 2,000 are PENDING and the 500 before them STARTED with a lease; of the
-- rest 90 % SUCCESS, 8 % FAILURE, 2 % CANCELLED (by n / 100, so that every
-- agent has each status; likewise the metadata batch).
INSERT INTO jobs (id, organization_id, agent_id, agent_version_id, status, inputs, metadata,
                  outputs, cost, attempts, lease_owner, lease_expires_at, created_at, updated_at)
SELECT md5(n::text)::uuid,
       '00000000-0000-0000-0000-000000000001',
       ('00000000-0000-0000-0001-' || lpad(to_hex(n % 100 + 1), 12, '0'))::uuid,
       ('00000000-0000-0000-0002-' || lpad(to_hex(n % 100 + 1), 12, '0'))::uuid,
       CASE WHEN n > :rows - 2000 THEN 0 WHEN n > :rows - 2500 THEN 1
            WHEN (n / 100) % 50 = 0 THEN 5 WHEN (n / 100) % 50 < 5 THEN 4 ELSE 3 END,
       '[{"key":"text","description":"","data_type":"text/plain","value":"hello"}]',
       jsonb_build_object('batch', ((n / 100) % 1000)::text),
       CASE WHEN n <= :rows - 2500 THEN
            '[{"key":"output","description":"","data_type":"application/json","value":"{}","cost":0.0}]'::jsonb END,
       (n % 97) / 1000.0, 1,
       CASE WHEN n > :rows - 2500 AND n <= :rows - 2000 THEN 'bench' END,
       CASE WHEN n > :rows - 2500 AND n <= :rows - 2000 THEN now() + interval '1 hour' END,
       now() - interval '365 days' + n * interval '1 second' * (31536000.0 / :rows),
       now() - interval '365 days' + n * interval '1 second' * (31536000.0 / :rows)
FROM generate_series(1, :rows) n;
DO $$ DECLARE i record; BEGIN
  FOR i IN SELECT indexdef FROM saved_indexes LOOP EXECUTE i.indexdef; END LOOP;
END $$;
-- What agentd keeps on each agent as it inserts jobs.
UPDATE agents a SET job_count = c.n, most_recent_job = c.newest
FROM (SELECT agent_id, COUNT(*) AS n, MAX(created_at) AS newest FROM jobs GROUP BY agent_id) c
WHERE a.id = c.agent_id;
VACUUM ANALYZE jobs;
VACUUM ANALYZE agents;
SQL
echo "seeded in $(( $(date +%s) - start )) s; $(sql -tAc "SELECT pg_size_pretty(pg_total_relation_size('jobs'))") on disk"

ORG="'00000000-0000-0000-0000-000000000001'"
AGENT_ID=00000000-0000-0000-0001-000000000007
AGENT="'$AGENT_ID'"
OLD_JOB="'$(sql -tAc "SELECT md5('12345')::uuid")'"
BULK="ARRAY(SELECT md5(n::text)::uuid FROM generate_series(1000, 100000, 1000) n)"
COLUMNS="j.id, j.organization_id, j.agent_id, j.agent_version_id, j.status, j.inputs, j.metadata, \
j.outputs, j.error_message, j.cost::float8, j.created_at, j.updated_at, v.version_name"
FROM="FROM jobs j LEFT JOIN agent_versions v ON v.id = j.agent_version_id"
AGENT_JOBS="WHERE j.organization_id = $ORG AND j.agent_id = $AGENT"
NEWEST="ORDER BY j.created_at DESC, j.created_at DESC, j.seq DESC"
METADATA_7="AND jsonb_set('{}', ARRAY[j.agent_id::text], j.metadata) @> '{\"$AGENT_ID\": {\"batch\": \"7\"}}'
            AND j.metadata -> 'batch' = '\"7\"'"

# What agentd sends for a list page (crates/agentd-storage/src/postgres/jobs.rs):
# the page's ids first (from the index alone; versions are joined only for a
# version filter or sort), then only those rows.
page_sql() { # FILTER ORDER LIMIT OFFSET
    echo "WITH page AS (SELECT j.id FROM jobs j $AGENT_JOBS $1 $2 LIMIT $3 OFFSET $4)
          SELECT $COLUMNS $FROM JOIN page ON page.id = j.id $2"
}
# ... and for a filtered list's total, counted no further than Roe's `limit`
# (100,000); an unfiltered list's total is the count kept on the agent.
count_sql() { echo "SELECT COUNT(*) FROM (SELECT 1 FROM jobs j $AGENT_JOBS $1 LIMIT 100000) matching"; }

# Prints the execution time and the indexes of one statement's plan; the
# statement runs in a transaction rolled back after it (claims change rows).
measure() {
    local name="$1" statement="$2" plan
    plan=$(sql -tA -c "BEGIN" -c "EXPLAIN (ANALYZE, BUFFERS) $statement" -c "ROLLBACK")
    printf '%-44s %10s ms   %s\n' "$name" \
        "$(grep -oP 'Execution Time: \K[0-9.]+' <<<"$plan")" \
        "$(grep -oP 'Index (Only )?Scan (Backward )?using \K\S+|Bitmap Index Scan on \K\S+|Seq Scan on \S+' <<<"$plan" | sort -u | paste -sd, -)"
}

echo "== queries as agentd sends them (each one run, after a warm-up)"
for pass in warm-up measured; do
    [ "$pass" = measured ] || exec 3>&1 1>/dev/null
    measure "claim 16 (requeue expired + SKIP LOCKED)" \
        "WITH expired AS (SELECT id FROM jobs WHERE status = 1 AND lease_expires_at < now() FOR UPDATE SKIP LOCKED)
         UPDATE jobs j SET status = 2 FROM expired WHERE j.id = expired.id AND j.status = 1"
    measure "claim 16 (take the oldest runnable)" \
        "WITH picked AS (SELECT id FROM jobs WHERE status IN (0, 2) ORDER BY created_at, seq LIMIT 16 FOR UPDATE SKIP LOCKED)
         UPDATE jobs j SET status = 1, attempts = j.attempts + 1, lease_owner = 'w', lease_expires_at = now() + interval '30 s', updated_at = now()
         FROM picked WHERE j.id = picked.id AND j.status IN (0, 2) RETURNING j.id"
    measure "status of one job" "SELECT $COLUMNS $FROM WHERE j.id = $OLD_JOB AND j.organization_id = $ORG"
    measure "status of 100 jobs (bulk)" \
        "SELECT id, agent_id, status, error_message, created_at, updated_at FROM jobs WHERE id = ANY($BULK) AND organization_id = $ORG"
    measure "list: agent, newest 50" "$(page_sql "" "$NEWEST" 50 0)"
    measure "list: agent, page total (kept on the agent)" \
        "SELECT job_count FROM agents WHERE id = $AGENT AND organization_id = $ORG"
    measure "list: agent + created range, page total" \
        "$(count_sql "AND j.created_at >= now() - interval '30 days'")"
    measure "list: agent + status FAILURE, newest 50" "$(page_sql "AND j.status = ANY('{4}')" "$NEWEST" 50 0)"
    measure "list: agent + status FAILURE, page total" "$(count_sql "AND j.status = ANY('{4}')")"
    measure "list: agent + created range, oldest 50" \
        "$(page_sql "AND j.created_at >= now() - interval '30 days'" "ORDER BY j.created_at ASC, j.created_at ASC, j.seq ASC" 50 0)"
    measure "list: agent + metadata batch=7, newest 50" \
        "$(page_sql "$METADATA_7" "$NEWEST" 50 0)"
    measure "list: agent + metadata batch=7, page total" \
        "$(count_sql "$METADATA_7")"
    measure "list: agent, page 200 (offset 10,000)" "$(page_sql "" "$NEWEST" 50 10000)"
    measure "list: agent, page 2,000 (offset 99,950)" "$(page_sql "" "$NEWEST" 50 99950)"
    measure "retention: 200 final jobs past 30 days" \
        "SELECT organization_id, id FROM jobs WHERE status IN (3, 4, 5, 6) AND NOT data_deleted AND updated_at < now() - interval '30 days' ORDER BY updated_at LIMIT 200"
    [ "$pass" = measured ] || exec 1>&3 3>&-
done

# The same reads through the HTTP API of a running agentd (auth, SQL, JSON):
# the median of 5 requests after one warm-up, as a client sees them.
echo "== the same through the API (agentd serve on this database; median of 5)"
DATA_DIR=$(mktemp -d)
KEY="bench-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
AGENTD_ADDR=127.0.0.1:0 AGENTD_DATA_DIR="$DATA_DIR" DATABASE_URL="$DB_URL" \
    AGENTD_BOOTSTRAP_ORG_ID=00000000-0000-0000-0000-000000000001 AGENTD_BOOTSTRAP_API_KEY="$KEY" \
    RUST_LOG=info NO_COLOR=1 "$AGENTD_BIN" serve --workers 0 >"$DATA_DIR/serve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; rm -rf "$DATA_DIR"; psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)"' EXIT
BASE=""
for _ in $(seq 600); do
    BASE=$(grep -oP 'agentd listening on \Khttp://\S+' "$DATA_DIR/serve.log" | head -1 || true)
    [ -n "$BASE" ] && break
    sleep 0.1
done
[ -n "$BASE" ] || { echo "agentd did not start:"; cat "$DATA_DIR/serve.log"; exit 1; }
api() { # NAME PATH [JSON body: POST]
    local answers code median
    answers=$(for _ in 1 2 3 4 5 6; do
        curl -sS -o /dev/null -w '%{http_code} %{time_total}\n' -H "Authorization: Bearer $KEY" \
            ${3:+-H 'Content-Type: application/json' --data "$3"} "$BASE$2"
    done | tail -5)
    code=$(awk '$1 != 200 { print $1; exit }' <<<"$answers")
    if [ -n "$code" ]; then
        printf '%-44s %13s\n' "$1" "HTTP $code"
    else
        median=$(awk '{ print $2 }' <<<"$answers" | sort -n | sed -n 3p)
        printf '%-44s %10.1f ms\n' "$1" "$(awk -v t="$median" 'BEGIN { print t * 1000 }')"
    fi
}
JOBS="/v1/agents/$AGENT_ID/jobs/"
OLD_JOB_ID=$(sql -tAc "SELECT md5('12345')::uuid")
IDS=$(sql -tAc "SELECT json_build_object('job_ids', json_agg(md5(n::text)::uuid)) FROM generate_series(1000, 100000, 1000) n")
api "status of one job" "/v1/agents/jobs/$OLD_JOB_ID/status/"
api "statuses of 100 jobs" "/v1/agents/jobs/statuses/" "$IDS"
api "list: agent, newest 50 + total" "$JOBS?page_size=50"
api "list: + status FAILURE" "$JOBS?page_size=50&status_code=4"
api "list: + created range" "$JOBS?page_size=50&ordering=created_at&created_from=$(date -u -d '30 days ago' +%Y-%m-%dT%H:%M:%SZ)"
api "list: + metadata batch=7" "$JOBS?page_size=50&metadata=%7B%22batch%22%3A%227%22%7D"
api "list: page 200 (offset 10,000)" "$JOBS?page_size=50&page=200"
api "list: page 2,000 (offset 99,950)" "$JOBS?page_size=50&page=2000"
api "list: no cap (limit=0), newest 50 + total" "$JOBS?page_size=50&limit=0"
