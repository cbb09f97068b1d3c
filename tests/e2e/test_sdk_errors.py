"""Errors as the official roe-ai SDK raises them: each status maps to its exception class.

Provider failures are tested through run_sync: the SDK does not retry multipart runs,
so a 502 reaches the test at once (JSON requests would be retried on 5xx with sleeps).
"""

from __future__ import annotations

import uuid

import pytest
import roe
from roe import (
    AuthenticationError,
    BadRequestError,
    ForbiddenError,
    InsufficientCreditsError,
    NotFoundError,
    ServerError,
)

from fake_openai import Reply
from helpers import (
    ENGINE,
    TEXT_INPUT,
    cost_of,
    extraction_config,
    parse_credits,
    pdf_bytes,
    png_bytes,
    unique,
)


def make_agent(client: roe.RoeClient, **kw):
    return client.agents.create(
        name=unique("err-agent-"),
        engine_class_id=ENGINE,
        input_definitions=kw.pop("input_definitions", [TEXT_INPUT]),
        engine_config=kw.pop("engine_config", extraction_config()),
    )


def assert_detail(exc: roe.RoeAPIException, status: int):
    assert exc.status_code == status
    assert isinstance(exc.response, dict), exc.response
    assert exc.response.get("detail") == exc.response.get("message") == exc.message
    assert exc.message and not exc.message.startswith("HTTP ")


# ---------------------------------------------------------------------------
# 400
# ---------------------------------------------------------------------------


def test_create_unknown_model(client):
    with pytest.raises(BadRequestError) as exc:
        client.agents.create(
            name=unique("bad-model-"), engine_class_id=ENGINE, input_definitions=[TEXT_INPUT],
            engine_config={**extraction_config(), "model": "gpt-does-not-exist"},
        )
    assert_detail(exc.value, 400)
    assert "model" in exc.value.message.lower() or "model" in str(exc.value.response)


def test_create_invalid_output_schema(client):
    with pytest.raises(BadRequestError) as exc:
        client.agents.create(
            name=unique("bad-schema-"), engine_class_id=ENGINE, input_definitions=[TEXT_INPUT],
            engine_config=extraction_config(schema={"type": "object", "properties": {"a": {"type": 17}}}),
        )
    assert_detail(exc.value, 400)
    assert "output_schema" in exc.value.message + str(exc.value.response)


def test_create_output_schema_string_not_json(client):
    with pytest.raises(BadRequestError) as exc:
        client.agents.create(
            name=unique("bad-schema-"), engine_class_id=ENGINE, input_definitions=[TEXT_INPUT],
            engine_config=extraction_config(schema="{not json"),
        )
    assert "output_schema" in exc.value.message + str(exc.value.response)


def test_create_missing_instruction(client):
    cfg = extraction_config()
    del cfg["instruction"]
    with pytest.raises(BadRequestError) as exc:
        client.agents.create(name=unique("no-instr-"), engine_class_id=ENGINE,
                             input_definitions=[TEXT_INPUT], engine_config=cfg)
    assert_detail(exc.value, 400)
    assert "instruction" in exc.value.message + str(exc.value.response)


def test_create_unknown_engine(client):
    with pytest.raises(BadRequestError) as exc:
        client.agents.create(name=unique("no-engine-"), engine_class_id="NoSuchEngine",
                             input_definitions=[TEXT_INPUT], engine_config=extraction_config())
    assert "engine_class_id" in exc.value.message + str(exc.value.response)


def test_run_missing_input(client, fake):
    agent = make_agent(client, input_definitions=[TEXT_INPUT, {"key": "lang", "data_type": "text/plain",
                                                                "description": "Language"}])
    with pytest.raises(BadRequestError) as exc:
        client.agents.run_sync(str(agent.id), text="only text " + unique())
    assert_detail(exc.value, 400)
    assert "lang" in exc.value.response
    assert fake.completions == []


def test_run_unknown_input(client, fake):
    agent = make_agent(client)
    with pytest.raises(BadRequestError) as exc:
        client.agents.run_sync(str(agent.id), text="t " + unique(), txet="typo")
    assert "txet" in exc.value.response
    assert fake.completions == []


