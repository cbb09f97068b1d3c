//! `/v1/agents/usage/`: an organization's jobs and spend per day and model
//! (an agentd extension, for the console's usage chart).

use std::collections::BTreeMap;
use std::sync::Arc;

use agentd_domain::time::{self, Timestamp};
use agentd_domain::Operation;
use agentd_storage::UsageBucket;
use axum::extract::State;
use axum::http::Uri;
use axum::Json;
use chrono::{Days, NaiveDate};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;
use super::extract::QueryParams;
use super::openapi::ErrorBody;
use crate::auth::Caller;
use crate::startup::AppState;

const DEFAULT_DAYS: u64 = 30;
const MAX_DAYS: u64 = 366;

/// The usage query.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents the query; the handler reads it with `QueryParams`
pub struct UsageQuery {
    /// How many UTC days, ending today, to count (1 to 366; 30 by default).
    #[param(minimum = 1, maximum = 366)]
    days: Option<u64>,
}

/// An organization's jobs and spend over a window of days.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentUsage {
    /// The window's length in days.
    pub days: u64,
    /// The window's first day (UTC), `YYYY-MM-DD`.
    #[schema(format = Date)]
    pub from: String,
    pub total_jobs: i64,
    /// Spend in US dollars.
    pub total_cost: f64,
    /// Every day of the window, oldest first (days without jobs too).
    pub daily: Vec<DailyUsage>,
    /// Totals per model over the window, by model name.
    pub models: Vec<ModelUsage>,
}

/// One day of the window.
#[derive(Debug, Serialize, ToSchema)]
pub struct DailyUsage {
    #[schema(format = Date)]
    pub date: String,
    pub jobs: i64,
    pub cost: f64,
    /// That day's jobs and spend per model name (only models with jobs).
    pub models: BTreeMap<String, ModelDayUsage>,
}

/// One model's jobs and spend on one day.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelDayUsage {
    pub jobs: i64,
    pub cost: f64,
}

/// One model's totals over the window.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelUsage {
    pub model: String,
    pub jobs: i64,
    pub cost: f64,
    pub input_tokens: i64,
    pub output_tokens: i64,
}

/// Jobs and spend per day and model, for the console's usage chart (an
/// agentd extension; Roe has no such operation).
#[utoipa::path(
    get,
    path = "/v1/agents/usage/",
    operation_id = "agents_usage_retrieve",
    tag = "agents",
    summary = "The organization's jobs and spend per day and model",
    params(UsageQuery),
    responses(
        (status = 200, body = AgentUsage, description = "The window's usage."),
        (status = 400, body = ErrorBody, description = "`days` is out of range, or an unknown query parameter."),
    ),
)]
pub async fn usage(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    uri: Uri,
) -> Result<Json<AgentUsage>, ApiError> {
    caller.require(Operation::ReadJobs)?;
    let params = QueryParams::from_uri(&uri);
    params.reject_unknown(&["days"])?;
    let days = parse_days(params.first("days"))?;
    let first_day = first_day(time::now(), days);
    let since = first_day
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc();
    let buckets = state
        .storage
        .usage_since(caller.organization_id(), since)
        .await?;
    Ok(Json(summary(first_day, days, &buckets)))
}

fn parse_days(text: Option<&str>) -> Result<u64, ApiError> {
    let Some(text) = text else {
        return Ok(DEFAULT_DAYS);
    };
    text.parse::<u64>()
        .ok()
        .filter(|days| (1..=MAX_DAYS).contains(days))
        .ok_or_else(|| {
            ApiError::bad_request_field(
                "days",
                format!("'{text}' is not a whole number of days from 1 to {MAX_DAYS}."),
            )
        })
}

/// The first of `days` UTC days ending today.
fn first_day(now: Timestamp, days: u64) -> NaiveDate {
    now.date_naive()
        .checked_sub_days(Days::new(days - 1))
        .unwrap_or(NaiveDate::MIN)
}

