//! Organizations, their API keys and credits.

use crate::ids::{AgentId, OrganizationId};
use crate::time::Timestamp;

/// An organization's credit balance; `None` means unlimited.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Credits(pub Option<f64>);

impl Credits {
    pub const UNLIMITED: Credits = Credits(None);

    /// Runs are refused once a limited balance is spent.
    pub fn exhausted(&self) -> bool {
        matches!(self.0, Some(balance) if balance <= 0.0)
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        if text.eq_ignore_ascii_case("unlimited") {
            return Ok(Self::UNLIMITED);
        }
        text.parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .map(|v| Credits(Some(v)))
            .ok_or_else(|| format!("'{text}' is neither a number nor 'unlimited'"))
    }
}

impl std::fmt::Display for Credits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            None => f.write_str("unlimited"),
            Some(balance) => write!(f, "{balance}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Organization {
    pub id: OrganizationId,
    pub name: String,
    pub credits: Credits,
    /// Sum of the cost of every finished job.
    pub spent: f64,
    pub created_at: Timestamp,
}

/// What an API key may do. A key without any operation scope may do
/// everything; `agent:<id>` scopes restrict it to those agents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Read agents, versions, jobs and discovery.
    Read,
    /// Create, change and delete agents and versions; cancel jobs.
    Write,
    /// Run agents and read the jobs they produce.
    Run,
    /// Only this agent.
    Agent(AgentId),
}

/// The kind of operation a request performs, checked against scopes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Read,
    Write,
    Run,
    ReadJobs,
}

impl Scope {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "read" => Ok(Scope::Read),
            "write" => Ok(Scope::Write),
            "run" => Ok(Scope::Run),
            other => other
                .strip_prefix("agent:")
                .and_then(|id| id.parse().ok())
                .map(Scope::Agent)
                .ok_or_else(|| {
                    format!("unknown scope '{other}' (expected read, write, run or agent:<uuid>)")
                }),
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scope::Read => f.write_str("read"),
            Scope::Write => f.write_str("write"),
            Scope::Run => f.write_str("run"),
            Scope::Agent(id) => write!(f, "agent:{id}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ApiKey {
    pub id: i64,
    pub organization_id: OrganizationId,
    pub name: String,
    pub scopes: Vec<Scope>,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

impl ApiKey {
    pub fn allows(&self, operation: Operation) -> bool {
        let mut operation_scopes = self
            .scopes
            .iter()
            .filter(|s| !matches!(s, Scope::Agent(_)))
            .peekable();
        if operation_scopes.peek().is_none() {
            return true;
        }
        operation_scopes.any(|scope| {
            matches!(
                (scope, operation),
                (Scope::Read, Operation::Read | Operation::ReadJobs)
                    | (Scope::Write, Operation::Write)
                    | (Scope::Run, Operation::Run | Operation::ReadJobs)
            )
        })
    }

    /// The agents this key is limited to; `None` when it is not limited.
    pub fn agent_restriction(&self) -> Option<Vec<AgentId>> {
        let agents: Vec<AgentId> = self
            .scopes
            .iter()
            .filter_map(|s| match s {
                Scope::Agent(id) => Some(*id),
                _ => None,
            })
            .collect();
        (!agents.is_empty()).then_some(agents)
    }

    pub fn may_access_agent(&self, agent: &AgentId) -> bool {
        self.agent_restriction()
            .is_none_or(|agents| agents.contains(agent))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(scopes: &[&str]) -> ApiKey {
        ApiKey {
            id: 1,
            organization_id: OrganizationId::new(),
            name: "k".into(),
            scopes: scopes.iter().map(|s| Scope::parse(s).unwrap()).collect(),
            created_at: crate::time::now(),
            revoked_at: None,
        }
    }

    #[test]
    fn unscoped_keys_may_do_everything() {
        let k = key(&[]);
        assert!(k.allows(Operation::Write) && k.allows(Operation::Run));
    }

    #[test]
    fn run_only_keys_run_and_read_jobs() {
        let k = key(&["run"]);
        assert!(k.allows(Operation::Run) && k.allows(Operation::ReadJobs));
        assert!(!k.allows(Operation::Write) && !k.allows(Operation::Read));
    }

    #[test]
    fn agent_scopes_restrict_agents_only() {
        let agent = AgentId::new();
        let k = key(&[&format!("agent:{agent}")]);
        assert!(k.allows(Operation::Write));
        assert!(k.may_access_agent(&agent));
        assert!(!k.may_access_agent(&AgentId::new()));
    }

    #[test]
    fn credits_parse_and_exhaust() {
        assert_eq!(Credits::parse("unlimited").unwrap(), Credits::UNLIMITED);
        assert!(Credits::parse("0").unwrap().exhausted());
        assert!(!Credits::parse("0.5").unwrap().exhausted());
        assert!(Credits::parse("lots").is_err());
    }
}
