import pytest

from pipeline.events import Request
from stages.cache_tag import cache_tag
from stages.normalize import normalize_request
from tests.helpers import make_ctx, make_request, run_stage


@pytest.mark.parametrize(
    "model",
    [
        "anthropic/claude-3-haiku",
        "claude-3-haiku-20240307",
        "minimax/MiniMax-M2.1",
        "minimax-text-01",
        "MiniMax-M2",
        "zai-glm-4.6",
        "glm-4.5",
    ],
)
async def test_system_message_is_tagged_ephemeral_for_caching_providers(model: str) -> None:
    req = normalize_request(make_request(model=model, system="sys"))
    [out] = await run_stage(cache_tag(), [req], make_ctx(req))
    assert isinstance(out, Request)
    assert out.messages[0] == {
        "role": "system",
        "content": "sys",
        "cache_control": {"type": "ephemeral"},
    }
    assert out.messages[1] == {"role": "user", "content": "hi"}


@pytest.mark.parametrize(
    "model", ["openai/gpt-4o-mini", "gpt-4o-mini", "gemini/gemini-2.0", "groq/llama3"]
)
async def test_other_providers_get_nothing(model: str) -> None:
    req = normalize_request(make_request(model=model, system="sys"))
    [out] = await run_stage(cache_tag(), [req], make_ctx(req))
    assert out == req
    assert isinstance(out, Request) and "cache_control" not in out.messages[0]


async def test_no_system_message_means_no_change() -> None:
    req = make_request(model="anthropic/claude-3-haiku")
    [out] = await run_stage(cache_tag(), [req], make_ctx(req))
    assert out is req