/// Every day of the window (days without jobs too, so a chart has no
/// gaps), the per-model totals, and the grand totals.
fn summary(first_day: NaiveDate, days: u64, buckets: &[UsageBucket]) -> AgentUsage {
    let mut daily: BTreeMap<String, DailyUsage> = first_day
        .iter_days()
        .take(days as usize)
        .map(|day| {
            let date = day.format("%Y-%m-%d").to_string();
            let empty = DailyUsage {
                date: date.clone(),
                jobs: 0,
                cost: 0.0,
                models: BTreeMap::new(),
            };
            (date, empty)
        })
        .collect();
    let mut models: BTreeMap<&str, ModelUsage> = BTreeMap::new();
    for bucket in buckets {
        if let Some(day) = daily.get_mut(&bucket.day) {
            day.jobs += bucket.jobs;
            day.cost += bucket.cost;
            day.models.insert(
                bucket.model.clone(),
                ModelDayUsage {
                    jobs: bucket.jobs,
                    cost: bucket.cost,
                },
            );
        }
        let totals = models.entry(&bucket.model).or_insert_with(|| ModelUsage {
            model: bucket.model.clone(),
            jobs: 0,
            cost: 0.0,
            input_tokens: 0,
            output_tokens: 0,
        });
        totals.jobs += bucket.jobs;
        totals.cost += bucket.cost;
        totals.input_tokens += bucket.input_tokens;
        totals.output_tokens += bucket.output_tokens;
    }
    AgentUsage {
        days,
        from: first_day.format("%Y-%m-%d").to_string(),
        total_jobs: buckets.iter().map(|b| b.jobs).sum(),
        total_cost: buckets.iter().map(|b| b.cost).sum(),
        daily: daily.into_values().collect(),
        models: models.into_values().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(day: &str, model: &str, jobs: i64, cost: f64) -> UsageBucket {
        UsageBucket {
            day: day.into(),
            model: model.into(),
            jobs,
            cost,
            input_tokens: jobs * 10,
            output_tokens: jobs,
        }
    }

    #[test]
    fn every_day_of_the_window_is_listed_with_its_models() {
        let first = NaiveDate::from_ymd_opt(2026, 2, 27).unwrap();
        let value = serde_json::json!(summary(
            first,
            3,
            &[
                bucket("2026-02-27", "a", 2, 0.5),
                bucket("2026-03-01", "a", 1, 0.25),
                bucket("2026-03-01", "b", 3, 1.0),
            ],
        ));
        let dates: Vec<&str> = value["daily"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["date"].as_str().unwrap())
            .collect();
        assert_eq!(dates, ["2026-02-27", "2026-02-28", "2026-03-01"]);
        assert_eq!(value["daily"][1]["jobs"], 0);
        assert_eq!(value["daily"][2]["jobs"], 4);
        assert_eq!(value["daily"][2]["models"]["b"]["cost"], 1.0);
        assert_eq!(value["models"][0]["model"], "a");
        assert_eq!(value["models"][0]["jobs"], 3);
        assert_eq!(value["models"][0]["input_tokens"], 30);
        assert_eq!(value["total_jobs"], 6);
        assert_eq!(value["total_cost"], 1.75);
    }

    #[test]
    fn days_are_bounded() {
        assert_eq!(parse_days(None).unwrap(), 30);
        assert_eq!(parse_days(Some("7")).unwrap(), 7);
        for bad in ["0", "367", "-1", "x", "1.5"] {
            assert!(parse_days(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_window_ends_today() {
        let now = time::parse("2026-03-01T10:00:00.000000Z").unwrap();
        assert_eq!(
            first_day(now, 1),
            NaiveDate::from_ymd_opt(2026, 3, 1).unwrap()
        );
        assert_eq!(
            first_day(now, 3),
            NaiveDate::from_ymd_opt(2026, 2, 27).unwrap()
        );
    }
}
