//! `/mcp`: a Model Context Protocol server (Streamable HTTP, served by
//! `rmcp`) that offers each agent the API key may run as a tool.
//!
//! Every HTTP request is authenticated like the rest of the API (Bearer
//! API key; 401 JSON otherwise) before rmcp sees it, and the [`Caller`]
//! travels to the handler in the request's extensions. The server is
//! stateless (no MCP sessions, plain JSON answers): any agentd process can
//! answer any request, and no stream outlives its request, so shutdown
//! never waits on an idle client. A tool call submits a run through the
//! same code as `POST /v1/agents/run/{agent_id}/`, then waits for the job;
//! when the client cancels the call or goes away, the job is cancelled.

pub mod tools;

use std::sync::Arc;

use agentd_domain::{Agent, AgentVersion, Job, JobId, Operation};
use agentd_storage::AgentQuery;
use axum::extract::Request;
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use super::error::ApiError;
use super::run_body::RunBody;
use super::runs::submit_run;
use super::submit::RunOptions;
use crate::auth::Caller;
use crate::startup::AppState;
use crate::worker::wait_until_final;

/// Tools per `tools/list` page; the client follows `nextCursor`.
const TOOLS_PER_PAGE: i64 = 100;
/// Longest rmcp error text copied into a JSON error body.
const MAX_TRANSPORT_MESSAGE_BYTES: usize = 4096;

/// The `/mcp` service: authentication in front of rmcp's Streamable HTTP
/// transport.
#[utoipa::path(
    post,
    path = "/mcp",
    operation_id = "mcp",
    tag = "mcp",
    summary = "Model Context Protocol (Streamable HTTP): each agent the key may run is a tool",
    description = "One JSON-RPC 2.0 message per request (`initialize`, `tools/list`, \
                   `tools/call`, ...); answers are JSON, never event streams, and there are \
                   no sessions. Send `Accept: application/json, text/event-stream`.",
    request_body(content = Object, content_type = "application/json",
                 description = "A JSON-RPC 2.0 request or notification."),
    responses(
        (status = 200, body = Object, content_type = "application/json",
         description = "The JSON-RPC 2.0 answer (errors of a call are JSON-RPC errors)."),
        (status = 202, description = "A notification was accepted."),
        (status = 400, body = super::openapi::ErrorBody, description = "Not a JSON-RPC message."),
        (status = 405, body = super::openapi::ErrorBody, description = "Only POST is served (no sessions, no event streams)."),
        (status = 406, body = super::openapi::ErrorBody, description = "`Accept` does not name both `application/json` and `text/event-stream`."),
        (status = 415, body = super::openapi::ErrorBody, description = "The body is not `application/json`."),
    ),
)]
pub fn service(state: Arc<AppState>) -> axum::routing::MethodRouter<Arc<AppState>> {
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .with_max_request_body_bytes(state.config.max_request_bytes)
        // rmcp's Host check guards unauthenticated local servers against
        // DNS rebinding; here every request must carry the API key in a
        // header, which a rebound browser page cannot send.
        .disable_allowed_hosts();
    let handler_state = Arc::clone(&state);
    let transport = StreamableHttpService::new(
        move || {
            Ok(AgentTools {
                state: Arc::clone(&handler_state),
            })
        },
        Arc::new(NeverSessionManager::default()),
        config,
    );
    axum::routing::any_service(transport)
        .layer(axum::middleware::from_fn(json_transport_errors))
        .layer(axum::middleware::from_fn_with_state(state, authenticate))
}

