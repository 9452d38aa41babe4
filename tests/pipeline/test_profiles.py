"""Every row of the profile table, pinned."""

import pytest

from pipeline.profiles import DEFAULT, PROFILES, api_base_for, resolve


@pytest.mark.parametrize(
    ("model", "api_base", "name"),
    [
        ("anthropic/claude-3-haiku", None, "anthropic"),
        ("claude-3-haiku-20240307", None, "anthropic"),
        ("kimi/kimi-k2", None, "kimi"),
        ("Kimi/kimi-k2", None, "kimi"),
        ("minimax/MiniMax-M2.1", None, "minimax"),
        ("minimax-text-01", None, "minimax"),
        ("MiniMax-M2", None, "minimax"),
        ("zai-glm-4.6", None, "zai"),
        ("glm-4.5", None, "zai"),
        ("openrouter/x-ai/grok-4", None, "openrouter"),
        ("openai/some-model", "https://openrouter.ai/api/v1", "openrouter"),
        ("ollama/llama3", None, "ollama"),
        ("openai/gpt-5-codex", "https://chatgpt.com/backend-api/codex", "codex"),
        ("anthropic/claude-x", "https://chatgpt.com/backend-api/codex", "codex"),
        ("openai/gpt-4o-mini", None, "openai"),
        ("openai/gpt-4o-mini", "http://127.0.0.1:8000/v1", "openai"),
        ("groq/llama-3.1-8b-instant", None, "groq"),
        ("deepseek/deepseek-chat", None, "deepseek"),
        ("gpt-4o-mini", None, "default"),
        # an explicit base no row claims: an OpenAI-compatible server
        ("gpt-4o-mini", "https://my-proxy.example/v1", "openai_compatible"),
        ("any-model", "http://127.0.0.1:8000/v1", "openai_compatible"),
        ("meta-llama/Llama-3.1-8B", "http://localhost:8000/v1", "openai_compatible"),
        ("claude-3-haiku-20240307", "http://localhost:8000/v1", "anthropic"),  # rows first
        ("any-model", None, "default"),
        ("gemini/gemini-2.0-flash", None, "default"),
    ],
)
def test_rows_are_found_by_prefix_or_base(model: str, api_base: str | None, name: str) -> None:
    assert resolve(model, api_base).name == name


def test_every_row_is_pinned_here() -> None:
    assert [p.name for p in PROFILES] == [
        "codex",
        "openai",
        "anthropic",
        "kimi",
        "minimax",
        "zai",
        "openrouter",
        "deepseek",
        "moonshot",
        "groq",
        "ollama",
    ]


def test_only_thinking_tool_callers_get_their_reasoning_back() -> None:
    assert [p.name for p in PROFILES if p.echo_reasoning] == ["deepseek", "moonshot"]
    assert resolve("deepseek/deepseek-reasoner").echo_reasoning
    assert not resolve("openai/gpt-4o-mini").echo_reasoning


@pytest.mark.parametrize(
    ("model", "cache"),
    [
        ("anthropic/claude-3-haiku", True),
        ("claude-3-haiku-20240307", True),
        ("minimax/MiniMax-M2.1", True),
        ("minimax-text-01", True),
        ("MiniMax-M2", True),
        ("zai-glm-4.6", True),
        ("glm-4.5", True),
        ("kimi/kimi-k2", True),
        ("openrouter/anthropic/claude-sonnet-4", True),
        ("openrouter/google/gemini-2.5-pro", True),
        ("openrouter/z-ai/glm-4.6", True),
        ("openrouter/minimax/minimax-m2", True),
        ("openrouter/x-ai/grok-4", False),
        ("openrouter/google/gemma-3", False),
        ("openai/gpt-4o", False),
        ("groq/llama3-70b", False),
    ],
)
def test_cache_control(model: str, cache: bool) -> None:
    assert resolve(model).cache_control is cache


@pytest.mark.parametrize(
    ("model", "api_base", "expected"),
    [
        ("kimi/kimi-k2", None, "https://api.kimi.com/coding"),
        ("kimi/kimi-k2", "https://api.kimi.com/coding/v1", "https://api.kimi.com/coding"),
        ("kimi/kimi-k2", "https://proxy.example/v1/", "https://proxy.example"),
        ("minimax/MiniMax-M2.1", None, "https://api.minimax.io/v1"),
        ("minimax/MiniMax-M2.1", "https://proxy.example/v1", "https://proxy.example/v1"),
        ("openrouter/x-ai/grok-4", None, "https://openrouter.ai/api/v1"),
        ("openrouter/x-ai/grok-4", "https://proxy.example/v1", "https://proxy.example/v1"),
        ("ollama/llama3", None, None),
        ("openai/gpt-4o", None, None),
        ("openai/gpt-4o", "https://proxy.example/v1", "https://proxy.example/v1"),
    ],
)
def test_the_base_a_provider_is_sent_to(
    model: str, api_base: str | None, expected: str | None
) -> None:
    assert api_base_for(resolve(model, api_base), api_base) == expected


def test_codex_backend_quirks() -> None:
    codex = resolve("openai/gpt-5-codex", "https://chatgpt.com/backend-api/codex")
    assert codex.drop_params == {"max_tokens", "stream_options"}
    assert dict(codex.extra_params) == {"store": False}
    assert codex.default_system == "You are a helpful assistant."
    assert codex.streaming == "stream"


def test_which_api_an_endpoint_speaks_is_a_fact_of_its_row() -> None:
    assert resolve("kimi/kimi-k2").api == "anthropic"
    assert resolve("ollama/llama3").api == "ollama"
    assert resolve("any-model", "http://localhost:8000/v1").api == "openai"
    assert resolve("openai/gpt-4o").api is None and resolve("anthropic/claude-x").api is None


def test_streaming_and_tool_compat_rows() -> None:
    assert resolve("minimax/MiniMax-M2").streaming == "simulated"
    assert all(p.streaming == "stream" for p in PROFILES if p.name != "minimax")
    assert [p.name for p in PROFILES if p.tool_compat] == ["openrouter"]
    assert DEFAULT.tool_compat is False


def test_the_rows_that_speak_openai_chat_completions() -> None:
    """The direct backend (and ``backend="auto"``) goes only where a row says so."""
    assert [p.name for p in PROFILES if p.chat_completions] == [
        "openai",
        "openrouter",
        "deepseek",
        "groq",
    ]
    local = resolve("any-model", "http://127.0.0.1:8000/v1").chat_completions
    assert local is not None and local.base is None and not local.key_required
    assert DEFAULT.chat_completions is None
    assert resolve("anthropic/claude-x", "http://127.0.0.1:8000/v1").chat_completions is None
