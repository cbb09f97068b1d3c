//! One textual form for timestamps, so that stored values sort as text and
//! every API answer prints them the same way.

use chrono::{DateTime, SecondsFormat, Utc};

pub type Timestamp = DateTime<Utc>;
pub type Delta = chrono::TimeDelta;

pub fn now() -> Timestamp {
    // Microsecond precision: what both SQLite text and PostgreSQL keep.
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

/// RFC 3339 with a fixed six-digit fraction and `Z`.
pub fn format(ts: &Timestamp) -> String {
    ts.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub fn parse(text: &str) -> Option<Timestamp> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Seconds since the epoch with a fraction, as Roe's status endpoints report.
pub fn unix_seconds(ts: &Timestamp) -> f64 {
    ts.timestamp_micros() as f64 / 1_000_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_round_trips_and_sorts_as_text() {
        let a = parse("2024-01-15T10:30:00Z").unwrap();
        let b = parse("2024-01-15T10:30:00.5Z").unwrap();
        assert_eq!(format(&a), "2024-01-15T10:30:00.000000Z");
        assert!(format(&a) < format(&b));
        assert_eq!(parse(&format(&b)), Some(b));
    }
}
