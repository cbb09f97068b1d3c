//! The parts of an agent's job list that every backend words the same.

use crate::JobQuery;

/// The FROM of a list's count and page of ids. The versions are joined only
/// when a filter or sort key reads them: the join needs each job's version
/// id, which no list index holds, so it would rule out reading the count and
/// the page's ids from the index alone.
pub(crate) fn from_clause(query: &JobQuery) -> &'static str {
    if query.reads_versions() {
        "FROM jobs j LEFT JOIN agent_versions v ON v.id = j.agent_version_id"
    } else {
        "FROM jobs j"
    }
}

/// The job count kept on the agent (`$1` the agent, `$2` its organization):
/// the total of an unfiltered list without counting rows, since every job
/// inserted adds one to it in its own transaction and jobs are removed only
/// with their agent (retention keeps tombstones).
pub(crate) const AGENT_JOB_COUNT: &str =
    "SELECT job_count FROM agents WHERE id = $1 AND organization_id = $2";

/// `total` stopped at the list's count cap.
pub(crate) fn capped(query: &JobQuery, total: i64) -> i64 {
    query.count_cap.map_or(total, |cap| total.min(cap))
}
