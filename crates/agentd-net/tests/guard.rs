//! The guard against real loopback servers: a refused destination receives
//! no connection at all, whether named directly, by a name or through
//! redirects.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use agentd_net::{ClientSettings, GuardedClient, Unreachable};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A loopback HTTP server that counts the connections it accepts and
/// answers each request with what `reply` makes of its path.
struct Server {
    port: u16,
    connections: Arc<AtomicUsize>,
}

impl Server {
    async fn start(ip: &str, reply: fn(port: u16, path: &str) -> String) -> Self {
        let listener = TcpListener::bind((ip, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&connections);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buffer = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buffer[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&request);
                    let path = text.split(' ').nth(1).unwrap_or("/").to_owned();
                    let _ = stream.write_all(reply(port, &path).as_bytes()).await;
                });
            }
        });
        Self { port, connections }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

fn ok(_port: u16, _path: &str) -> String {
    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok".into()
}

fn redirect(location: &str) -> String {
    format!("HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
}

fn client(policy: &str) -> GuardedClient {
    GuardedClient::new(policy.parse().unwrap(), &ClientSettings::default()).unwrap()
}

#[tokio::test]
async fn a_refused_address_receives_no_connection() {
    let internal = Server::start("127.0.0.1", ok).await;
    let guarded = client("false");
    for url in [
        format!("http://127.0.0.1:{}/", internal.port),
        format!("http://127.1:{}/", internal.port),
        format!("http://2130706433:{}/", internal.port),
        format!("http://0x7f000001:{}/", internal.port),
        format!("http://[::ffff:127.0.0.1]:{}/", internal.port),
        format!("http://user:pass@127.0.0.1:{}/", internal.port),
        format!("http://localhost:{}/", internal.port),
    ] {
        assert_eq!(guarded.get(&url).await.err(), Some(Unreachable), "{url}");
    }
    assert_eq!(internal.connections(), 0);
    // The same server is reachable once allowed: the refusals were the guard's.
    let response = client("true")
        .get(&format!("http://127.0.0.1:{}/", internal.port))
        .await
        .unwrap();
    assert_eq!(response.text().await.unwrap(), "ok");
    assert_eq!(internal.connections(), 1);
}

/// Redirects to the internal server on 127.0.0.1, whose port is in the path.
fn to_internal(_port: u16, path: &str) -> String {
    redirect(&format!(
        "http://127.0.0.1:{}/",
        path.trim_start_matches('/')
    ))
}

#[tokio::test]
async fn a_redirect_to_a_refused_address_is_not_followed() {
    let internal = Server::start("127.0.0.1", ok).await;
    let redirector = Server::start("127.0.0.2", to_internal).await;
    let guarded = client("127.0.0.2/32");
    let url = format!("http://127.0.0.2:{}/{}", redirector.port, internal.port);
    assert_eq!(guarded.get(&url).await.err(), Some(Unreachable));
    assert_eq!(redirector.connections(), 1);
    assert_eq!(internal.connections(), 0);
}

/// `/N` redirects to `/N-1` until `/0`, which answers.
fn countdown(port: u16, path: &str) -> String {
    match path.trim_start_matches('/').parse::<u32>() {
        Ok(n) if n > 0 => redirect(&format!("http://127.0.0.1:{port}/{}", n - 1)),
        _ => ok(port, path),
    }
}

#[tokio::test]
async fn at_most_five_redirects_are_followed() {
    let server = Server::start("127.0.0.1", countdown).await;
    let guarded = client("true");
    let five = guarded
        .get(&format!("http://127.0.0.1:{}/5", server.port))
        .await
        .unwrap();
    assert_eq!(five.text().await.unwrap(), "ok");
    let six = guarded
        .get(&format!("http://127.0.0.1:{}/6", server.port))
        .await;
    assert_eq!(six.err(), Some(Unreachable));
}

#[tokio::test]
async fn a_closed_port_fails_like_a_refused_address() {
    let closed = {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        listener.local_addr().unwrap().port()
    };
    let open = client("true")
        .get(&format!("http://127.0.0.1:{closed}/"))
        .await;
    let refused = client("false")
        .get(&format!("http://127.0.0.1:{closed}/"))
        .await;
    assert_eq!(open.err(), Some(Unreachable));
    assert_eq!(refused.err(), Some(Unreachable));
}
