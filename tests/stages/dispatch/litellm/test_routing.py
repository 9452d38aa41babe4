"""How a normalized request is put to litellm: the model string and the arguments.

Profiles say which API an endpoint speaks (``Profile.api``); only here does
that become a litellm provider prefix. These cases need no litellm import:
the profile's own prefix is replaced, and a model with no ``api`` is as given
(the OpenAI-compatible cases, which ask litellm which prefixes it knows, are
in ``tests/e2e/test_profiles_e2e.py``).
"""

from __future__ import annotations

import pytest

from pipeline.profiles import resolve
from pipeline.request import Request
from stages.dispatch.litellm.routing import NO_KEY, build_kwargs, litellm_model


@pytest.mark.parametrize(
    ("model", "sent"),
    [
        ("kimi/kimi-k2", "anthropic/kimi-k2"),  # Kimi for Coding speaks Anthropic's API
        ("KIMI/kimi-k2", "anthropic/kimi-k2"),  # prefixes match in any case
        ("ollama/llama3", "ollama_chat/llama3"),  # Ollama's chat API, not completion
        ("ollama_chat/llama3", "ollama_chat/llama3"),
        ("openai/gpt-4o", "openai/gpt-4o"),
        ("anthropic/claude-haiku-4-5", "anthropic/claude-haiku-4-5"),
        ("minimax/MiniMax-M2.1", "minimax/MiniMax-M2.1"),
    ],
)
def test_the_model_names_the_litellm_provider_speaking_the_profiles_api(
    model: str, sent: str
) -> None:
    assert litellm_model(model, resolve(model)) == sent


def test_the_arguments_ask_for_a_stream_with_usage_and_no_retries_of_litellms_own() -> None:
    req = Request(
        model="ollama/llama3",
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=50,
        extra={"temperature": 0.3},
    )
    kwargs = build_kwargs(req, resolve(req.model))
    assert kwargs == {
        "temperature": 0.3,
        "model": "ollama_chat/llama3",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_retries": 0,
        "max_tokens": 50,
    }
    assert "api_key" not in kwargs  # a rerouted model is not a bare one: no placeholder key
    assert NO_KEY == "no-key"


def test_a_profiles_parameters_apply_and_the_callers_extra_wins() -> None:
    base = "https://chatgpt.com/backend-api/codex"
    req = Request(
        model="openai/gpt-5-codex",
        messages=[{"role": "user", "content": "hi"}],
        api_base=base,
        api_key="sk-test",
        extra={"store": True},
    )
    kwargs = build_kwargs(req, resolve(req.model, base))
    assert kwargs["store"] is True
    assert "max_tokens" not in kwargs and "stream_options" not in kwargs  # dropped for codex
    assert (kwargs["api_key"], kwargs["api_base"]) == ("sk-test", base)
