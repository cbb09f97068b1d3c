"""Agents, versions, current user and discovery through the official roe-ai SDK."""

from __future__ import annotations

import json
import uuid

import pytest
import roe
from roe import BadRequestError, NotFoundError

from helpers import ENGINE, MODEL, SUMMARY_SCHEMA, TEXT_INPUT, extraction_config, unique


def schema_of(engine_config: dict):
    """output_schema may be stored as an object or as its JSON text."""
    schema = engine_config["output_schema"]
    return json.loads(schema) if isinstance(schema, str) else schema


def create(client: roe.RoeClient, name: str | None = None, instruction: str = "Summarize the text.", **kw):
    return client.agents.create(
        name=name or unique("sdk-agent-"),
        engine_class_id=ENGINE,
        input_definitions=kw.pop("input_definitions", [TEXT_INPUT]),
        engine_config=kw.pop("engine_config", extraction_config(instruction)),
        **kw,
    )


def test_create_returns_base_agent(client, org_id):
    name = unique("create-")
    agent = create(client, name, version_name="first", description="first version")
    assert agent is not None, "agents.create got no 201 BaseAgent (SDK parses only a 201 body)"
    assert isinstance(agent, roe._generated.models.base_agent.BaseAgent)
    assert agent.name == name
    assert agent.engine_class_id == ENGINE
    assert str(agent.organization_id) == org_id
    assert agent.disable_cache is False
    assert agent.cache_failed_jobs is False
    assert isinstance(agent.engine_name, str) and agent.engine_name
    assert agent.tags == []
    assert agent.job_count in (0, None)
    assert agent.most_recent_job is None
    assert agent.updated_at >= agent.created_at

    version = client.agents.versions.retrieve_current(str(agent.id))
    assert version.id == agent.current_version_id
    assert version.version_name == "first"
    assert version.description == "first version"
    assert version.engine_class_id == ENGINE
    assert version.engine_config["model"] == MODEL
    assert version.engine_config["instruction"] == "Summarize the text."
    assert version.engine_config["text"] == "${text}"
    assert [d.key for d in version.input_definitions] == ["text"]
    assert version.input_definitions[0].data_type == "text/plain"
    assert version.base_agent.id == agent.id
    assert str(version.organization_id) == org_id
    assert version.readonly is False


def test_create_default_version_name(client):
    agent = create(client)
    version = client.agents.versions.retrieve_current(str(agent.id))
    assert version.version_name == "unnamed version"


def test_retrieve(client):
    agent = create(client)
    got = client.agents.retrieve(str(agent.id))
    assert got.id == agent.id
    assert got.name == agent.name
    assert got.current_version_id == agent.current_version_id
    assert got.created_at == agent.created_at


def test_list_paginates(fresh_org):
    c = fresh_org.client
    ids = [create(c, f"page-{i}").id for i in range(3)]
    first = c.agents.list(page=1, page_size=2)
    assert first.count == 3
    assert len(first.results) == 2
    assert isinstance(first.next_, str) and "page=2" in first.next_
    assert first.previous is None
    second = c.agents.list(page=2, page_size=2)
    assert second.count == 3
    assert len(second.results) == 1
    assert second.next_ is None
    assert isinstance(second.previous, str)
    seen = {a.id for a in first.results} | {a.id for a in second.results}
    assert seen == set(ids)


def test_list_only_shows_own_organization(client, fresh_org):
    mine = create(fresh_org.client)
    listed = fresh_org.client.agents.list(page_size=100)
    assert [a.id for a in listed.results] == [mine.id]
    other = client.agents.list(page_size=100)
    assert mine.id not in {a.id for a in other.results}


def test_update_patch(client):
    agent = create(client)
    new_name = unique("renamed-")
    updated = client.agents.update(str(agent.id), name=new_name, disable_cache=True)
    assert updated is not None, "PATCH /v1/agents/{id}/ must answer 200 with the BaseAgent"
    assert updated.name == new_name
    assert updated.disable_cache is True
    assert updated.cache_failed_jobs is False  # untouched by a PATCH that does not name it
    got = client.agents.retrieve(str(agent.id))
    assert got.name == new_name
    assert got.disable_cache is True
    assert got.current_version_id == agent.current_version_id


def test_replace_put(client):
    agent = create(client)
    new_name = unique("replaced-")
    replaced = client.agents.replace(str(agent.id), name=new_name, disable_cache=False, cache_failed_jobs=True)
    assert replaced is not None, "PUT /v1/agents/{id}/ must answer 200 with the BaseAgent"
    assert replaced.name == new_name
    assert replaced.cache_failed_jobs is True
    assert client.agents.retrieve(str(agent.id)).cache_failed_jobs is True


def test_update_rejects_empty_name(client):
    agent = create(client)
    with pytest.raises(BadRequestError) as exc:
        client.agents.update(str(agent.id), name="")
    assert exc.value.status_code == 400
    assert client.agents.retrieve(str(agent.id)).name == agent.name


def test_delete(client):
    agent = create(client)
    client.agents.delete(str(agent.id))
    with pytest.raises(NotFoundError):
        client.agents.retrieve(str(agent.id))
    with pytest.raises(NotFoundError):
        client.agents.delete(str(agent.id))


