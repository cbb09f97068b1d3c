"""The MCP server at /mcp, driven by the official MCP Python SDK (``mcp``):
each agent a key may run is a tool; calling it runs the agent."""

from __future__ import annotations

import asyncio
import json
import re
import socket
from typing import Any, Awaitable, Callable
from urllib.parse import urlparse

import pytest
from mcp import ClientSession, types
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

from fake_openai import Reply
from helpers import (
    CANCELLED,
    TEXT_INPUT,
    agent_body,
    assert_error,
    data_url,
    decode_data_url,
    expect,
    extraction_config,
    image_parts,
    list_jobs,
    png_bytes,
    unique,
    wait_for_job,
)

ANSWER = {"title": "T", "sentiment": "neutral", "score": 4, "tags": ["a", "b"]}
PHOTO_INPUT = {"key": "photo", "data_type": "image/png", "description": "A photo"}
TOOL_NAME = re.compile(r"^[a-z0-9_]{1,64}$")


def mcp_session(server, api_key: str, use: Callable[[ClientSession], Awaitable[Any]]) -> Any:
    """Opens an MCP session on the server with ``api_key`` and returns ``use(session)``."""

    async def main() -> Any:
        headers = {"Authorization": f"Bearer {api_key}"}
        async with create_mcp_http_client(headers=headers) as http_client:
            async with streamable_http_client(f"{server.base_url}/mcp", http_client=http_client) as (read, write):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    return await use(session)

    try:
        return asyncio.run(main())
    except BaseExceptionGroup as group:
        raise only_cause(group) from group


def only_cause(error: BaseException) -> BaseException:
    """The one error inside the SDK's (nested) task-group exception groups."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


def all_tools(server, api_key: str) -> list[Any]:
    async def use(session: ClientSession) -> list[Any]:
        tools, cursor = [], None
        while True:
            params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
            page = await session.list_tools(params=params)
            tools += page.tools
            cursor = page.next_cursor
            if not cursor:
                return tools

    return mcp_session(server, api_key, use)


def call_tool(server, api_key: str, name: str, arguments: dict[str, Any]) -> Any:
    return mcp_session(server, api_key, lambda session: session.call_tool(name, arguments))


def tool_for(tools: list[Any], agent: dict) -> Any:
    """The tool of ``agent``: its name ends with the first 8 hex digits of the agent's id."""
    matching = [t for t in tools if t.name.endswith("_" + agent["id"][:8])]
    assert len(matching) == 1, [t.name for t in tools]
    return matching[0]


def create(org, **kw: Any) -> dict:
    return expect(org.http.post("/v1/agents/", json=agent_body(**kw)), 201)


def text_of(result: Any) -> str:
    assert result.content and result.content[0].type == "text", result
    return result.content[0].text


def test_tools_are_the_agents_with_their_input_schema(server, fresh_org):
    photo = create(
        fresh_org,
        name="Photo Summary (v2)",
        input_definitions=[TEXT_INPUT, PHOTO_INPUT, {"key": "tone", "data_type": "text/plain", "default": "dry"}],
        engine_config=extraction_config(images="${photo}"),
        description="Summarizes a photo and its caption.",
    )
    plain = create(fresh_org)
    tools = all_tools(server, fresh_org.api_key)
    assert len(tools) == 2
    tool = tool_for(tools, photo)
    assert tool.name == "photo_summary_v2_" + photo["id"][:8]
    assert all(TOOL_NAME.match(t.name) for t in tools), [t.name for t in tools]
    assert tool.title == "Photo Summary (v2)"
    assert tool.description == "Summarizes a photo and its caption."
    schema = tool.input_schema
    assert schema["type"] == "object"
    assert set(schema["properties"]) == {"text", "photo", "tone"}
    assert sorted(schema["required"]) == ["photo", "text"]
    assert schema["properties"]["text"] == {"type": "string", "description": "Text to be processed"}
    assert schema["properties"]["tone"]["default"] == "dry"
    photo_property = schema["properties"]["photo"]
    assert photo_property["type"] == "string"
    assert "base64" in photo_property["description"] and "URL" in photo_property["description"]
    assert tool_for(tools, plain).description


def test_a_key_limited_to_some_agents_sees_only_those(server, fresh_org):
    visible = create(fresh_org)
    create(fresh_org)
    assert len(all_tools(server, fresh_org.api_key)) == 2
    scoped = fresh_org.key(f"agent:{visible['id']}")
    tools = all_tools(server, scoped)
    assert [t.name for t in tools] == [tool_for(tools, visible).name]
    # A key that may not run agents has no tools.
    assert all_tools(server, fresh_org.key("read")) == []


def test_tools_come_in_pages_of_100(server, fresh_org):
    agents = [create(fresh_org) for _ in range(101)]

    async def first_page(session: ClientSession) -> Any:
        return await session.list_tools()

    page = mcp_session(server, fresh_org.api_key, first_page)
    assert len(page.tools) == 100 and page.next_cursor, page.next_cursor
    names = [t.name for t in all_tools(server, fresh_org.api_key)]
    assert len(names) == len(set(names)) == 101
    assert {name[-8:] for name in names} == {agent["id"][:8] for agent in agents}


