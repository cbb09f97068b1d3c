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
