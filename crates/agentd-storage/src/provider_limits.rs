//! Provider limits shared by every process on one database: at most M calls
//! started in any minute (a log of recent starts per provider) and at most N
//! calls in flight (leased slots, so that a killed process's slots free
//! themselves when their lease ends). Both backends run the same rules, here,
//! inside a transaction that holds the provider's lock.

use std::time::Duration;

/// The window the per-minute limit counts in.
pub const RATE_WINDOW_MS: i64 = 60_000;

/// The statements both backends run (`$N` placeholders work on both).
pub(crate) mod sql {
    pub const FORGET_OLD_STARTS: &str =
        "DELETE FROM provider_call_starts WHERE provider = $1 AND started_ms <= $2";
    pub const RECENT_STARTS: &str =
        "SELECT COUNT(*), MIN(started_ms) FROM provider_call_starts WHERE provider = $1";
    pub const RECORD_START: &str =
        "INSERT INTO provider_call_starts (provider, started_ms) VALUES ($1, $2)";
    pub const FORGET_EXPIRED_SLOTS: &str =
        "DELETE FROM provider_slots WHERE provider = $1 AND expires_ms <= $2";
    pub const LIVE_SLOTS: &str = "SELECT COUNT(*) FROM provider_slots WHERE provider = $1";
    pub const TAKE_SLOT: &str =
        "INSERT INTO provider_slots (id, provider, expires_ms) VALUES ($1, $2, $3)";
    pub const RENEW_SLOT: &str = "UPDATE provider_slots SET expires_ms = $1 WHERE id = $2";
    pub const RELEASE_SLOT: &str = "DELETE FROM provider_slots WHERE id = $1";
}

/// The answer to a request for room under a provider's limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead: the call (or the slot) is recorded.
    Granted,
    /// The limit is reached: ask again after this long.
    RetryIn(Duration),
}

/// Whether one more call may start now, given the starts still inside the
/// window (`recent`) and the oldest of them.
pub(crate) fn admit_rate(
    recent: i64,
    oldest_ms: Option<i64>,
    now_ms: i64,
    per_minute: u32,
) -> Admission {
    if recent < i64::from(per_minute.max(1)) {
        return Admission::Granted;
    }
    // The window frees a place when its oldest start leaves it.
    let frees_at = oldest_ms.unwrap_or(now_ms) + RATE_WINDOW_MS;
    let wait_ms = (frees_at - now_ms).clamp(1, RATE_WINDOW_MS);
    Admission::RetryIn(Duration::from_millis(wait_ms as u64))
}

/// How long a caller waits before asking for a slot again when all are taken.
pub const SLOT_RETRY: Duration = Duration::from_millis(50);

/// Whether one more call may hold a slot, given the live slots.
pub(crate) fn admit_slot(live: i64, max_in_flight: usize) -> Admission {
    if live < max_in_flight.max(1) as i64 {
        Admission::Granted
    } else {
        Admission::RetryIn(SLOT_RETRY)
    }
}

/// Milliseconds in `d`, for comparing with stored instants.
pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_window_waits_for_its_oldest_start_to_leave() {
        assert_eq!(admit_rate(2, Some(1_000), 5_000, 3), Admission::Granted);
        assert_eq!(
            admit_rate(3, Some(1_000), 5_000, 3),
            Admission::RetryIn(Duration::from_millis(56_000))
        );
    }

    #[test]
    fn slots_are_counted_against_the_maximum() {
        assert_eq!(admit_slot(1, 2), Admission::Granted);
        assert_eq!(admit_slot(2, 2), Admission::RetryIn(SLOT_RETRY));
    }
}
