//! The browser's URL guard: a filtering HTTP/CONNECT proxy on 127.0.0.1:0
//! that every request of a page goes through (Chromium runs with
//! `--proxy-server` and `--proxy-bypass-list=<-loopback>`, so loopback is
//! not exempt). For each request the proxy resolves the host itself, keeps
//! only the addresses the [`AddressPolicy`] allows and connects to one of
//! those, so DNS rebinding cannot reach what was refused. Plain HTTP is
//! forwarded request by request (a kept-alive proxy connection may carry
//! requests to several hosts); HTTPS and websockets arrive as CONNECT
//! tunnels, checked when opened. A refused request gets no answer (the
//! connection is closed), so the browser reports a network error rather
//! than showing a page made up by the proxy.
//!
//! Each page (browser context) gets its own proxy, which counts the bytes
//! the page receives and cuts it off past the page's budget.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use agentd_net::AddressPolicy;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, Uri};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

type ProxyBody = BoxBody<Bytes, std::io::Error>;

/// What a proxy saw: bytes delivered, and whether the budget was exceeded.
struct Budget {
    max_bytes: u64,
    received: AtomicU64,
    exceeded: AtomicBool,
}

impl Budget {
    /// Counts `n` more bytes; false once past the budget.
    fn take(&self, n: usize) -> bool {
        let total = self.received.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
        if total > self.max_bytes {
            self.exceeded.store(true, Ordering::SeqCst);
            return false;
        }
        true
    }
}

struct Shared {
    policy: Arc<AddressPolicy>,
    budget: Budget,
}

/// A running proxy; stops (with all its connections) when dropped.
pub(crate) struct GuardProxy {
    address: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl GuardProxy {
    pub async fn start(policy: Arc<AddressPolicy>, max_bytes: u64) -> std::io::Result<Self> {
        let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
        let address = listener.local_addr()?;
        let shared = Arc::new(Shared {
            policy,
            budget: Budget {
                max_bytes,
                received: AtomicU64::new(0),
                exceeded: AtomicBool::new(false),
            },
        });
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        Ok(Self {
            address,
            shared,
            task,
        })
    }

    /// `http://127.0.0.1:PORT`, for `--proxy-server` / `proxyServer`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Whether the page tried to load more than its budget.
    pub fn exceeded(&self) -> bool {
        self.shared.budget.exceeded.load(Ordering::SeqCst)
    }

    pub fn max_bytes(&self) -> u64 {
        self.shared.budget.max_bytes
    }
}

impl Drop for GuardProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    // Owned here so that stopping the proxy ends its connections too.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let shared = Arc::clone(&shared);
                connections.spawn(serve_connection(stream, shared));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    let service = hyper::service::service_fn(move |request| {
        let shared = Arc::clone(&shared);
        async move { handle(request, shared).await }
    });
    let served = hyper::server::conn::http1::Builder::new()
        .preserve_header_case(true)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades()
        .await;
    if let Err(error) = served {
        tracing::debug!(%error, "browser proxy connection ended");
    }
}

/// The error that makes hyper close the browser's connection unanswered.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Refused(String);

async fn handle(
    request: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<ProxyBody>, Refused> {
    if request.method() == Method::CONNECT {
        tunnel(request, shared).await
    } else {
        forward(request, shared).await
    }
}

/// Resolves `host` once and connects to the first allowed address that answers.
async fn connect_checked(
    policy: &AddressPolicy,
    host: &str,
    port: u16,
) -> Result<TcpStream, Refused> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let resolved = tokio::net::lookup_host((host, port))
        .await
        .map_err(|_| Refused(format!("{host} does not resolve")))?;
    let allowed: Vec<SocketAddr> = resolved.filter(|a| policy.permits(a.ip())).collect();
    if allowed.is_empty() {
        return Err(Refused(format!("no allowed address for {host}")));
    }
    for address in allowed {
        if let Ok(Ok(stream)) =
            tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address)).await
        {
            return Ok(stream);
        }
    }
    Err(Refused(format!("{host}:{port} does not answer")))
}

fn refuse(reason: String) -> Refused {
    tracing::info!(reason = %reason, "browser request refused or failed");
    Refused(reason)
}

