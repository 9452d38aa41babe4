"""GenAI attribute mapping: provider names, model names, server address, scrubbing."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pipeline.profiles import resolve
from pipeline.request import Request
from telemetry import genai


@pytest.mark.parametrize(
    ("model", "provider", "name"),
    [
        ("openai/gpt-4o-mini", "openai", "gpt-4o-mini"),
        ("anthropic/claude-sonnet-4", "anthropic", "claude-sonnet-4"),
        ("claude-3-haiku", "anthropic", "claude-3-haiku"),  # no prefix: the profile says
        ("gpt-4o", "openai", "gpt-4o"),  # litellm's default
        ("openrouter/anthropic/claude-3.5", "openrouter", "anthropic/claude-3.5"),
        ("gemini/gemini-2.0-flash", "gcp.gemini", "gemini-2.0-flash"),
        ("bedrock/anthropic.claude-v2", "aws.bedrock", "anthropic.claude-v2"),
        ("azure/my-deployment", "azure.ai.openai", "my-deployment"),
        ("mistral/mistral-large", "mistral_ai", "mistral-large"),
        ("minimax/MiniMax-M2", "minimax", "MiniMax-M2"),
    ],
)
def test_provider_and_request_model(model: str, provider: str, name: str) -> None:
    assert genai.provider_name(model, resolve(model)) == provider
    assert genai.request_model(model) == name


def test_server_address_never_carries_credentials() -> None:
    req = Request(
        model="openai/x",
        messages=[{"role": "user", "content": "hi"}],
        api_base="https://user:hunter2@llm.example:8443/v1",
        api_key="sk-zzzz",
    )
    attrs = genai.request_attributes(req, resolve(req.model, req.api_base))
    assert attrs["server.address"] == "llm.example" and attrs["server.port"] == 8443
    assert "hunter2" not in repr(attrs) and "sk-zzzz" not in repr(attrs)


def test_a_profile_default_base_gives_the_server_address() -> None:
    req = Request(model="minimax/MiniMax-M2", messages=[{"role": "user", "content": "hi"}])
    attrs = genai.request_attributes(req, resolve(req.model))
    assert attrs["server.address"] == "api.minimax.io"


def test_scrub_masks_the_key_only() -> None:
    assert genai.scrub("bad key sk-abcdef here", "sk-abcdef") == "bad key *** here"
    assert genai.scrub("nothing", None) == "nothing"


@pytest.mark.parametrize(
    ("value", "on"),
    [
        ("true", True),
        ("TRUE", True),
        ("1", True),
        ("span_only", True),
        ("false", False),
        ("", False),
    ],
)
def test_capture_from_the_environment(
    value: str, on: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(genai.CAPTURE_ENV, value)
    assert genai.capture_enabled(None) is on
    assert genai.capture_enabled(False) is False  # an explicit setting wins


def test_the_sdk_is_imported_only_by_setup() -> None:
    """``import pipeline`` and ``Pipeline.default()`` use the OpenTelemetry API only."""
    code = (
        "import sys, pipeline\n"
        "assert not [m for m in sys.modules if m.startswith('opentelemetry')], 'import pipeline'\n"
        "pipeline.Pipeline.default()\n"
        "assert 'opentelemetry.trace' in sys.modules\n"
        "assert not [m for m in sys.modules if m.startswith(('opentelemetry.sdk', 'litellm'))]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
