"""The API reference: `/openapi.json` is a valid OpenAPI 3.1 document that
follows Roe's names and shapes, and `/docs` renders it from local files only."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from helpers import expect

ROE_SPEC = Path(__file__).resolve().parents[3] / "shared" / "spec" / "roe-agents-openapi.yml"
METHODS = ("get", "put", "post", "patch", "delete")

# Roe operations this server does not offer (yet). When one is added, the
# comparison fails until it is removed from here.
NOT_IN_AGENTD: set[str] = set()

# Where agentd's document knowingly differs from Roe's, and why.
EXPECTED_DIFFERENCES = {
    # The organization is the API key's; naming it is optional everywhere.
    "agents_list: parameter organization_id is required in Roe only",
    # agentd's filters and headers that Roe does not document.
    "agents_list: parameter tags_match (query) is agentd's only",
    "agents_jobs_list: parameter review_state (query) is agentd's only",
    "discovery_supported_models_list: parameter all (query) is agentd's only",
    "agents_run: parameter X-Skip-Cache (header) is agentd's only",
    "agents_run: parameter Idempotency-Key (header) is agentd's only",
    "agents_run_version: parameter X-Skip-Cache (header) is agentd's only",
    "agents_run_version: parameter Idempotency-Key (header) is agentd's only",
    "agents_run_async_create: parameter X-Skip-Cache (header) is agentd's only",
    "agents_run_async_create: parameter Idempotency-Key (header) is agentd's only",
    "agents_run_versions_async_create: parameter X-Skip-Cache (header) is agentd's only",
    "agents_run_versions_async_create: parameter Idempotency-Key (header) is agentd's only",
    "agents_run_async_many: parameter X-Skip-Cache (header) is agentd's only",
    "agents_run_async_many: parameter Idempotency-Key (header) is agentd's only",
    # A reference answers one byte range (206); Roe documents the 206 but not the header.
    "agents_jobs_references_retrieve: parameter Range (header) is agentd's only",
    # organization_id is accepted on every operation (the key's own, else 403).
    "agents_jobs_references_retrieve: parameter organization_id (query) is agentd's only",
    # Roe's users have these; an API key (which stands for the user here) has not.
    "users_current_user_retrieve: 200 field is_first_login is Roe's only",
    "users_current_user_retrieve: 200 field is_email_verified is Roe's only",
    "users_current_user_retrieve: 200 field is_mfa_enabled is Roe's only",
}


@pytest.fixture(scope="module")
def document(server) -> dict:
    import httpx

    resp = httpx.get(f"{server.base_url}/openapi.json", timeout=30)  # no Authorization header
    expect(resp, 200)
    assert resp.headers["content-type"].startswith("application/json")
    return resp.json()


@pytest.fixture(scope="module")
def roe() -> dict:
    if not ROE_SPEC.is_file():
        pytest.skip(f"Roe's spec is not at {ROE_SPEC}")
    return yaml.safe_load(ROE_SPEC.read_text(encoding="utf-8"))


def operations(spec: dict) -> dict[str, tuple[str, str, dict]]:
    """operationId -> (method, path, operation)."""
    found = {}
    for path, item in spec["paths"].items():
        for method in METHODS:
            if method in item:
                found[item[method]["operationId"]] = (method, path, item[method])
    return found


def resolve(spec: dict, schema: dict | None) -> dict:
    while schema and "$ref" in schema:
        node = spec
        for key in schema["$ref"].removeprefix("#/").split("/"):
            node = node[key]
        schema = node
    return schema or {}


def object_fields(spec: dict, schema: dict | None) -> tuple[set[str], set[str]]:
    """(properties, required) of an object schema, through $ref and allOf."""
    schema = resolve(spec, schema)
    properties, required = set(schema.get("properties", {})), set(schema.get("required", []))
    for part in schema.get("allOf", []):
        more, more_required = object_fields(spec, part)
        properties |= more
        required |= more_required
    return properties, required


def json_schema(spec: dict, holder: dict | None) -> dict | None:
    content = (holder or {}).get("content", {})
    media = content.get("application/json")
    return media.get("schema") if media else None


def item_schema(spec: dict, schema: dict | None) -> dict | None:
    """The items of an array schema, else the schema itself."""
    resolved = resolve(spec, schema)
    return resolved.get("items", schema) if resolved.get("type") == "array" else schema


def differences(ours: dict, theirs: dict) -> set[str]:
    """Where the two documents differ for operations both have: path and
    method, parameters (names, places, required), the required fields of
    JSON request bodies and the fields of success answers."""
    found = set()
    our_operations, their_operations = operations(ours), operations(theirs)
    for operation_id in sorted(set(our_operations) & set(their_operations)):
        our_method, our_path, our_operation = our_operations[operation_id]
        their_method, their_path, their_operation = their_operations[operation_id]
        if (our_method, our_path) != (their_method, their_path):
            found.add(f"{operation_id}: {our_method} {our_path} here, {their_method} {their_path} in Roe")

        def parameters(spec, operation):
            return {(p["name"], p["in"]): bool(p.get("required")) for p in
                    (resolve(spec, raw) for raw in operation.get("parameters", []))}

        our_parameters, their_parameters = parameters(ours, our_operation), parameters(theirs, their_operation)
        for name, place in sorted(set(our_parameters) | set(their_parameters)):
            if (name, place) not in their_parameters:
                found.add(f"{operation_id}: parameter {name} ({place}) is agentd's only")
            elif (name, place) not in our_parameters:
                found.add(f"{operation_id}: parameter {name} ({place}) is Roe's only")
            elif our_parameters[(name, place)] != their_parameters[(name, place)]:
                side = "Roe" if their_parameters[(name, place)] else "agentd"
                found.add(f"{operation_id}: parameter {name} is required in {side} only")

        our_body = json_schema(ours, our_operation.get("requestBody"))
        their_body = json_schema(theirs, their_operation.get("requestBody"))
        if their_body is not None:
            if our_body is None:
                found.add(f"{operation_id}: no JSON request body here")
            else:
                _, our_required = object_fields(ours, our_body)
                _, their_required = object_fields(theirs, their_body)
                for field in sorted(our_required ^ their_required):
                    side = "Roe" if field in their_required else "agentd"
                    found.add(f"{operation_id}: body field {field} is required in {side} only")

        for status, response in their_operation["responses"].items():
            if not status.startswith("2"):
                continue
            if status not in our_operation["responses"]:
                found.add(f"{operation_id}: no {status} answer here")
                continue
            their_answer = item_schema(theirs, json_schema(theirs, response))
            our_answer = item_schema(ours, json_schema(ours, our_operation["responses"][status]))
            their_fields, _ = object_fields(theirs, their_answer)
            our_fields, _ = object_fields(ours, our_answer)
            # Extra fields of ours are additions; Roe's that are missing matter.
            for field in sorted(their_fields - our_fields):
                found.add(f"{operation_id}: {status} field {field} is Roe's only")
    return found


def test_the_document_is_valid_openapi_3_1(document):
    assert document["openapi"].startswith("3.1")
    try:
        validate(document)
    except OpenAPIValidationError as error:  # pragma: no cover - the message is the point
        pytest.fail(f"/openapi.json is not valid OpenAPI 3.1: {error}")


def test_every_operation_needs_the_api_key_and_documents_its_errors(document):
    assert document["components"]["securitySchemes"]["apiKeyAuth"] == {
        **document["components"]["securitySchemes"]["apiKeyAuth"], "type": "http", "scheme": "bearer"}
    error_ref = "#/components/schemas/ErrorDetailResponse"
    for operation_id, (method, path, operation) in operations(document).items():
        assert operation["security"] == [{"apiKeyAuth": []}], operation_id
        statuses = operation["responses"]
        assert any(s.startswith("2") for s in statuses), operation_id
        for status, response in statuses.items():
            if status[0] in "45":
                assert json_schema(document, response) == {"$ref": error_ref}, f"{operation_id} {status}"


def test_documented_errors_are_what_the_server_answers(document, http, anon_http):
    """The error schema describes real error bodies."""
    from jsonschema import Draft202012Validator

    schema = {**resolve(document, {"$ref": "#/components/schemas/ErrorDetailResponse"}),
              "components": document["components"]}
    validator = Draft202012Validator(schema)
    answers = [
        anon_http.get("/v1/agents/"),
        http.get("/v1/agents/not-a-uuid/"),
        http.post("/v1/agents/", json={"name": ""}),
        http.get("/v1/agents/", params={"no_such_filter": "1"}),
    ]
    for resp in answers:
        assert resp.status_code in (400, 401, 404), resp.text
        errors = list(validator.iter_errors(resp.json()))
        assert not errors, f"{resp.status_code} {resp.text}: {errors[0].message}"


def test_run_bodies_are_documented_as_json_and_multipart(document):
    for operation_id in ("agents_run", "agents_run_async_create", "agents_run_version",
                         "agents_run_versions_async_create"):
        _, _, operation = operations(document)[operation_id]
        content = operation["requestBody"]["content"]
        assert set(content) == {"application/json", "multipart/form-data"}, operation_id


def test_agentd_follows_roes_names_and_shapes(document, roe):
    ours, theirs = operations(document), operations(roe)
    missing = set(theirs) - set(ours)
    assert missing == NOT_IN_AGENTD, (
        f"Roe operations missing here: {sorted(missing - NOT_IN_AGENTD)}; "
        f"now implemented (remove from NOT_IN_AGENTD): {sorted(NOT_IN_AGENTD - missing)}")
    found = differences(document, roe)
    unexpected = found - EXPECTED_DIFFERENCES
    gone = EXPECTED_DIFFERENCES - found
    assert not unexpected, "unexpected differences from Roe's spec:\n" + "\n".join(sorted(unexpected))
    assert not gone, "differences that no longer occur (remove them from EXPECTED_DIFFERENCES):\n" + "\n".join(
        sorted(gone))
    # Roe's schema names are kept for the shapes both have.
    for name in ("BaseAgent", "AgentVersion", "AgentDatum", "AgentJobResultResponse", "ListAgentJob",
                 "PaginatedBaseAgentList", "PaginatedListAgentJobList", "UserInfo", "User",
                 "SupportedLLMModelList", "AgentEngineTypeList", "ErrorDetailResponse"):
        assert name in document["components"]["schemas"], name


def test_the_comparison_sees_a_renamed_operation(document, roe):
    """The comparison is not blind: a changed operationId and a dropped
    required parameter are reported."""
    import copy

    changed = copy.deepcopy(document)
    operation = changed["paths"]["/v1/agents/{agent_id}/"]["get"]
    operation["parameters"] = [p for p in operation["parameters"] if p["name"] != "agent_id"]
    found = differences(changed, roe)
    assert "agents_retrieve: parameter agent_id (path) is Roe's only" in found
    changed["paths"]["/v1/agents/{agent_id}/"]["get"]["operationId"] = "agents_get"
    assert "agents_retrieve" not in operations(changed)


def test_docs_page_uses_only_local_assets(server):
    import httpx

    with httpx.Client(base_url=server.base_url, timeout=30) as anon:
        page = anon.get("/docs")
        assert page.status_code == 200, page.text
        assert page.headers["content-type"].startswith("text/html")
        policy = page.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "script-src 'self'" in policy
        references = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert "/docs/docs.js" in references and "/docs/docs.css" in references
        for reference in references:
            assert reference.startswith("/") and not reference.startswith("//"), reference
            asset = anon.get(reference)
            assert asset.status_code == 200, reference
            if reference.endswith(".js"):
                assert asset.headers["content-type"].startswith("text/javascript")
                script = asset.text
                # The only thing the script loads is this server's document.
                assert "fetch(\"/openapi.json\"" in script
                assert "://" not in script and "import(" not in script
            if reference.endswith(".css"):
                assert "@import" not in asset.text and "url(" not in asset.text
        missing = anon.get("/docs/nothing.js")
        assert missing.status_code == 404
        assert missing.json()["detail"]