def test_run_pdf_input_given_png(client, fake, tmp_path):
    defs = [TEXT_INPUT, {"key": "doc", "data_type": "application/pdf", "description": "A PDF"}]
    agent = make_agent(client, input_definitions=defs)
    fake_pdf = tmp_path / "doc.pdf"  # a PNG named .pdf: the SDK sends it as application/pdf
    fake_pdf.write_bytes(png_bytes())
    with pytest.raises(BadRequestError) as exc:
        client.agents.run_sync(str(agent.id), text="t " + unique(), doc=str(fake_pdf))
    assert_detail(exc.value, 400)
    assert "doc" in exc.value.response
    assert fake.completions == []
    # The same agent accepts a real PDF, given as a path or as a FileUpload.
    real_pdf = tmp_path / "real.pdf"
    real_pdf.write_bytes(pdf_bytes())
    client.agents.run_sync(str(agent.id), text="t " + unique(), doc=str(real_pdf))
    client.agents.run_sync(str(agent.id), text="t " + unique(),
                           doc=roe.FileUpload(path=str(real_pdf), mime_type="application/pdf"))
    assert len(fake.completions) == 2


# ---------------------------------------------------------------------------
# 401
# ---------------------------------------------------------------------------


def test_unknown_key(server, org_id):
    with roe.RoeClient(api_key="not-a-real-key", organization_id=org_id, base_url=server.base_url,
                       timeout=30) as c:
        with pytest.raises(AuthenticationError) as exc:
            c.agents.list()
    assert_detail(exc.value, 401)


def test_revoked_key(server, fresh_org, admin):
    key = fresh_org.key()
    with fresh_org.roe(key) as c:
        assert c.agents.list().count == 0
        admin("key", "revoke", "--key", key)
        with pytest.raises(AuthenticationError):
            c.agents.list()
    # Other keys of the organization still work.
    assert fresh_org.client.agents.list().count == 0


# ---------------------------------------------------------------------------
# 402
# ---------------------------------------------------------------------------


def test_credits_exhausted(fresh_org, admin, fake):
    agent = make_agent(fresh_org.client)
    admin("credits", "set", "--org", fresh_org.id, "0")
    with pytest.raises(InsufficientCreditsError) as exc:
        fresh_org.client.agents.run_sync(str(agent.id), text="no money " + unique())
    assert_detail(exc.value, 402)
    assert fake.completions == []
    # Reads still work.
    assert fresh_org.client.agents.retrieve(str(agent.id)).id == agent.id
    admin("credits", "set", "--org", fresh_org.id, "unlimited")
    assert fresh_org.client.agents.run_sync(str(agent.id), text="money " + unique())


def test_run_cost_is_deducted(fresh_org, admin, fake):
    agent = make_agent(fresh_org.client)
    admin("credits", "set", "--org", fresh_org.id, "1")
    fake.enqueue(Reply.answer({"title": "a", "sentiment": "neutral", "score": 1, "tags": []},
                              prompt_tokens=10_000, completion_tokens=2_000))
    out = fresh_org.client.agents.run_sync(str(agent.id), text="spend " + unique())
    cost = cost_of(10_000, 2_000)  # 0.036
    assert out[0].cost == pytest.approx(cost)
    shown = admin("credits", "show", "--org", fresh_org.id)
    values = parse_credits(shown)
    assert values.get("balance") == pytest.approx(1 - cost, abs=1e-6), shown
    assert values.get("spent") == pytest.approx(cost, abs=1e-6), shown


def test_negative_balance_blocks_runs(fresh_org, admin, fake):
    """A run that costs more than the balance left finishes; the next run is refused (balance <= 0)."""
    agent = make_agent(fresh_org.client)
    admin("credits", "set", "--org", fresh_org.id, "0.001")
    fake.enqueue(Reply.answer({"title": "a", "sentiment": "neutral", "score": 1, "tags": []},
                              prompt_tokens=10_000, completion_tokens=2_000))
    fresh_org.client.agents.run_sync(str(agent.id), text="overspend " + unique())
    with pytest.raises(InsufficientCreditsError):
        fresh_org.client.agents.run_sync(str(agent.id), text="again " + unique())


# ---------------------------------------------------------------------------
# 403
# ---------------------------------------------------------------------------


def test_foreign_organization_id(server, api_key):
    with roe.RoeClient(api_key=api_key, organization_id=str(uuid.uuid4()), base_url=server.base_url,
                       timeout=30) as c:
        with pytest.raises(ForbiddenError) as exc:
            c.agents.list()
    assert_detail(exc.value, 403)


def test_read_scope_cannot_run_or_create(fresh_org, fake):
    agent = make_agent(fresh_org.client)
    with fresh_org.roe(fresh_org.key("read")) as reader:
        assert reader.agents.retrieve(str(agent.id)).id == agent.id
        assert reader.agents.list().count == 1
        with pytest.raises(ForbiddenError) as exc:
            reader.agents.run_sync(str(agent.id), text="t " + unique())
        assert_detail(exc.value, 403)
        with pytest.raises(ForbiddenError):
            make_agent(reader)
        with pytest.raises(ForbiddenError):
            reader.agents.delete(str(agent.id))
    assert fake.completions == []
    assert fresh_org.client.agents.list().count == 1


