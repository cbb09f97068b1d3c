//! `GET /openapi.json`: the OpenAPI 3.1 document of the API, generated from
//! the handlers' `#[utoipa::path]` annotations and the wire types'
//! `ToSchema` derives. Names (operationIds, parameters, schemas, the
//! `apiKeyAuth` scheme) are Roe's, so Roe's SDKs and tools read it alike.

use std::borrow::Cow;
use std::sync::LazyLock;

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use utoipa::openapi::path::Operation;
use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ArrayBuilder, ContentBuilder, KnownFormat, ObjectBuilder, OpenApi as Document, RefOr,
    ResponseBuilder, Schema, SchemaFormat, Type,
};
use utoipa::{IntoParams, Modify, OpenApi, PartialSchema, ToSchema};

use super::{
    agents, discovery, jobs, mcp, references, runs, usage, users, versions, webhooks, wire,
};

/// The body of every 4xx and 5xx answer (see `ApiError`).
pub struct ErrorBody;

impl PartialSchema for ErrorBody {
    fn schema() -> RefOr<Schema> {
        let text = |description: &str| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some(description))
        };
        ObjectBuilder::new()
            .description(Some(
                "An error: `detail` and `message` carry the same text. A 400 for invalid \
                 fields also names each field with its list of messages, as Roe (DRF) does; \
                 a field named `detail` or `message` is reported as `field:detail` / \
                 `field:message`.",
            ))
            .property("detail", text("What was wrong, in words."))
            .required("detail")
            .property("message", text("The same text as `detail`."))
            .required("message")
            .property(
                "error",
                text("The webhook resend's 400 only: the same text, as Roe's `{\"error\"}` body."),
            )
            .property(
                "job_id",
                text("504 of a synchronous run only: the job that goes on running.")
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid))),
            )
            .additional_properties(Some(
                ArrayBuilder::new().items(ObjectBuilder::new().schema_type(Type::String)),
            ))
            .into()
    }
}

impl ToSchema for ErrorBody {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("ErrorDetailResponse")
    }
}

/// `{agent_id}` of a path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // documents the path; handlers take `Path<String>`
pub struct AgentIdParameter {
    /// The agent's id.
    #[param(format = Uuid)]
    agent_id: String,
}

/// `{agent_id}` and `{agent_version_id}` of a path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // documents the path; handlers take `Path<(String, String)>`
pub struct AgentVersionParameters {
    /// The agent's id.
    #[param(format = Uuid)]
    agent_id: String,
    /// The version's id.
    #[param(format = Uuid)]
    agent_version_id: String,
}

/// `{job_id}` of a path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // documents the path; handlers take `Path<String>`
pub struct JobIdParameter {
    /// The job's id.
    #[param(format = Uuid)]
    job_id: String,
}

/// `{agent_job_id}` of a path: Roe's name for the job id on some paths.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // documents the path; handlers take `Path<String>`
pub struct AgentJobIdParameter {
    /// The job's id.
    #[param(format = Uuid)]
    agent_job_id: String,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "agentd",
        description = "Self-hosted server that runs AI agents over unstructured data, \
                       wire-compatible with the Roe AI Agents API.",
    ),
    paths(
        agents::list,
        agents::create,
        agents::retrieve,
        agents::update,
        agents::partial_update,
        agents::delete,
        agents::duplicate,
        jobs::list,
        jobs::cancel_all,
        versions::list,
        versions::create,
        versions::retrieve,
        versions::update,
        versions::partial_update,
        versions::delete,
        versions::current,
        jobs::result,
        jobs::cancel,
        jobs::delete_data,
        jobs::status,
        jobs::results,
        jobs::statuses,
        references::retrieve,
        references::artifact_result,
        usage::usage,
        discovery::models,
        runs::run_sync,
        runs::run_async,
        runs::run_async_many,
        runs::run_version_sync,
        runs::run_version_async,
        discovery::engine_types,
        users::current_user,
        webhooks::list,
        webhooks::create,
        webhooks::retrieve,
        webhooks::update,
        webhooks::delete,
        webhooks::deliveries,
        webhooks::resend,
        mcp::service,
    ),
    components(schemas(ErrorBody, wire::AgentTag)),
    modifiers(&ApiKeyAuth, &Authenticated),
    tags(
        (name = "agents", description = "Agents, their versions, runs and jobs."),
        (name = "discovery", description = "Engines and models this server offers."),
        (name = "users", description = "Who the API key stands for."),
        (name = "mcp", description = "The agents as Model Context Protocol tools."),
    ),
)]
pub struct ApiDoc;

