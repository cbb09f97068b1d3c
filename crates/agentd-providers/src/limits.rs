//! Per-provider limits: at most N calls in flight and at most M calls
//! started in any minute. They are enforced across every process sharing
//! one database (agentd's `shared_limits`, on the storage's
//! `provider_limits`), so they are only described here.

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    pub max_concurrency: Option<usize>,
    pub requests_per_minute: Option<u32>,
}

impl Limits {
    pub fn is_unlimited(&self) -> bool {
        self.max_concurrency.is_none() && self.requests_per_minute.is_none()
    }
}