def test_run_scope_can_run_but_not_create(fresh_org, fake):
    agent = make_agent(fresh_org.client)
    with fresh_org.roe(fresh_org.key("run")) as runner:
        out = runner.agents.run_sync(str(agent.id), text="runner " + unique())
        assert out[0].key == "output"
        with pytest.raises(ForbiddenError):
            make_agent(runner)


def test_agent_scoped_key(fresh_org, fake):
    allowed = make_agent(fresh_org.client)
    other = make_agent(fresh_org.client)
    with fresh_org.roe(fresh_org.key(f"agent:{allowed.id}")) as scoped:
        assert scoped.agents.retrieve(str(allowed.id)).id == allowed.id
        assert scoped.agents.run_sync(str(allowed.id), text="ok " + unique())[0].key == "output"
        with pytest.raises(ForbiddenError):
            scoped.agents.retrieve(str(other.id))
        with pytest.raises(ForbiddenError):
            scoped.agents.run_sync(str(other.id), text="no " + unique())
    assert len(fake.completions) == 1


# ---------------------------------------------------------------------------
# 404
# ---------------------------------------------------------------------------


def test_unknown_agent(client):
    with pytest.raises(NotFoundError) as exc:
        client.agents.retrieve(str(uuid.uuid4()))
    assert_detail(exc.value, 404)
    with pytest.raises(NotFoundError):
        client.agents.run_sync(str(uuid.uuid4()), text="x")


def test_other_organizations_agent_is_not_found(client, fresh_org, fake):
    theirs = make_agent(fresh_org.client)
    with pytest.raises(NotFoundError):
        client.agents.retrieve(str(theirs.id))
    with pytest.raises(NotFoundError):
        client.agents.run_sync(str(theirs.id), text="steal " + unique())
    with pytest.raises(NotFoundError):
        client.agents.versions.list(str(theirs.id))
    with pytest.raises(NotFoundError):
        client.agents.delete(str(theirs.id))
    assert fresh_org.client.agents.retrieve(str(theirs.id)).id == theirs.id
    assert fake.completions == []


# ---------------------------------------------------------------------------
# 502: the model provider failed
# ---------------------------------------------------------------------------

PROVIDER_WORDS = ("provider", "openai", "model", "upstream")


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(Reply.error(500), id="500"),
        pytest.param(Reply.error(503, "The engine is currently overloaded.", "server_error"), id="503"),
        pytest.param(Reply.rate_limited(retry_after="0"), id="429"),
        pytest.param(Reply.invalid_api_key(), id="401-bad-key"),
        pytest.param(Reply.malformed(), id="malformed-body"),
        pytest.param(Reply.content("I cannot answer that."), id="not-json-twice"),
    ],
)
def test_provider_failure_is_server_error(client, fake, reply):
    agent = make_agent(client)
    fake.always(reply)
    with pytest.raises(ServerError) as exc:
        client.agents.run_sync(str(agent.id), text="fail " + unique())
    assert exc.value.status_code == 502
    assert_detail(exc.value, 502)
    assert any(w in exc.value.message.lower() for w in PROVIDER_WORDS), exc.value.message
    assert len(fake.completions) >= 1


def test_invalid_answer_twice_fails(client, fake):
    agent = make_agent(client)
    bad = {"title": 1, "sentiment": "furious", "score": "high", "tags": "none"}
    fake.enqueue(Reply.answer(bad), Reply.answer(bad))
    fake.always(Reply.error(500, "the test expected no third call"))
    with pytest.raises(ServerError) as exc:
        client.agents.run_sync(str(agent.id), text="bad twice " + unique())
    assert exc.value.status_code == 502
    assert len(fake.completions) == 2
    assert "schema" in exc.value.message.lower() or "valid" in exc.value.message.lower(), exc.value.message


def test_provider_max_retries_zero_makes_one_call(client, fake):
    """With AGENTD_PROVIDER_MAX_RETRIES=0 (the session server) a 500 is not retried."""
    agent = make_agent(client)
    fake.always(Reply.error(500))
    with pytest.raises(ServerError):
        client.agents.run_sync(str(agent.id), text="once " + unique())
    assert len(fake.completions) == 1


def test_failed_run_costs_nothing(fresh_org, admin, fake):
    agent = make_agent(fresh_org.client)
    admin("credits", "set", "--org", fresh_org.id, "5")
    fake.always(Reply.error(500))
    with pytest.raises(ServerError):
        fresh_org.client.agents.run_sync(str(agent.id), text="fail " + unique())
    shown = admin("credits", "show", "--org", fresh_org.id)
    values = parse_credits(shown)
    assert values.get("balance") == pytest.approx(5.0), shown
    assert values.get("spent") == pytest.approx(0.0), shown