def test_calling_a_tool_runs_the_agent_and_returns_its_outputs(server, fresh_org, fake):
    agent = create(fresh_org)
    tool = tool_for(all_tools(server, fresh_org.api_key), agent)
    fake.enqueue(Reply.answer(ANSWER))
    text = "mcp call " + unique()
    result = call_tool(server, fresh_org.api_key, tool.name, {"text": text})
    assert result.is_error is False, result
    outputs = json.loads(text_of(result))
    assert [o["key"] for o in outputs] == ["output"]
    assert json.loads(outputs[0]["value"]) == ANSWER
    assert result.structured_content == {"output": ANSWER}
    assert any(text in t for t in fake.only().message_texts("user"))
    jobs = list_jobs(fresh_org.http, agent["id"])
    assert jobs["count"] == 1, jobs


def test_a_file_input_takes_a_base64_data_url(server, fresh_org, fake):
    agent = create(fresh_org, input_definitions=[TEXT_INPUT, PHOTO_INPUT],
                   engine_config=extraction_config(images="${photo}"))
    tool = tool_for(all_tools(server, fresh_org.api_key), agent)
    png = png_bytes(3, 2)
    fake.enqueue(Reply.answer(ANSWER))
    result = call_tool(server, fresh_org.api_key, tool.name,
                       {"text": "a photo", "photo": data_url(png, "image/png")})
    assert result.is_error is False, result
    assert decode_data_url(image_parts(fake.only())[0]) == ("image/png", png)


def test_a_failed_job_is_an_error_result_with_its_message(server, fresh_org, fake):
    agent = create(fresh_org)
    tool = tool_for(all_tools(server, fresh_org.api_key), agent)
    fake.enqueue(Reply.error(400, "Your prompt was flagged by the moderation system.", "invalid_request_error"))
    result = call_tool(server, fresh_org.api_key, tool.name, {"text": "flag me " + unique()})
    assert result.is_error is True, result
    message = text_of(result)
    assert "failed" in message and "moderation" in message, message


def test_invalid_arguments_are_an_error_result_that_names_the_input(server, fresh_org, fake):
    agent = create(fresh_org)
    tool = tool_for(all_tools(server, fresh_org.api_key), agent)
    result = call_tool(server, fresh_org.api_key, tool.name, {})
    assert result.is_error is True, result
    assert "text" in text_of(result) and "required" in text_of(result), text_of(result)
    assert list_jobs(fresh_org.http, agent["id"])["count"] == 0


def test_an_unknown_or_hidden_tool_is_a_protocol_error(server, fresh_org, new_org):
    other_org_agent = create(new_org())
    hidden = create(fresh_org)
    scoped = fresh_org.key(f"agent:{create(fresh_org)['id']}")
    hidden_name = tool_for(all_tools(server, fresh_org.api_key), hidden).name
    for key, name in [
        (fresh_org.api_key, "no_such_tool"),
        (fresh_org.api_key, "agent_" + other_org_agent["id"][:8]),
        (scoped, hidden_name),
    ]:
        with pytest.raises(MCPError, match="Unknown tool"):
            call_tool(server, key, name, {"text": "x"})


def test_a_missing_or_wrong_key_is_refused_with_json(server, anon_http, fresh_org):
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "test", "version": "1"}},
    }
    headers = {"Accept": "application/json, text/event-stream"}
    resp = anon_http.post("/mcp", json=initialize, headers=headers)
    assert_error(resp, 401, mentions="credentials")
    resp = anon_http.post("/mcp", json=initialize, headers={**headers, "Authorization": "Bearer agd_wrong"})
    assert_error(resp, 401, mentions="Invalid API key")
    # The SDK reports the refused HTTP request as an error response.
    with pytest.raises(MCPError):
        all_tools(server, "agd_" + "0" * 48)
    # The same request with the key is answered.
    resp = fresh_org.http.post("/mcp", json=initialize, headers=headers)
    body = expect(resp, 200)
    assert body["result"]["capabilities"]["tools"] is not None, body


def test_transport_errors_are_json(fresh_org):
    resp = fresh_org.http.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                               headers={"Accept": "text/html"})
    body = assert_error(resp, 406)
    assert "Accept" in body["detail"] or "accept" in body["detail"], body


def test_closing_the_call_cancels_the_job(server, fresh_org, fake):
    """A client that goes away mid-call: its job is cancelled rather than left running."""
    agent = create(fresh_org)
    tool = tool_for(all_tools(server, fresh_org.api_key), agent)
    # The provider holds its answer far longer than the test waits: only
    # cancelling the job ends the provider call.
    fake.always(Reply.answer(ANSWER, delay=600))
    call = json.dumps({
        "jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": tool.name, "arguments": {"text": "slow " + unique()}},
    }).encode()
    address = urlparse(server.base_url)
    with socket.create_connection((address.hostname, address.port)) as conn:
        conn.sendall(
            b"POST /mcp HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"
            b"Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
            b"MCP-Protocol-Version: 2025-06-18\r\nContent-Length: %d\r\n\r\n%s"
            % (address.netloc.encode(), fresh_org.api_key.encode(), len(call), call)
        )
        fake.wait_for_requests(1, timeout=30)
    jobs = list_jobs(fresh_org.http, agent["id"])["results"]
    assert len(jobs) == 1, jobs
    assert wait_for_job(fresh_org.http, jobs[0]["id"], statuses=(CANCELLED,))["status"] == CANCELLED
    # The worker stopped the job: it hung up on the provider.
    assert fake.only().disconnected.wait(30), "the provider call was not aborted"