/// 401 JSON without a valid key; otherwise the caller rides along in the
/// request's extensions, which rmcp hands to the handler.
async fn authenticate(caller: Caller, mut request: Request, next: Next) -> Response {
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// rmcp answers some client errors (wrong `Accept`, wrong `Content-Type`,
/// `GET` on a stateless server) in plain text; the API answers JSON.
async fn json_transport_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.contains("json"));
    if is_json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (parts, body) = response.into_parts();
    if status.is_server_error() {
        return ApiError::Internal(anyhow::anyhow!("MCP transport answered {status}"))
            .into_response();
    }
    let text = axum::body::to_bytes(body, MAX_TRANSPORT_MESSAGE_BYTES)
        .await
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("Bad request")
            .to_owned()
    } else {
        text
    };
    let mut answer = ApiError::McpTransport { status, message }.into_response();
    // Keep what the transport said beside the status (`Allow` on a 405).
    for (name, value) in parts
        .headers
        .iter()
        .filter(|(name, _)| *name != CONTENT_TYPE)
    {
        answer.headers_mut().insert(name.clone(), value.clone());
    }
    *answer.status_mut() = status;
    answer
}

/// The MCP handler: one per request (the server is stateless).
struct AgentTools {
    state: Arc<AppState>,
}

/// The caller the authentication layer put on the HTTP request.
fn caller_of(context: &RequestContext<RoleServer>) -> Result<Caller, McpError> {
    context
        .extensions
        .get::<axum::http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<Caller>())
        .cloned()
        .ok_or_else(|| McpError::internal_error("The request was not authenticated.", None))
}

/// Storage failures are the server's: logged, and answered without their text.
fn internal(error: impl Into<ApiError>) -> McpError {
    let error = error.into();
    tracing::error!(error = %format!("{error:#}"), "MCP request failed");
    McpError::internal_error("Internal server error.", None)
}

impl ServerHandler for AgentTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("agentd", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Each tool runs one agent on the inputs given as arguments and returns the \
                 agent's outputs. File inputs take a data: URL with base64 content, an \
                 http(s) URL, or the id of a stored file.",
            )
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let caller = caller_of(&context)?;
        let offset = page_offset(request.as_ref())?;
        if !caller.key.allows(Operation::Run) {
            return Ok(ListToolsResult::with_all_items(Vec::new()));
        }
        let page = self
            .state
            .storage
            .list_agents(
                caller.organization_id(),
                &AgentQuery {
                    only: caller.key.agent_restriction(),
                    offset,
                    limit: TOOLS_PER_PAGE,
                    ..AgentQuery::default()
                },
            )
            .await
            .map_err(internal)?;
        let mut tools = Vec::with_capacity(page.items.len());
        for agent in &page.items {
            if let Some(tool) = self.tool_of(agent).await? {
                tools.push(tool);
            }
        }
        let next = offset + page.items.len() as i64;
        let mut result = ListToolsResult::with_all_items(tools);
        if !page.items.is_empty() && next < page.total {
            result.next_cursor = Some(next.to_string());
        }
        Ok(result)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let caller = caller_of(&context)?;
        let agent = self.find_agent(&caller, &request.name).await?;
        let arguments = request.arguments.unwrap_or_default();
        Ok(self
            .run(&caller, &agent, arguments, &context.ct)
            .await
            .into())
    }
}

/// The offset a `tools/list` cursor stands for (the cursors this server
/// hands out are offsets).
fn page_offset(request: Option<&PaginatedRequestParams>) -> Result<i64, McpError> {
    match request.and_then(|params| params.cursor.as_deref()) {
        None => Ok(0),
        Some(cursor) => cursor
            .parse::<i64>()
            .ok()
            .filter(|offset| *offset >= 0)
            .ok_or_else(|| McpError::invalid_params(format!("Invalid cursor '{cursor}'."), None)),
    }
}

impl AgentTools {
    /// The agent's tool, from its current version; `None` when that
    /// version is gone (the agent is being deleted).
    async fn tool_of(&self, agent: &Agent) -> Result<Option<Tool>, McpError> {
        let version: Option<AgentVersion> = self
            .state
            .storage
            .get_version(agent.id, agent.current_version_id)
            .await
            .map_err(internal)?;
        Ok(version.map(|version| tools::agent_tool(agent, &version)))
    }

