//! A minimal Chrome DevTools Protocol client over the browser's websocket:
//! commands (with an id, answered once) and events (broadcast to whoever
//! listens), flattened sessions (`sessionId`) for the pages.
//!
//! Written here rather than taken from `chromiumoxide`: that crate compiles a
//! generated binding of a fixed protocol revision (hundreds of thousands of
//! lines) and fails on events of newer Chromium builds, while agentd uses
//! about twenty commands whose shapes have been stable for years.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

/// A protocol event: which page session it belongs to (`None`: the browser).
#[derive(Clone, Debug)]
pub(crate) struct Event {
    pub session_id: Option<String>,
    pub method: String,
    pub params: Value,
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CdpError {
    #[error("the browser connection is closed")]
    Closed,
    #[error("{method} failed: {message}")]
    Command { method: String, message: String },
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value, String>>>>>;

/// One websocket connection to the browser.
pub(crate) struct Connection {
    outgoing: mpsc::UnboundedSender<String>,
    pending: Pending,
    events: broadcast::Sender<Event>,
    next_id: AtomicU64,
    closed: Arc<AtomicBool>,
}

impl Connection {
    pub async fn connect(ws_url: &str) -> Result<Self, String> {
        let (socket, _) = tokio_tungstenite::connect_async(ws_url)
            .await
            .map_err(|error| format!("cannot connect to the browser: {error}"))?;
        let (mut sink, mut stream) = socket.split();
        let (outgoing, mut to_send) = mpsc::unbounded_channel::<String>();
        let pending: Pending = Arc::default();
        let (events, _) = broadcast::channel(1024);
        let closed = Arc::new(AtomicBool::new(false));

        tokio::spawn(async move {
            while let Some(text) = to_send.recv().await {
                if sink.send(Message::text(text)).await.is_err() {
                    break;
                }
            }
        });
        let reader_pending = Arc::clone(&pending);
        let reader_events = events.clone();
        let reader_closed = Arc::clone(&closed);
        tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                if let Message::Text(text) = message {
                    dispatch(text.as_str(), &reader_pending, &reader_events);
                }
            }
            reader_closed.store(true, Ordering::SeqCst);
            // Every command still waiting learns that no answer will come.
            reader_pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clear();
        });
        Ok(Self {
            outgoing,
            pending,
            events,
            next_id: AtomicU64::new(1),
            closed,
        })
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Events from now on (subscribe before sending the command whose
    /// consequences are awaited).
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Sends a command and waits for its answer.
    pub async fn call(
        &self,
        session_id: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, CdpError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(session_id) = session_id {
            message["sessionId"] = json!(session_id);
        }
        let (answer, answered) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, answer);
        if self.is_closed() || self.outgoing.send(message.to_string()).is_err() {
            self.pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
            return Err(CdpError::Closed);
        }
        match answered.await {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(message)) => Err(CdpError::Command {
                method: method.to_owned(),
                message,
            }),
            Err(_) => Err(CdpError::Closed),
        }
    }
}

fn dispatch(text: &str, pending: &Pending, events: &broadcast::Sender<Event>) {
    let Ok(mut message) = serde_json::from_str::<Value>(text) else {
        tracing::debug!("unreadable message from the browser");
        return;
    };
    if let Some(id) = message.get("id").and_then(Value::as_u64) {
        let waiter = pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        if let Some(waiter) = waiter {
            let answer = match message.get("error") {
                Some(error) => Err(error
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown error")
                    .to_owned()),
                None => Ok(message
                    .get_mut("result")
                    .map(Value::take)
                    .unwrap_or(Value::Null)),
            };
            let _ = waiter.send(answer);
        }
        return;
    }
    if let Some(method) = message.get("method").and_then(Value::as_str) {
        let event = Event {
            session_id: message
                .get("sessionId")
                .and_then(Value::as_str)
                .map(str::to_owned),
            method: method.to_owned(),
            params: message
                .get_mut("params")
                .map(Value::take)
                .unwrap_or(Value::Null),
        };
        // Nobody listening is fine.
        let _ = events.send(event);
    }
}