def test_duplicate(client):
    agent = create(client, instruction="Duplicate me.")
    dup = client.agents.duplicate(str(agent.id))
    assert isinstance(dup, roe._generated.models.agent_version.AgentVersion)
    assert dup.base_agent.id != agent.id
    assert dup.base_agent.current_version_id == dup.id
    assert dup.engine_class_id == ENGINE
    assert dup.engine_config["instruction"] == "Duplicate me."
    assert schema_of(dup.engine_config) == SUMMARY_SCHEMA
    assert [d.key for d in dup.input_definitions] == ["text"]
    new = client.agents.retrieve(str(dup.base_agent.id))
    assert new.name != "" and new.engine_class_id == ENGINE
    # The original is untouched and both exist.
    orig = client.agents.retrieve(str(agent.id))
    assert orig.current_version_id == agent.current_version_id
    assert client.agents.versions.retrieve_current(str(dup.base_agent.id)).id == dup.id


def test_duplicate_unknown_agent(client):
    with pytest.raises(NotFoundError):
        client.agents.duplicate(str(uuid.uuid4()))


# ---------------------------------------------------------------------------
# Versions
# ---------------------------------------------------------------------------


def test_versions_create_list_retrieve_current(client):
    agent = create(client, instruction="v1 instruction", version_name="v1")
    aid = str(agent.id)
    assert [v.id for v in client.agents.versions.list(aid)] == [agent.current_version_id]

    v2 = client.agents.versions.create(
        aid,
        input_definitions=[TEXT_INPUT],
        engine_config=extraction_config("v2 instruction"),
        version_name="v2",
        description="second",
    )
    assert v2.version_name == "v2"
    assert v2.description == "second"
    assert v2.engine_config["instruction"] == "v2 instruction"
    assert v2.base_agent.id == agent.id

    # The new version becomes current.
    assert client.agents.versions.retrieve_current(aid).id == v2.id
    assert client.agents.retrieve(aid).current_version_id == v2.id

    versions = client.agents.versions.list(aid)
    assert {v.id for v in versions} == {agent.current_version_id, v2.id}
    v1 = client.agents.versions.retrieve(aid, str(agent.current_version_id))
    assert v1.version_name == "v1"
    assert v1.engine_config["instruction"] == "v1 instruction"


def test_versions_create_validates_config(client):
    agent = create(client)
    with pytest.raises(BadRequestError) as exc:
        client.agents.versions.create(
            str(agent.id),
            input_definitions=[TEXT_INPUT],
            engine_config=extraction_config(schema={"type": "object", "properties": {"a": {"type": "no-such-type"}}}),
        )
    assert "output_schema" in str(exc.value.message) + str(exc.value.response)
    assert len(client.agents.versions.list(str(agent.id))) == 1


def test_versions_update_patch(client):
    agent = create(client, version_name="before")
    aid, vid = str(agent.id), str(agent.current_version_id)
    assert client.agents.versions.update(aid, vid, version_name="after", description="patched") is None
    got = client.agents.versions.retrieve(aid, vid)
    assert got.version_name == "after"
    assert got.description == "patched"
    # PATCH of one field keeps the other.
    client.agents.versions.update(aid, vid, description="only description")
    got = client.agents.versions.retrieve(aid, vid)
    assert got.version_name == "after"
    assert got.description == "only description"


def test_versions_replace_put(client):
    agent = create(client, version_name="before")
    aid, vid = str(agent.id), str(agent.current_version_id)
    msg = client.agents.versions.replace(aid, vid, version_name="replaced", description="put")
    assert msg is not None and isinstance(msg.message, str) and msg.message
    got = client.agents.versions.retrieve(aid, vid)
    assert got.version_name == "replaced"
    assert got.description == "put"


def test_versions_delete(client):
    agent = create(client, version_name="old")
    aid, old = str(agent.id), str(agent.current_version_id)
    new = client.agents.versions.create(aid, input_definitions=[TEXT_INPUT], engine_config=extraction_config())
    # Deleting the current version is refused.
    with pytest.raises(BadRequestError):
        client.agents.versions.delete(aid, str(new.id))
    client.agents.versions.delete(aid, old)
    with pytest.raises(NotFoundError):
        client.agents.versions.retrieve(aid, old)
    assert [v.id for v in client.agents.versions.list(aid)] == [new.id]


def test_version_of_another_agent_is_not_found(client):
    a = create(client)
    b = create(client)
    with pytest.raises(NotFoundError):
        client.agents.versions.retrieve(str(a.id), str(b.current_version_id))


# ---------------------------------------------------------------------------
# Current user and discovery
# ---------------------------------------------------------------------------


def test_users_me(client):
    me = client.users.me()
    assert isinstance(me.id, int)
    assert isinstance(me.email, str)
    assert isinstance(me.display_name, str) and me.display_name


def test_discovery_engine_types(client):
    types = client.discovery.list_agent_engine_types()
    assert ENGINE in types.engine_types
    assert types.total_count == len(types.engine_types) == len(types.engines)
    entries = [e.to_dict() for e in types.engines]
    engine = next((d for d in entries if ENGINE in (d.get("engine_class_id"), d.get("id"))), None)
    assert engine is not None, entries
    assert isinstance(engine.get("description"), str) and engine["description"]
    configs = [v for k, v in engine.items() if "engine_config" in k and isinstance(v, dict)]
    assert configs, f"no default engine_config in {engine}"
    assert any("input" in k for k in engine), f"no input schema in {engine}"


def test_discovery_models(client):
    models = client.discovery.list_supported_models()
    assert models.total_count == len(models.models)
    by_id = {m.id: m for m in models.models}
    assert MODEL in by_id
    m = by_id[MODEL]
    assert m.supports_json_schema is True
    assert m.supports_json_output is True
    assert m.context_window > 0
    assert m.max_output_tokens > 0
    assert "openai" in [p.lower() for p in m.providers]
    assert isinstance(models.tenant_scope, str)
