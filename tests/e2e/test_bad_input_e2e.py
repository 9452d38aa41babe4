"""Bad input raises a clear error naming the field, and nothing reaches the provider.

One table of kinds of bad request, each with the field its ``InvalidRequest`` must
name; every one is tried through ``stream``, ``acomplete`` and ``complete`` of the
default pipeline over real litellm, and the fake provider must see no request and
no connection. Valid edge cases (a 10 MB message, astral characters, every
content part kind, limits just inside) are sent, exactly once.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from pipeline import Message, Pipeline, ToolSpec, stage
from pipeline.errors import InvalidRequest
from pipeline.events import Event, Request
from pipeline.testing import FakeClock, FakeProvider, Reply
from pipeline.validate import MAX_DEPTH
from tests.e2e.conftest import fields_for

USER = {"role": "user", "content": "hi"}


def nested(depth: int) -> list[Any]:
    out: list[Any] = []
    for _ in range(depth):
        out = [out]
    return out


def user(content: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": content}]}


def part(p: Any, role: str = "user") -> dict[str, Any]:
    return {"messages": [{"role": role, "content": [p]}]}


def call(**entry: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "c1",
        "type": "function",
        "function": {"name": "f", "arguments": "{}"},
    }
    base.update(entry)
    return {"messages": [USER, {"role": "assistant", "tool_calls": [base]}]}


def tool(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"name": "t", "parameters": {"type": "object", "properties": {}}}
    base.update(spec)
    return {"tools": [base]}


def schema(**params: Any) -> dict[str, Any]:
    return tool(parameters={"type": "object", **params})


# (kind, request fields over the valid defaults, the field InvalidRequest names;
#  a trailing "*" means the name starts so: a deep path continues it)
CASES: list[tuple[str, dict[str, Any], str]] = [
    # model
    ("empty model", {"model": ""}, "model"),
    ("model not a string", {"model": 5}, "model"),
    ("model with a space", {"model": "openai/gpt 4"}, "model"),
    ("model with a newline", {"model": "openai/m\nX-Evil: 1"}, "model"),
    # messages and content
    ("messages not a list", {"messages": "hello"}, "messages"),
    ("messages empty", {"messages": []}, "messages"),
    ("message not a dict", {"messages": ["hi"]}, "messages[0]"),
    ("unknown role", {"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
    ("no role", {"messages": [{"content": "x"}]}, "messages[0].role"),
    ("user without content", {"messages": [{"role": "user"}]}, "messages[0].content"),
    ("content a number", user(5), "messages[0].content"),
    ("content a dict", user({"text": "x"}), "messages[0].content"),
    ("content an empty list", user([]), "messages[0].content"),
    ("part not an object", user(["hi"]), "messages[0].content[0]"),
    ("part without type", part({"text": "x"}), "messages[0].content[0].type"),
    ("part type not a string", part({"type": 5, "text": "x"}), "messages[0].content[0].type"),
    ("unknown part type", part({"type": "hologram"}), "messages[0].content[0].type"),
    ("text part without text", part({"type": "text"}), "messages[0].content[0].text"),
    ("text not a string", part({"type": "text", "text": 5}), "messages[0].content[0].text"),
    (
        "image without url",
        part({"type": "image_url", "image_url": {}}),
        "messages[0].content[0].image_url",
    ),
    (
        "image url empty",
        part({"type": "image_url", "image_url": ""}),
        "messages[0].content[0].image_url",
    ),
    (
        "image in a system message",
        part({"type": "image_url", "image_url": "https://x/y.png"}, role="system"),
        "messages[0].content[0].type",
    ),
    (
        "audio without format",
        part({"type": "input_audio", "input_audio": {"data": "AAAA"}}),
        "messages[0].content[0].input_audio",
    ),
    (
        "file without data or id",
        part({"type": "file", "file": {"filename": "a.pdf"}}),
        "messages[0].content[0].file",
    ),
    ("document without source", part({"type": "document"}), "messages[0].content[0].source"),
    (
        "tool result without id",
        {"messages": [{"role": "tool", "content": "42"}]},
        "messages[0].tool_call_id",
    ),
    (
        "tool result with empty id",
        {"messages": [{"role": "tool", "content": "42", "tool_call_id": ""}]},
        "messages[0].tool_call_id",
    ),
    (
        "tool_call_id not a string",
        {"messages": [{"role": "tool", "content": "42", "tool_call_id": 7}]},
        "messages[0].tool_call_id",
    ),
    (
        "name with spaces",
        {"messages": [{"role": "user", "content": "x", "name": "Ada Lovelace"}]},
        "messages[0].name",
    ),
    ("lone surrogate in content", user("a\ud800b"), "messages[0].content"),
    (
        "lone surrogate in a text part",
        part({"type": "text", "text": "\udfff"}),
        "messages[0].content[0].text",
    ),
    (
        "a set in a message",
        {"messages": [{"role": "user", "content": "x", "metadata": {1, 2}}]},
        "messages[0].metadata",
    ),
    (
        "message nested 5,000 deep",
        {"messages": [{"role": "user", "content": "x", "metadata": nested(5000)}]},
        "messages[0].metadata*",
    ),
    (
        "non-string key in a message",
        {"messages": [{"role": "user", "content": "x", 1: "y"}]},
        "messages[0]",
    ),
    (
        "NaN in a message",
        {"messages": [{"role": "user", "content": "x", "weight": float("nan")}]},
        "messages[0].weight",
    ),
    (
        "typed message with bad content",
        {"messages": [Message(role="user", content=5)]},  # type: ignore[arg-type]
        "messages[0].content",
    ),
    # tool calls in assistant messages
    (
        "tool calls on a user message",
        {"messages": [{"role": "user", "content": "x", "tool_calls": []}]},
        "messages[0].tool_calls",
    ),
    (
        "tool_calls not a list",
        {"messages": [USER, {"role": "assistant", "tool_calls": "f()"}]},
        "messages[1].tool_calls",
    ),
    (
        "tool call not a dict",
        {"messages": [USER, {"role": "assistant", "tool_calls": ["f"]}]},
        "messages[1].tool_calls[0]",
    ),
    ("tool call without id", call(id=None), "messages[1].tool_calls[0].id"),
    ("tool call of another type", call(type="code"), "messages[1].tool_calls[0].type"),
    ("tool call without function", call(function=None), "messages[1].tool_calls[0].function"),
    (
        "tool call name with spaces",
        call(function={"name": "get weather", "arguments": "{}"}),
        "messages[1].tool_calls[0].function.name",
    ),
    (
        "tool call arguments a dict",
        call(function={"name": "f", "arguments": {"a": 1}}),
        "messages[1].tool_calls[0].function.arguments",
    ),
    # tools
    ("tool without a name", {"tools": [{"description": "does things"}]}, "tools[0].name"),
    ("tool name with spaces", tool(name="get weather"), "tools[0].name"),
    ("tool name 200 long", tool(name="t" * 200), "tools[0].name"),
    ("tool name not ASCII", tool(name="météo"), "tools[0].name"),
    ("typed tool with a bad name", {"tools": [ToolSpec(name="a.b")]}, "tools[0].name"),
    ("tools not a list", {"tools": "search"}, "tools"),
    ("tool not a dict", {"tools": [42]}, "tools[0]"),
    ("description not a string", tool(description=["x"]), "tools[0].description"),
    ("parameters of type array", tool(parameters={"type": "array"}), "tools[0].parameters"),
    ("parameters a list", tool(parameters=["a"]), "tools[0].parameters"),
    ("properties not an object", schema(properties=["a"]), "tools[0].parameters.properties"),
    (
        "property not a schema",
        schema(properties={"city": "string"}),
        "tools[0].parameters.properties.city",
    ),
    ("required not names", schema(required="city"), "tools[0].parameters.required"),
    (
        "a set in a schema",
        schema(properties={"a": {"enum": {1, 2}}}),
        "tools[0].parameters.properties.a.enum",
    ),
    (
        "schema nested 3,000 deep",
        schema(properties={"a": {"items": nested(3000)}}),
        "tools[0].parameters.properties.a.items*",
    ),
    ("tool declared twice", {"tools": [{"name": "t"}, {"name": "t"}]}, "tools[1].name"),
    # scalars
    ("max_tokens zero", {"max_tokens": 0}, "max_tokens"),
    ("max_tokens negative", {"max_tokens": -1}, "max_tokens"),
    ("max_tokens a float", {"max_tokens": 10.5}, "max_tokens"),
    ("max_tokens a bool", {"max_tokens": True}, "max_tokens"),
    ("max_tokens a string", {"max_tokens": "100"}, "max_tokens"),
    ("max_tokens absurd", {"max_tokens": 10**12}, "max_tokens"),
    ("json_mode a string", {"json_mode": "yes"}, "json_mode"),
    ("json_mode an int", {"json_mode": 1}, "json_mode"),
    ("system not a string", {"system": ["be brief"]}, "system"),
    ("lone surrogate in system", {"system": "be \udc80 brief"}, "system"),
    ("response_format a string", {"response_format": "json"}, "response_format"),
    ("response_format unknown type", {"response_format": {"type": "yaml"}}, "response_format.type"),
    (
        "json_schema without a name",
        {"response_format": {"type": "json_schema", "json_schema": {"schema": {}}}},
        "response_format.json_schema.name",
    ),
    # headers and URL
    ("api_key with CR/LF", {"api_key": "sk-a\r\nX-Injected: 1"}, "api_key"),
    ("api_key with NUL", {"api_key": "sk-a\x00b"}, "api_key"),
    ("api_key not ASCII", {"api_key": "sk-clé"}, "api_key"),
    ("api_key not a string", {"api_key": 12345}, "api_key"),
    ("api_key empty", {"api_key": ""}, "api_key"),
    ("api_base not http", {"api_base": "ftp://127.0.0.1/v1"}, "api_base"),
    ("api_base without host", {"api_base": "http:///v1"}, "api_base"),
    ("api_base port out of range", {"api_base": "http://127.0.0.1:99999/v1"}, "api_base"),
    ("api_base port not a number", {"api_base": "http://127.0.0.1:http/v1"}, "api_base"),
    ("api_base port zero", {"api_base": "http://127.0.0.1:0/v1"}, "api_base"),
    ("api_base with CR/LF", {"api_base": "http://127.0.0.1/v1\r\nX: 1"}, "api_base"),
    ("api_base relative", {"api_base": "localhost:8000"}, "api_base"),
    # extra
    ("extra not a dict", {"extra": [("temperature", 1)]}, "extra"),
    ("extra sets model", {"extra": {"model": "x"}}, "extra.model"),
    ("extra sets stream", {"extra": {"stream": False}}, "extra.stream"),
    ("extra sets base_url", {"extra": {"base_url": "http://evil"}}, "extra.base_url"),
    ("extra holding a set", {"extra": {"temperature": {1, 2}}}, "extra.temperature"),
    ("temperature NaN", {"extra": {"temperature": float("nan")}}, "extra.temperature"),
    ("temperature infinite", {"extra": {"temperature": float("inf")}}, "extra.temperature"),
    ("temperature a string", {"extra": {"temperature": "hot"}}, "extra.temperature"),
    (
        "parallel_tool_calls a string",
        {"extra": {"parallel_tool_calls": "yes"}},
        "extra.parallel_tool_calls",
    ),
    ("seed a float", {"extra": {"seed": 1.5}}, "extra.seed"),
    ("seed beyond 64 bits", {"extra": {"seed": 2**70}}, "extra.seed"),
    (
        "extra nested 5,000 deep",
        {"extra": {"extra_body": {"a": nested(5000)}}},
        "extra.extra_body.a*",
    ),
    ("metadata not a dict", {"extra": {"metadata": ["a"]}}, "extra.metadata"),
    (
        "extra header with CR/LF",
        {"extra": {"extra_headers": {"X-Test": "a\r\nX-Evil: 1"}}},
        "extra.extra_headers.X-Test",
    ),
    (
        "extra header name with a colon",
        {"extra": {"extra_headers": {"X:Y": "a"}}},
        "extra.extra_headers",
    ),
    ("extra key not a name", {"extra": {"a b": 1}}, "extra"),
    ("extra value an object", {"extra": {"prediction": object()}}, "extra.prediction"),
    ("extra value a callable", {"extra": {"callback": print}}, "extra.callback"),
]


def test_the_table_covers_at_least_sixty_kinds() -> None:
    assert len(CASES) >= 60
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize(("overrides", "field"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_nothing_is_sent(
    pipe: Pipeline, fake: FakeProvider, overrides: dict[str, Any], field: str
) -> None:
    fake.script(Reply.text("should never be served"))
    req = fields_for(fake, **overrides)
    for entry in ("stream", "acomplete", "complete"):
        with pytest.raises(InvalidRequest) as info:
            if entry == "stream":
                async with pipe.stream(req) as events:
                    async for _ in events:
                        pass
            elif entry == "acomplete":
                await pipe.acomplete(req)
            else:
                pipe.complete(req)
        got = info.value.field
        assert got.startswith(field[:-1]) if field.endswith("*") else got == field, entry
        assert got in str(info.value)
        # nothing of the foreign failure (a UnicodeError holding the text, say) is kept
        assert info.value.__cause__ is None and info.value.__context__ is None
    assert fake.requests == []
    assert fake.connections == []


# --- valid edge cases: sent, exactly once, intact -------------------------------------------

TEN_MB = "x" * (10 * 1024 * 1024)
ASTRAL = "naïve café 😀 𝄞 漢字"

VALID: list[tuple[str, dict[str, Any]]] = [
    ("a 10 MB message", user(TEN_MB)),
    ("a 10 MB message, not ASCII", user("é😀" * (2 * 1024 * 1024))),
    (
        "astral characters everywhere",
        {**user(ASTRAL), "system": ASTRAL, **tool(description=ASTRAL)},
    ),
    ("empty user text", user("")),
    (
        "every user part kind",
        user(
            [
                {"type": "text", "text": "look", "cache_control": {"type": "ephemeral"}},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                {"type": "image_url", "image_url": "https://example.com/a.png"},
                {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
                {"type": "file", "file": {"file_id": "file-1"}},
            ]
        ),
    ),
    (
        "a tool-call round trip, and a ghost turn",
        {
            "messages": [
                USER,
                {"role": "assistant", "content": None},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "t", "arguments": "{}"},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "42"},
            ],
            **tool(),
        },
    ),
    ("a tool name of 64", tool(name="a-b_" * 16)),
    ("nesting just inside the limit", {"extra": {"extra_body": {"deep": nested(MAX_DEPTH - 2)}}}),
    (
        "typed extras",
        {
            "extra": {
                "temperature": 0,
                "top_p": 0.5,
                "seed": 7,
                "parallel_tool_calls": True,
                "user": None,
                "extra_headers": {"X-Trace": "abc 123"},
            }
        },
    ),
    (
        "json mode and a JSON schema",
        {
            "json_mode": True,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "r", "schema": {"type": "object"}},
            },
        },
    ),
    ("no max_tokens", {"max_tokens": None}),
]


@pytest.mark.parametrize("overrides", [v[1] for v in VALID], ids=[v[0] for v in VALID])
async def test_valid_edge_cases_are_sent_once(
    pipe: Pipeline, fake: FakeProvider, overrides: dict[str, Any]
) -> None:
    fake.script(Reply.text("ok"))
    resp = await pipe.acomplete(fields_for(fake, **overrides))
    assert resp.text == "ok"
    assert len(fake.requests) == 1
    sent = fake.requests[0].body["messages"]
    want = overrides.get("messages", [USER])
    if isinstance(want[0].get("content"), str):  # text arrives exactly as given
        assert sent[-1]["content"] == want[0]["content"] or sent[0]["content"] == want[0]["content"]


# --- an error while building the HTTP request is the caller's, never retried ----------------


def forcing(field: str, value: Any):  # type: ignore[no-untyped-def]
    """A stage of the caller's that forces a bad value past validation (as a buggy
    stage could), so the failure happens inside litellm while building the request."""

    async def run(upstream, ctx):  # type: ignore[no-untyped-def]
        async for ev in upstream:
            if isinstance(ev, Request):
                ev = msgspec.structs.replace(ev)
                msgspec.structs.force_setattr(ev, field, value)
            yield ev

    return stage("forcing", run)


BUILD_FAULTS = [
    ("api_key", "sk-a\r\nX-Injected: 1"),
    ("api_key", "sk-clé-not-ascii"),
    ("extra", {"temperature": float("nan")}),
    ("extra", {"extra_body": {"a": {1, 2}}}),
    ("extra", {"extra_body": {"a": nested(3000)}}),
    ("messages", [{"role": "user", "content": "a\ud800b"}]),
    ("api_base", "http://127.0.0.1:99999/v1"),
    ("api_base", "http:///v1"),
]


@pytest.mark.parametrize("backend", ["litellm", "openai"])
@pytest.mark.parametrize(
    ("field", "value"), BUILD_FAULTS, ids=[f"{f}-{i}" for i, (f, _) in enumerate(BUILD_FAULTS)]
)
async def test_a_request_that_cannot_be_built_is_not_retried(
    fake: FakeProvider, clock: FakeClock, request_to, field: str, value: Any, backend: str
) -> None:  # type: ignore[no-untyped-def]
    fake.respond_with(lambda r: Reply.text("never"))
    pipe = Pipeline.default(sleep=clock.sleep, clock=clock.time, backend=backend).insert_before(
        "dispatch", forcing(field, value)
    )
    events: list[Event] = []
    with pytest.raises(InvalidRequest) as info:
        async with pipe.stream(request_to()) as stream:
            events = [ev async for ev in stream]
    assert events == []
    assert "could not be built" in str(info.value)
    assert clock.sleeps == []  # no backoff: not transient
    assert fake.requests == []
    cause = info.value.__cause__
    if backend == "litellm" or cause is not None:  # the direct backend may find it itself
        assert type(cause).__name__ == "ForeignError"  # a redacted stand-in
    assert info.value.__context__ is None
    assert "sk-a" not in str(info.value)
