//! Spend and job counts per day and model, for the console's usage chart.

use agentd_domain::time::{self, Timestamp};
use agentd_domain::OrganizationId;
use sqlx::{Row, SqlitePool};

use crate::{Result, UsageBucket, DEFAULT_MODEL_LABEL, DELETED_VERSION_LABEL};

/// Timestamps are RFC 3339 text in UTC, so the day is their first ten
/// characters; the model comes from the version the job ran.
const USAGE_QUERY: &str = "SELECT substr(j.created_at, 1, 10) AS day, \
    CASE WHEN v.id IS NULL THEN ?1 \
         ELSE COALESCE(NULLIF(json_extract(v.engine_config, '$.model'), ''), ?2) END AS model, \
    COUNT(*) AS jobs, \
    COALESCE(SUM(j.cost), 0.0) AS cost, \
    COALESCE(SUM(j.input_tokens), 0) AS input_tokens, \
    COALESCE(SUM(j.output_tokens), 0) AS output_tokens \
    FROM jobs j LEFT JOIN agent_versions v ON v.id = j.agent_version_id \
    WHERE j.organization_id = ?3 AND j.created_at >= ?4 \
    GROUP BY day, model ORDER BY day, model";

pub(super) async fn usage_since(
    pool: &SqlitePool,
    org: OrganizationId,
    since: Timestamp,
) -> Result<Vec<UsageBucket>> {
    let rows = sqlx::query(USAGE_QUERY)
        .bind(DELETED_VERSION_LABEL)
        .bind(DEFAULT_MODEL_LABEL)
        .bind(org.to_string())
        .bind(time::format(&since))
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
