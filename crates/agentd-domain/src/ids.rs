//! Typed identifiers. Every id is a UUID on the wire; the types keep an agent
//! id from being passed where a job id is expected.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            pub fn new() -> Self {
                Self(Uuid::new_v4())
            }

            pub fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl From<Uuid> for $name {
            fn from(value: Uuid) -> Self {
                Self(value)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s.trim()).map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // Hyphenated lower case, as Roe prints ids.
                self.0.hyphenated().fmt(f)
            }
        }
    };
}

uuid_id!(
    /// An organization (tenant): owns agents, jobs, keys and credits.
    OrganizationId
);
uuid_id!(
    /// A base agent (`BaseAgent` in the Roe API).
    AgentId
);
uuid_id!(
    /// One version of an agent's configuration (`AgentVersion`).
    AgentVersionId
);
uuid_id!(
    /// One run of an agent version.
    JobId
);
uuid_id!(
    /// A file stored by agentd (an uploaded input or a job reference).
    FileId
);
uuid_id!(
    /// A webhook subscription of an agent.
    WebhookId
);
uuid_id!(
    /// One message to one webhook; its `webhook-id` header, the same for
    /// every attempt, so receivers can drop duplicates.
    DeliveryId
);
uuid_id!(
    /// Something a job saved for its caller: a reference file (a derived
    /// PDF, a page image) or an artifact (a keyed result).
    ReferenceId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_and_print_hyphenated() {
        let id: AgentId = "123E4567-E89B-12D3-A456-426614174000".parse().unwrap();
        assert_eq!(id.to_string(), "123e4567-e89b-12d3-a456-426614174000");
        assert!("not-a-uuid".parse::<JobId>().is_err());
    }
}