/// CONNECT host:port (HTTPS, websockets): checked, then bytes copied both
/// ways, those towards the browser counted against the budget.
async fn tunnel(
    request: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<ProxyBody>, Refused> {
    let authority = request
        .uri()
        .authority()
        .cloned()
        .ok_or_else(|| refuse("CONNECT without host".into()))?;
    let port = authority.port_u16().unwrap_or(443);
    let upstream = connect_checked(&shared.policy, authority.host(), port)
        .await
        .map_err(|Refused(reason)| refuse(reason))?;
    tokio::spawn(async move {
        match hyper::upgrade::on(request).await {
            Ok(upgraded) => relay(TokioIo::new(upgraded), upstream, &shared).await,
            Err(error) => tracing::debug!(%error, "browser proxy tunnel not upgraded"),
        }
    });
    Ok(Response::new(empty()))
}

async fn relay(browser: TokioIo<hyper::upgrade::Upgraded>, upstream: TcpStream, shared: &Shared) {
    let (mut from_browser, mut to_browser) = tokio::io::split(browser);
    let (mut from_upstream, mut to_upstream) = upstream.into_split();
    let outbound = async {
        let _ = tokio::io::copy(&mut from_browser, &mut to_upstream).await;
        let _ = to_upstream.shutdown().await;
    };
    let inbound = async {
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            match from_upstream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if !shared.budget.take(n) || to_browser.write_all(&buffer[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to_browser.shutdown().await;
    };
    // Either side ending (or the budget) ends the tunnel.
    tokio::select! {
        () = outbound => {}
        () = inbound => {}
    }
}

/// A plain-HTTP request in absolute form: checked, sent to the checked
/// address in origin form, the answer streamed back and counted.
async fn forward(
    request: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<ProxyBody>, Refused> {
    let uri = request.uri().clone();
    if uri.scheme_str() != Some("http") {
        return Err(refuse(format!("scheme of {uri} not allowed")));
    }
    let host = uri
        .host()
        .ok_or_else(|| refuse("request without host".into()))?;
    let upstream = connect_checked(&shared.policy, host, uri.port_u16().unwrap_or(80))
        .await
        .map_err(|Refused(reason)| refuse(reason))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(upstream))
        .await
        .map_err(|error| refuse(format!("HTTP handshake failed: {error}")))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });

    let (mut parts, body) = request.into_parts();
    parts.uri = origin_form(&uri);
    for hop_by_hop in [
        "proxy-connection",
        "proxy-authorization",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
    ] {
        parts.headers.remove(hop_by_hop);
    }
    let response = sender
        .send_request(Request::from_parts(parts, body))
        .await
        .map_err(|error| refuse(format!("HTTP request failed: {error}")))?;
    let (parts, body) = response.into_parts();
    let counted = CountedBody {
        inner: body,
        shared,
    };
    Ok(Response::from_parts(parts, counted.boxed()))
}

/// A response body counted against the page's budget; past it, the
/// response ends with an error (the browser sees a cut connection).
struct CountedBody {
    inner: Incoming,
    shared: Arc<Shared>,
}

impl hyper::body::Body for CountedBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        let Poll::Ready(Some(Ok(frame))) = polled else {
            return polled.map(|next| next.map(|result| result.map_err(std::io::Error::other)));
        };
        let size = frame.data_ref().map_or(0, Bytes::len);
        if self.shared.budget.take(size) {
            Poll::Ready(Some(Ok(frame)))
        } else {
            Poll::Ready(Some(Err(std::io::Error::other("page budget exceeded"))))
        }
    }
}

fn origin_form(uri: &Uri) -> Uri {
    uri.path_and_query()
        .map(|path| path.as_str())
        .unwrap_or("/")
        .parse()
        .unwrap_or_else(|_| Uri::from_static("/"))
}

fn empty() -> ProxyBody {
    Empty::<Bytes>::new()
        .map_err(|never: Infallible| match never {})
        .boxed()
}

#[cfg(test)]
mod tests {
    //! The proxy alone (no browser needed): what it refuses, what it lets
    //! through, and the byte budget.

    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// A TCP server on 127.0.0.1 that counts connections and answers each
    /// with a fixed HTTP response of `body_size` bytes.
    async fn start_target(body_size: usize) -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
            .await
            .unwrap();
        let address = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&hits);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut request = vec![0u8; 4096];
                    let _ = stream.read(&mut request).await;
                    let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {body_size}\r\nconnection: close\r\n\r\n");
                    let _ = stream.write_all(head.as_bytes()).await;
                    let _ = stream.write_all(&vec![b'x'; body_size]).await;
                });
            }
        });
        (address, hits)
    }

    /// Sends `request` to the proxy and reads everything it answers.
    async fn exchange(proxy: &GuardProxy, request: &str) -> String {
        let mut stream = TcpStream::connect(proxy.address).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer).await;
        String::from_utf8_lossy(&answer).into_owned()
    }

    #[tokio::test]
    async fn refused_addresses_get_no_answer_and_no_connection() {
        let (target, hits) = start_target(10).await;
        let proxy = GuardProxy::start(Arc::new(AddressPolicy::PublicOnly), u64::MAX)
            .await
            .unwrap();
        let port = target.port();
        for request in [
            format!("GET http://127.0.0.1:{port}/ HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n\r\n"),
            format!("GET http://localhost:{port}/ HTTP/1.1\r\nhost: localhost:{port}\r\n\r\n"),
            format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n\r\n"),
            format!("CONNECT [::ffff:127.0.0.1]:{port} HTTP/1.1\r\nhost: x\r\n\r\n"),
            "GET /relative HTTP/1.1\r\nhost: x\r\n\r\n".to_owned(),
        ] {
            assert_eq!(exchange(&proxy, &request).await, "", "{request}");
        }
        assert_eq!(hits.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn allowed_requests_are_forwarded_and_tunnelled() {
        let (target, hits) = start_target(10).await;
        let proxy = GuardProxy::start(Arc::new(AddressPolicy::AllowAll), u64::MAX)
            .await
            .unwrap();
        let port = target.port();
        let answer = exchange(
            &proxy,
            &format!("GET http://127.0.0.1:{port}/ HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nconnection: close\r\n\r\n"),
        )
        .await;
        assert!(
            answer.starts_with("HTTP/1.1 200") && answer.ends_with("xxxxxxxxxx"),
            "{answer}"
        );

        let mut tunnel = TcpStream::connect(proxy.address).await.unwrap();
        tunnel
            .write_all(
                format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n\r\n")
                    .as_bytes(),
            )
            .await
            .unwrap();
        let mut established = vec![0u8; 19];
        tunnel.read_exact(&mut established).await.unwrap();
        assert!(
            established.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&established)
        );
        assert_eq!(hits.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_response_past_the_budget_is_cut_and_flagged() {
        let (target, _) = start_target(100_000).await;
        let proxy = GuardProxy::start(Arc::new(AddressPolicy::AllowAll), 10_000)
            .await
            .unwrap();
        let port = target.port();
        let answer = exchange(
            &proxy,
            &format!("GET http://127.0.0.1:{port}/ HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n\r\n"),
        )
        .await;
        assert!(
            answer.len() < 100_000,
            "{} bytes came through",
            answer.len()
        );
        assert!(proxy.exceeded());
    }
}