/// Roe's security scheme: the organization's API key as a Bearer token.
struct ApiKeyAuth;

impl Modify for ApiKeyAuth {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "apiKeyAuth",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "Organization API key passed as a Bearer token \
                         (`Authorization: Bearer <key>`).",
                    ))
                    .build(),
            ),
        );
    }
}

/// Every operation needs the API key, and can answer the errors that come
/// with it: added to each, so the handlers' annotations list only what is
/// particular to them.
struct Authenticated;

const AUTHENTICATED_ERRORS: &[(&str, &str)] = &[
    ("401", "The API key is missing, unknown or revoked."),
    (
        "403",
        "The key lacks the scope, or may not access this agent or organization.",
    ),
    ("500", "Internal error (details are only logged)."),
    (
        "503",
        "Storage is full or unavailable; try again later (`Retry-After`).",
    ),
];

const BODY_ERRORS: &[(&str, &str)] = &[
    ("400", "The body or a parameter is invalid."),
    (
        "413",
        "The body is larger than this server accepts (`AGENTD_MAX_REQUEST_BYTES`).",
    ),
];

impl Modify for Authenticated {
    fn modify(&self, openapi: &mut Document) {
        for item in openapi.paths.paths.values_mut() {
            for operation in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.patch,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                if operation
                    .tags
                    .as_ref()
                    .is_some_and(|tags| tags.iter().any(|tag| tag == "agents"))
                {
                    add_organization_parameter(operation);
                }
                operation.security = Some(vec![SecurityRequirement::new(
                    "apiKeyAuth",
                    Vec::<String>::new(),
                )]);
                add_errors(operation, AUTHENTICATED_ERRORS);
                if operation.request_body.is_some() {
                    add_errors(operation, BODY_ERRORS);
                }
            }
        }
    }
}

/// Roe documents `organization_id` on the agents operations; here the
/// organization is the API key's, and naming another is a 403.
fn add_organization_parameter(operation: &mut Operation) {
    let parameters = operation.parameters.get_or_insert_with(Vec::new);
    if parameters.iter().any(|p| p.name == "organization_id") {
        return;
    }
    parameters.push(
        ParameterBuilder::new()
            .name("organization_id")
            .parameter_in(ParameterIn::Query)
            .required(utoipa::openapi::Required::False)
            .description(Some(
                "Optional: the organization is the API key's; another one is refused (403).",
            ))
            .schema(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid))),
            ))
            .build(),
    );
}

/// Adds each error response the operation does not document yet.
fn add_errors(operation: &mut Operation, errors: &[(&str, &str)]) {
    for (status, description) in errors {
        if operation.responses.responses.contains_key(*status) {
            continue;
        }
        let response = ResponseBuilder::new()
            .description(*description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                        ErrorBody::name(),
                    ))))
                    .build(),
            )
            .build();
        operation
            .responses
            .responses
            .insert((*status).to_owned(), response.into());
    }
}

/// The document as JSON, built once.
static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    ApiDoc::openapi()
        .to_json()
        .expect("the OpenAPI document serializes")
});

