"""Token estimates: characters / 4 of everything sent, or litellm's offline counter."""

import json

import pytest

from pipeline.request import Request
from pipeline.tokens import estimate_message_tokens, estimate_tokens
from stages.dispatch.litellm import import_litellm
from stages.dispatch.litellm.tokens import count_request_tokens


def test_plain_text_is_characters_over_four() -> None:
    assert estimate_message_tokens([{"role": "user", "content": "x" * 400}]) == 100
    assert estimate_message_tokens([{"role": "user", "content": "hello world"}]) == 11 // 4


def test_tool_call_names_and_arguments_count() -> None:
    args = json.dumps({"q": "x" * 200})
    msg = {
        "role": "assistant",
        "content": "ok",
        "tool_calls": [{"function": {"name": "search", "arguments": args}}],
    }
    assert estimate_message_tokens([msg]) == (2 + 6 + len(args)) // 4


def test_tool_call_ids_count() -> None:
    call_id = "call_" + "a" * 20
    assert (
        estimate_message_tokens([{"role": "tool", "tool_call_id": call_id, "content": ""}])
        == len(call_id) // 4
    )


def test_content_parts_count() -> None:
    parts = [
        {"type": "text", "text": "y" * 40},
        {"type": "image_url", "image_url": {"url": "data:..."}},
    ]
    assert estimate_message_tokens([{"role": "user", "content": parts}]) == 10


async def test_default_counter_labels_itself() -> None:
    req = Request(model="m", messages=[{"role": "user", "content": "x" * 40}], system="s" * 8)
    assert await estimate_tokens(req) == (12, "estimate")


@pytest.mark.e2e
async def test_litellm_counter_is_used_once_litellm_is_loaded() -> None:
    await import_litellm()
    req = Request(
        model="meta-llama/Llama-2-7b", messages=[{"role": "user", "content": "hello " * 50}]
    )
    count, method = await count_request_tokens(req)
    assert method == "tiktoken"
    assert 45 <= count <= 70  # "hello " is one token each, plus message framing
