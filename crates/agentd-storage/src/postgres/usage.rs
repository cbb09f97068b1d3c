//! Spend and job counts per day and model, for the console's usage chart.

use agentd_domain::time::Timestamp;
use agentd_domain::OrganizationId;
use sqlx::{PgPool, Row};

use crate::{Result, UsageBucket, DEFAULT_MODEL_LABEL, DELETED_VERSION_LABEL};

/// Days are UTC days; the model comes from the version the job ran.
const USAGE_QUERY: &str = "SELECT to_char(j.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, \
    CASE WHEN v.id IS NULL THEN $1 \
         ELSE COALESCE(NULLIF(v.engine_config->>'model', ''), $2) END AS model, \
    COUNT(*) AS jobs, \
    COALESCE(SUM(j.cost), 0)::float8 AS cost, \
    COALESCE(SUM(j.input_tokens), 0)::bigint AS input_tokens, \
    COALESCE(SUM(j.output_tokens), 0)::bigint AS output_tokens \
    FROM jobs j LEFT JOIN agent_versions v ON v.id = j.agent_version_id \
    WHERE j.organization_id = $3 AND j.created_at >= $4 \
    GROUP BY 1, 2 ORDER BY 1, 2";

pub(super) async fn usage_since(
    pool: &PgPool,
    org: OrganizationId,
    since: Timestamp,
) -> Result<Vec<UsageBucket>> {
    let rows = sqlx::query(USAGE_QUERY)
        .bind(DELETED_VERSION_LABEL)
        .bind(DEFAULT_MODEL_LABEL)
        .bind(*org.as_uuid())
        .bind(since)
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|row| {
            Ok(UsageBucket {
                day: row.try_get("day")?,
                model: row.try_get("model")?,
                jobs: row.try_get("jobs")?,
                cost: row.try_get("cost")?,
                input_tokens: row.try_get("input_tokens")?,
                output_tokens: row.try_get("output_tokens")?,
            })
        })
        .collect()
}