    /// The agent a tool name stands for, among those the key may see. The
    /// name's short id narrows the search; the whole name must match.
    async fn find_agent(&self, caller: &Caller, name: &str) -> Result<Agent, McpError> {
        let unknown = || McpError::invalid_params(format!("Unknown tool '{name}'."), None);
        let short_id = tools::short_id_of(name).ok_or_else(unknown)?;
        let candidates = self
            .state
            .storage
            .list_agents(
                caller.organization_id(),
                &AgentQuery {
                    search: Some(short_id.to_owned()),
                    only: caller.key.agent_restriction(),
                    limit: TOOLS_PER_PAGE,
                    ..AgentQuery::default()
                },
            )
            .await
            .map_err(internal)?;
        candidates
            .items
            .into_iter()
            .find(|agent| tools::tool_name(agent) == name)
            .ok_or_else(unknown)
    }

    /// Runs the agent and waits for its job. What the caller can fix (bad
    /// inputs, no credits, no permission) and what the job reports come
    /// back as error results the model can read.
    async fn run(
        &self,
        caller: &Caller,
        agent: &Agent,
        arguments: Map<String, Value>,
        cancelled: &CancellationToken,
    ) -> CallToolResult {
        let body = RunBody::json(arguments);
        let options = RunOptions {
            awaited: true,
            ..RunOptions::default()
        };
        let agent_id = agent.id.to_string();
        let submitted = submit_run(&self.state, caller, &agent_id, None, body, &options).await;
        let job_id = match submitted {
            Ok(job_id) => job_id,
            Err(error) => return refused(error),
        };
        match self.wait_for(caller, job_id, cancelled).await {
            Ok(Some(job)) => tools::job_result(&job),
            Ok(None) => tools::error_result(format!(
                "The run takes longer than {} s; it continues as job {job_id} \
                 (GET /v1/agents/jobs/{job_id}/result/).",
                self.state.config.sync_timeout().as_secs()
            )),
            Err(error) => refused(error),
        }
    }

    /// The final job, `None` past the synchronous-run timeout. A cancelled
    /// call cancels the job: nobody is left to read its result.
    async fn wait_for(
        &self,
        caller: &Caller,
        job_id: JobId,
        cancelled: &CancellationToken,
    ) -> Result<Option<Job>, ApiError> {
        let state = &self.state;
        let organization_id = caller.organization_id();
        tokio::select! {
            waited = wait_until_final(
                state.storage.as_ref(),
                &state.signals,
                organization_id,
                job_id,
                state.config.sync_timeout(),
            ) => Ok(waited?),
            () = cancelled.cancelled() => {
                tracing::info!(%job_id, "MCP tool call cancelled; cancelling its job");
                super::jobs::cancel_job(state, organization_id, job_id).await?;
                Err(ApiError::Conflict(format!("Job {job_id} was cancelled.")))
            }
        }
    }
}

/// An [`ApiError`] as an error result: its message for what the caller
/// can act on, a generic text (the details logged) for our failures.
fn refused(error: ApiError) -> CallToolResult {
    let message = match &error {
        ApiError::Internal(inner) => {
            tracing::error!(error = %format!("{inner:#}"), "MCP tool call failed");
            "Internal server error.".to_owned()
        }
        other => other.to_string(),
    };
    tools::error_result(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor(text: &str) -> PaginatedRequestParams {
        serde_json::from_value(serde_json::json!({ "cursor": text })).unwrap()
    }

    #[test]
    fn cursors_are_offsets() {
        assert_eq!(page_offset(None).unwrap(), 0);
        assert_eq!(page_offset(Some(&cursor("200"))).unwrap(), 200);
        for bad in ["-1", "next", ""] {
            let error = page_offset(Some(&cursor(bad))).unwrap_err();
            assert!(error.message.contains("Invalid cursor"), "{bad}: {error:?}");
        }
    }
}
