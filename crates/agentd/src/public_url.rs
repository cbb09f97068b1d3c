//! The base of the links the server returns (pagination, job references):
//! `AGENTD_PUBLIC_URL`, else the address the listener bound, which is known
//! only once it is bound. Shared by the API and the workers.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use crate::config::default_public_url;

#[derive(Clone, Debug)]
pub struct PublicUrl {
    url: Arc<OnceLock<String>>,
    /// The configured listen address, for a process that never binds
    /// (`agentd worker`).
    listen: SocketAddr,
}

impl PublicUrl {
    pub fn new(configured: Option<String>, listen: SocketAddr) -> Self {
        Self {
            url: Arc::new(configured.map_or_else(OnceLock::new, OnceLock::from)),
            listen,
        }
    }

    /// Unless `AGENTD_PUBLIC_URL` set it, links name the bound address.
    pub fn bound(&self, addr: SocketAddr) {
        let _ = self.url.set(default_public_url(addr));
    }

    /// The base, without a trailing `/`.
    pub fn get(&self) -> &str {
        self.url.get_or_init(|| default_public_url(self.listen))
    }
}
