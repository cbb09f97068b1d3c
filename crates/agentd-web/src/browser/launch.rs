//! Starting headless Chromium: where it is, with which flags, and the
//! DevTools websocket it announces.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use agentd_net::AddressPolicy;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::cdp::Connection;
use super::proxy::GuardProxy;

/// Names of Chromium on PATH, in order of preference.
const CANDIDATES: [&str; 3] = ["chromium", "chromium-browser", "google-chrome"];

/// How long Chromium may take to announce its DevTools endpoint.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// `configured` when given (it must exist), else the first of
/// [`CANDIDATES`] found on PATH.
pub fn find_chromium(configured: Option<&Path>) -> Option<PathBuf> {
    if let Some(path) = configured {
        return path.is_file().then(|| path.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    CANDIDATES.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

/// A running Chromium: its process, profile directory, DevTools connection
/// and the proxy its default context goes through.
pub(crate) struct Instance {
    pub connection: Connection,
    child: Child,
    profile: PathBuf,
    _default_proxy: GuardProxy,
}

impl Instance {
    pub async fn launch(
        executable: &Path,
        user_agent: &str,
        policy: Arc<AddressPolicy>,
    ) -> Result<Self, String> {
        // Requests outside the pages' own contexts obey the guard too.
        let default_proxy = GuardProxy::start(policy, u64::MAX)
            .await
            .map_err(|error| format!("cannot start the browser proxy: {error}"))?;
        let profile = unique_profile_dir();
        std::fs::create_dir_all(&profile)
            .map_err(|error| format!("cannot create {}: {error}", profile.display()))?;
        let mut child = Command::new(executable)
            .args(flags(&profile, user_agent, &default_proxy.url()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|error| format!("cannot start {}: {error}", executable.display()))?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let ws_url = tokio::time::timeout(STARTUP_TIMEOUT, devtools_url(stderr))
            .await
            .map_err(|_| "the browser did not start in time".to_owned())??;
        let connection = Connection::connect(&ws_url).await?;
        Ok(Self {
            connection,
            child,
            profile,
            _default_proxy: default_proxy,
        })
    }

    pub fn is_alive(&self) -> bool {
        !self.connection.is_closed()
    }

    pub fn process_id(&self) -> Option<u32> {
        self.child.id()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

fn unique_profile_dir() -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    std::env::temp_dir().join(format!(
        "agentd-chromium-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
}

fn flags(profile: &Path, user_agent: &str, proxy_url: &str) -> Vec<String> {
    let mut flags = vec![
        "--headless=new".to_owned(),
        "--remote-debugging-port=0".to_owned(),
        format!("--user-data-dir={}", profile.display()),
        format!("--user-agent={user_agent}"),
        // Every request through the guard, loopback included.
        format!("--proxy-server={proxy_url}"),
        "--proxy-bypass-list=<-loopback>".to_owned(),
        // WebRTC would otherwise send UDP around the proxy.
        "--force-webrtc-ip-handling-policy=disable_non_proxied_udp".to_owned(),
        "--webrtc-ip-handling-policy=disable_non_proxied_udp".to_owned(),
        "--window-size=1280,800".to_owned(),
        "--hide-scrollbars".to_owned(),
        "--mute-audio".to_owned(),
        "--no-first-run".to_owned(),
        "--no-default-browser-check".to_owned(),
        "--disable-gpu".to_owned(),
        "--disable-dev-shm-usage".to_owned(),
        "--disable-extensions".to_owned(),
        "--disable-sync".to_owned(),
        "--disable-background-networking".to_owned(),
        "--disable-component-update".to_owned(),
        "--disable-default-apps".to_owned(),
        "--disable-breakpad".to_owned(),
        "--disable-client-side-phishing-detection".to_owned(),
        "--disable-features=Translate,MediaRouter,OptimizationHints,DialMediaRouteProvider"
            .to_owned(),
        "--metrics-recording-only".to_owned(),
        "about:blank".to_owned(),
    ];
    if running_as_root() {
        // Chromium refuses to start as root with its sandbox on.
        tracing::warn!("running as root: Chromium's sandbox is off");
        flags.insert(0, "--no-sandbox".to_owned());
    }
    flags
}

/// Reads the effective user id from /proc (no FFI in this crate).
fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// Waits for "DevTools listening on ws://…" on stderr; keeps draining stderr
/// afterwards (a full pipe would stall the browser).
async fn devtools_url(stderr: tokio::process::ChildStderr) -> Result<String, String> {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(url) = line.split("DevTools listening on ").nth(1) {
            let url = url.trim().to_owned();
            tokio::spawn(async move {
                while let Ok(Some(line)) = lines.next_line().await {
                    tracing::trace!(target: "chromium", "{line}");
                }
            });
            return Ok(url);
        }
        tracing::debug!(target: "chromium", "{line}");
    }
    Err("the browser exited before it was ready".to_owned())
}