/// `GET /openapi.json` (no authentication: the document holds no secrets).
pub async fn document() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], DOCUMENT.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn document() -> Value {
        serde_json::from_str(&DOCUMENT).unwrap()
    }

    /// `{name}` segments compared by position only: the document may use
    /// Roe's parameter name where the router names it otherwise.
    fn shape(path: &str) -> String {
        let mut shape = String::new();
        let mut in_parameter = false;
        for c in path.chars() {
            match c {
                '{' => {
                    in_parameter = true;
                    shape.push_str("{}");
                }
                '}' => in_parameter = false,
                _ if in_parameter => {}
                _ => shape.push(c),
            }
        }
        shape
    }

    /// Every route call on a `/v1/` path in the crate's sources, with its
    /// method routers (`get(..)`, `post(..)`, ...), as (method, path shape)
    /// pairs. Read from the sources because an
    /// axum `Router` cannot list its routes.
    fn routed_operations() -> Vec<(String, String)> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut operations = Vec::new();
        let mut pending = vec![root];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    pending.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let source = std::fs::read_to_string(&path).unwrap();
                    operations.extend(routes_in(&source));
                }
            }
        }
        operations
    }

    fn routes_in(source: &str) -> Vec<(String, String)> {
        let mut found = Vec::new();
        let mut rest = source;
        while let Some(start) = rest.find(".route(") {
            rest = &rest[start + ".route(".len()..];
            let trimmed = rest.trim_start();
            let Some(literal) = trimmed.strip_prefix("\"/v1/") else {
                continue;
            };
            let Some(end) = literal.find('"') else {
                continue;
            };
            let path = format!("/v1/{}", &literal[..end]);
            // The method routers: up to the `)` that closes `.route(`.
            let mut depth = 1;
            let arguments: String = literal[end..]
                .chars()
                .take_while(|c| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    depth > 0
                })
                .collect();
            for method in ["get", "post", "put", "patch", "delete"] {
                let called = |prefix: &str| arguments.contains(&format!("{prefix}{method}("));
                if called(" ") || called(".") || called("(") || called("\n") {
                    found.push((method.to_owned(), shape(&path)));
                }
            }
        }
        found
    }

    /// The document's `/v1/` operations, as (method, path shape) pairs.
    fn documented_operations() -> Vec<(String, String)> {
        let document = document();
        let mut operations = Vec::new();
        for (path, item) in document["paths"].as_object().unwrap() {
            // Other paths (`/mcp`) are not routed with method routers.
            if !path.starts_with("/v1/") {
                continue;
            }
            for method in item.as_object().unwrap().keys() {
                operations.push((method.clone(), shape(path)));
            }
        }
        operations
    }

    /// Fails when a `/v1/` route has no operation in the document: annotate
    /// its handler with `#[utoipa::path]` and list it in `ApiDoc`.
    #[test]
    fn every_v1_route_is_documented() {
        let routed = routed_operations();
        assert!(
            routed.len() >= 30,
            "the route scan found too few routes: {routed:?}"
        );
        let documented = documented_operations();
        let missing: Vec<_> = routed
            .iter()
            .filter(|operation| !documented.contains(operation))
            .collect();
        assert!(
            missing.is_empty(),
            "routes missing from /openapi.json: {missing:?}"
        );
        let stale: Vec<_> = documented
            .iter()
            .filter(|operation| !routed.contains(operation))
            .collect();
        assert!(stale.is_empty(), "documented but not routed: {stale:?}");
    }

    #[test]
    fn operation_ids_are_unique() {
        let document = document();
        let mut ids: Vec<&str> = document["paths"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|item| item.as_object().unwrap().values())
            .map(|operation| operation["operationId"].as_str().unwrap())
            .collect();
        let count = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), count, "duplicate operationIds");
    }

    /// Every 4xx and 5xx documents the JSON error body, and every operation
    /// needs the API key.
    #[test]
    fn errors_and_security_are_documented_everywhere() {
        let document = document();
        for (path, item) in document["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                assert_eq!(
                    operation["security"],
                    serde_json::json!([{"apiKeyAuth": []}]),
                    "{method} {path}"
                );
                let responses = operation["responses"].as_object().unwrap();
                for status in ["401", "403", "500", "503"] {
                    assert!(responses.contains_key(status), "{method} {path} {status}");
                }
                for (status, response) in responses {
                    if status.starts_with('4') || status.starts_with('5') {
                        assert_eq!(
                            response["content"]["application/json"]["schema"]["$ref"],
                            "#/components/schemas/ErrorDetailResponse",
                            "{method} {path} {status}"
                        );
                    }
                }
            }
        }
        assert_eq!(
            document["components"]["securitySchemes"]["apiKeyAuth"]["scheme"],
            "bearer"
        );
    }

    /// The documented query parameters are the ones the handlers accept
    /// (they refuse unknown ones).
    #[test]
    fn list_parameters_match_what_the_handlers_accept() {
        let document = document();
        let query_names = |path: &str| -> Vec<String> {
            let mut names: Vec<String> = document["paths"][path]["get"]["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| p["in"] == "query" && p["name"] != "organization_id")
                .map(|p| p["name"].as_str().unwrap().to_owned())
                .collect();
            names.sort();
            names
        };
        let sorted = |names: &[&str]| {
            let mut names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
            names.sort();
            names
        };
        assert_eq!(query_names("/v1/agents/"), sorted(agents::LIST_PARAMETERS));
        assert_eq!(
            query_names("/v1/agents/{agent_id}/jobs/"),
            sorted(jobs::LIST_PARAMETERS)
        );
    }
}
