"""OpenAI chat-completions JSON as ``Chunk``s: what each field becomes, and wrong types refused."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from pipeline.errors import MalformedResponse
from pipeline.events import Chunk, ToolFragment
from stages.dispatch.openai.wire import (
    completion_chunks,
    decode_completion,
    decode_stream_chunk,
    stream_chunk,
)


def chunk(delta: dict[str, Any] | None = None, finish: Any = None, **extra: Any) -> Chunk | None:
    payload = {
        "id": "c",
        "model": "m-1",
        "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}],
        **extra,
    }
    return stream_chunk(decode_stream_chunk(json.dumps(payload).encode()))


def test_text_and_the_model_the_provider_names() -> None:
    assert chunk({"content": "Hi"}) == Chunk(text="Hi", model="m-1")


def test_reasoning_content_first_else_reasoning() -> None:
    assert chunk({"reasoning_content": "a", "reasoning": "b"}) == Chunk(reasoning="a", model="m-1")
    assert chunk({"reasoning": "b"}) == Chunk(reasoning="b", model="m-1")
    assert chunk({"reasoning_content": "", "reasoning": "b"}) is None  # a string: it wins


def test_encrypted_reasoning_is_not_text() -> None:
    details = [{"type": "reasoning.encrypted", "data": "gAAAA..."}]
    assert chunk({"content": "", "reasoning_details": details}) is None


def test_typed_parts_text_is_text_thinking_is_reasoning() -> None:
    parts = [
        {
            "type": "thinking",
            "thinking": [{"type": "text", "text": "Let me "}, {"type": "text", "text": "see."}],
        },
        {"type": "text", "text": "Paris"},
        {"type": "image_url", "image_url": {"url": "x"}},
        {"type": "thinking", "thinking": " Sure."},
    ]
    assert chunk({"content": parts}) == Chunk(
        text="Paris", reasoning="Let me see. Sure.", model="m-1"
    )


def test_a_refusal_is_the_answers_text() -> None:
    assert chunk({"content": None, "refusal": "I can't help"}) == Chunk(
        text="I can't help", model="m-1"
    )


def test_tool_fragments_as_sent_empty_ids_and_names_are_none() -> None:
    calls = [
        {
            "index": 1,
            "id": "call_1",
            "type": "function",
            "function": {"name": "f", "arguments": ""},
        },
        {"id": "", "function": {"name": "", "arguments": '{"a"'}},
        {"index": 0},
    ]
    assert chunk({"tool_calls": calls}) == Chunk(
        tool_fragments=(
            ToolFragment(index=1, id="call_1", name="f", arguments=""),
            ToolFragment(index=None, id=None, name=None, arguments='{"a"'),
            ToolFragment(index=0),
        ),
        model="m-1",
    )


def test_finish_reason_and_usage() -> None:
    usage = {
        "prompt_tokens": 3,
        "completion_tokens": 2,
        "prompt_tokens_details": {"cached_tokens": 1},
    }
    assert chunk({}, "length", usage=usage) == Chunk(
        finish_reason="length", usage=usage, model="m-1"
    )


def test_a_usage_only_chunk_and_an_empty_one() -> None:
    usage = {"prompt_tokens": 3, "completion_tokens": 2}
    raw = decode_stream_chunk(json.dumps({"choices": [], "usage": usage}).encode())
    assert stream_chunk(raw) == Chunk(usage=usage)
    assert stream_chunk(decode_stream_chunk(b'{"choices": [], "usage": null}')) is None
    assert chunk({"role": "assistant", "content": ""}) is None  # the role-only first delta


def test_unknown_fields_are_ignored() -> None:
    got = chunk(
        {"content": "x", "x_odd": [1]}, obfuscation="abc", x_groq={"id": 1}, system_fingerprint=None
    )
    assert got == Chunk(text="x", model="m-1")


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        (b'{"choices": [{"delta": {"content": 5}}]}', "$.choices[0].delta.content"),
        (b'{"choices": "abc"}', "$.choices"),
        (b'{"choices": [{"delta": {"tool_calls": [{"index": "zero"}]}}]}', "index"),
        (b'{"choices": [{"delta": {}, "finish_reason": 7}]}', "finish_reason"),
        (b'{"choices": [], "usage": {"prompt_tokens": "ten"}}', "usage.prompt_tokens"),
        (
            b'{"choices": [], "usage": {"prompt_tokens_details": {"cached_tokens": 1.5}}}',
            "cached_tokens",
        ),
        (b'{"choices": [], "usage": {"completion_tokens": true}}', "usage.completion_tokens"),
        (b"{not json", "not JSON"),
        (b'{"choices": [{"delta": {"content": "\xff"}}]}', "not UTF-8"),
        (b'{"a": ' + b"[" * 5000 + b"]" * 5000 + b"}", "nested too deeply"),
        (b"[1, 2]", "wrong type"),
    ],
)
def test_what_cannot_be_read_is_a_malformed_response_naming_it(payload: bytes, words: str) -> None:
    with pytest.raises(MalformedResponse, match=re.escape(words)):
        stream_chunk(decode_stream_chunk(payload))


def test_an_error_object_is_kept_for_the_error_mapping() -> None:
    raw = decode_stream_chunk(
        b'{"error": {"message": "overloaded", "type": "server_error", "code": 529}}'
    )
    assert raw.error is not None and (raw.error.message, raw.error.code) == ("overloaded", 529)


def test_a_whole_completion_plays_back_as_the_chunks_of_its_stream() -> None:
    body = {
        "model": "m-2025",
        "choices": [
            {
                "message": {
                    "content": "Done.",
                    "reasoning_content": "think",
                    "tool_calls": [{"id": "a", "function": {"name": "f", "arguments": "{}"}}],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 4, "completion_tokens": 1},
    }
    assert completion_chunks(decode_completion(json.dumps(body).encode())) == [
        Chunk(reasoning="think", model="m-2025"),
        Chunk(text="Done.", model="m-2025"),
        Chunk(
            tool_fragments=(ToolFragment(index=0, id="a", name="f", arguments="{}"),),
            model="m-2025",
        ),
        Chunk(finish_reason="tool_calls", model="m-2025"),
        Chunk(usage={"prompt_tokens": 4, "completion_tokens": 1}, model="m-2025"),
    ]


def test_a_document_without_choices_is_not_a_completion() -> None:
    assert decode_completion(b'{"object": "list", "data": []}').choices is None
