"""Provider profiles: what is special about a provider, as one data table.

A generic stage never tests a model name; it asks the request's profile
(``ctx.profile``). Adding a provider means adding a row to ``PROFILES``
(and, rarely, a small pure function here). Rows are matched first by an
``api_base`` marker (an endpoint can need its own quirks whatever the model),
then by model prefix, case-insensitively; the first match wins.

An explicit ``api_base`` always wins over a profile's default; only its
normalisation (``strip_base_suffix``) still applies. An explicit base that
no row claims is an OpenAI-compatible server (vLLM, llama.cpp, Ollama's
``/v1``, LM Studio, a proxy): ``OPENAI_COMPATIBLE``, which speaks OpenAI's
API whatever the model is called (``any-model``, ``meta-llama/Llama-3.1-8B``).

A row holds facts about the provider, never a client library's way of
saying them: which API an endpoint speaks is ``api``; how litellm is told
(``anthropic/``, ``ollama_chat/``, ``openai/`` prefixes) is the litellm
backend's business (``stages.dispatch.litellm.routing``).

Whether an endpoint speaks OpenAI chat-completions, and how to reach it
without a client library, is a fact here too (``Profile.chat_completions``):
where it does, the direct backend can send to it (``stages.dispatch.openai``),
and ``backend="auto"`` does.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

__all__ = [
    "DEFAULT",
    "OPENAI_COMPATIBLE",
    "PROFILES",
    "Api",
    "ChatCompletions",
    "Profile",
    "api_base_for",
    "resolve",
]

_NOTHING: Mapping[str, Any] = MappingProxyType({})

#: the wire APIs a profile may say its endpoint speaks
Api = Literal["openai", "anthropic", "ollama"]


@dataclass(frozen=True, slots=True)
class ChatCompletions:
    """How to reach a provider's OpenAI chat-completions endpoint directly.

    - ``base``: the endpoint's base URL when the request has no ``api_base``
      (``None``: the request must give one); the environment variables in
      ``base_env``, when set, win over it, as they do for the provider's SDK;
    - ``key_env``: the variable that holds the key when the request has none;
      ``key_required``: without a key nothing is sent (``AuthenticationFailed``),
      as litellm does for these providers; a local server needs none;
    - ``strip_prefix``: the model prefix that names the provider for litellm
      (``groq/``), which the endpoint itself does not take;
    - ``provider``: the name errors carry (``ProviderError.provider``);
    - ``max_tokens_field``: the field ``max_tokens`` is sent as when the
      request goes to ``base`` (OpenAI's own endpoint takes only
      ``max_completion_tokens`` for its reasoning models).
    """

    base: str | None = None
    base_env: tuple[str, ...] = ()
    key_env: str | None = "OPENAI_API_KEY"
    key_required: bool = True
    strip_prefix: str = ""
    provider: str = "openai"
    max_tokens_field: str = "max_tokens"


@dataclass(frozen=True, slots=True)
class Profile:
    """The quirks of one provider family (every field defaults to "no quirk").

    - ``prefixes`` / ``base_markers``: model prefixes and ``api_base``
      substrings that select the row;
    - ``api``: the API the endpoint speaks when the model string does not
      say it: Kimi for Coding (``kimi/``) serves Anthropic's messages API,
      ``ollama/`` models are Ollama's own chat API, an OpenAI-compatible
      server speaks OpenAI's for any model name; ``None``: as the model's
      provider prefix says;
    - ``default_api_base``: used when the caller gives none;
    - ``strip_base_suffix``: removed from the end of any ``api_base``;
    - ``cache_control``: the provider accepts ``cache_control`` on the system
      message; ``cache_routes``: for routers, the routed models that do;
    - ``streaming``: ``stream``, or ``simulated`` (dispatched without
      streaming, played back as a stream of the same events);
    - ``drop_params``: request parameters the backend rejects;
      ``extra_params``: parameters it needs (the caller's ``extra`` wins);
    - ``default_system``: a system prompt to send when the caller gives none;
    - ``tool_compat_errors``: error texts meaning "this model cannot use
      native tools here", which switch the model to tool-compat mode;
    - ``echo_reasoning``: the provider wants an assistant turn's reasoning
      back (``reasoning_content``, as ``Response.to_message()`` writes it);
      everywhere else ``normalize`` strips it, since strict OpenAI-compatible
      servers reject unknown message fields.
    - ``chat_completions``: the endpoint speaks OpenAI chat-completions, and
      this is how to reach it without litellm (``None``: only through
      litellm). Set only where it was checked against the provider's real
      streams (``tests/fixtures/realstreams``) and its documented API.
    """

    name: str
    prefixes: tuple[str, ...] = ()
    base_markers: tuple[str, ...] = ()
    api: Api | None = None
    default_api_base: str | None = None
    strip_base_suffix: str | None = None
    cache_control: bool = False
    cache_routes: tuple[str, ...] = ()
    streaming: Literal["stream", "simulated"] = "stream"
    drop_params: frozenset[str] = frozenset()
    extra_params: Mapping[str, Any] = field(default_factory=lambda: _NOTHING)
    default_system: str | None = None
    tool_compat_errors: tuple[str, ...] = ()
    echo_reasoning: bool = False
    chat_completions: ChatCompletions | None = None

    @property
    def tool_compat(self) -> bool:
        return bool(self.tool_compat_errors)


PROFILES: tuple[Profile, ...] = (
    # The ChatGPT Codex backend (a Responses API behind chatgpt.com) takes
    # neither max_tokens nor stream_options, must not store, and needs
    # instructions (a system prompt) on every call.
    Profile(
        "codex",
        base_markers=("chatgpt.com/backend-api/codex",),
        drop_params=frozenset({"max_tokens", "stream_options"}),
        extra_params=MappingProxyType({"store": False}),
        default_system="You are a helpful assistant.",
    ),
    # OpenAI itself (an explicit api_base still wins over its endpoint).
    Profile(
        "openai",
        prefixes=("openai/",),
        chat_completions=ChatCompletions(
            base="https://api.openai.com/v1",
            base_env=("OPENAI_BASE_URL", "OPENAI_API_BASE"),
            strip_prefix="openai/",
            max_tokens_field="max_completion_tokens",
        ),
    ),
    Profile("anthropic", prefixes=("anthropic/", "claude-"), cache_control=True),
    # Kimi for Coding speaks Anthropic's API at /coding; clients append
    # /v1/messages, so a saved ".../v1" base must lose its suffix.
    Profile(
        "kimi",
        prefixes=("kimi/",),
        api="anthropic",
        default_api_base="https://api.kimi.com/coding",
        strip_base_suffix="/v1",
        cache_control=True,
    ),
    # litellm's MiniMax stream parser fails on chunks without an "id".
    Profile(
        "minimax",
        prefixes=("minimax/", "minimax-"),
        default_api_base="https://api.minimax.io/v1",
        cache_control=True,
        streaming="simulated",
    ),
    Profile("zai", prefixes=("zai-glm", "glm-"), cache_control=True),
    Profile(
        "openrouter",
        prefixes=("openrouter/",),
        base_markers=("openrouter.ai/api/v1",),
        default_api_base="https://openrouter.ai/api/v1",
        chat_completions=ChatCompletions(
            base="https://openrouter.ai/api/v1",
            key_env="OPENROUTER_API_KEY",
            strip_prefix="openrouter/",
            provider="openrouter",
        ),
        cache_routes=("anthropic/", "google/gemini", "z-ai/", "minimax/"),
        tool_compat_errors=(
            "no endpoints found that support tool use",
            "no endpoints available that support tool use",
            "provider routing",
        ),
    ),
    # Thinking models that call tools need their reasoning back on the next
    # turn (without it DeepSeek refuses, Moonshot degrades; litellm then
    # sends a blank placeholder).
    Profile(
        "deepseek",
        prefixes=("deepseek/",),
        echo_reasoning=True,
        chat_completions=ChatCompletions(
            base="https://api.deepseek.com",
            key_env="DEEPSEEK_API_KEY",
            strip_prefix="deepseek/",
            provider="deepseek",
        ),
    ),
    Profile("moonshot", prefixes=("moonshot/",), echo_reasoning=True),
    Profile(
        "groq",
        prefixes=("groq/",),
        chat_completions=ChatCompletions(
            base="https://api.groq.com/openai/v1",
            key_env="GROQ_API_KEY",
            strip_prefix="groq/",
            provider="groq",
        ),
    ),
    # Ollama's own API; chat, not completion.
    Profile("ollama", prefixes=("ollama/",), api="ollama"),
)

DEFAULT = Profile("default")

#: an explicit ``api_base`` that no row claims: an OpenAI-compatible server
OPENAI_COMPATIBLE = Profile(
    "openai_compatible",
    api="openai",
    chat_completions=ChatCompletions(key_required=False),
)


@functools.lru_cache(maxsize=1024)
def resolve(model: str, api_base: str | None = None) -> Profile:
    """The profile for a model string and (optional) base URL (the table is constant and
    profiles are immutable: one lookup per distinct pair, then a cache hit per call)."""
    base = (api_base or "").lower()
    lower = model.lower()
    row = next((p for p in PROFILES if base and any(m in base for m in p.base_markers)), None)
    if row is None:
        fallback = OPENAI_COMPATIBLE if base else DEFAULT
        row = next((p for p in PROFILES if lower.startswith(p.prefixes)), fallback)
    if row.cache_routes and not row.cache_control:
        route = lower.split("/", 1)[1] if "/" in lower else lower
        if route.startswith(row.cache_routes):
            row = dataclasses.replace(row, cache_control=True)
    return row


def api_base_for(profile: Profile, api_base: str | None) -> str | None:
    """The base URL the provider must be sent to: the caller's, normalised, or the default."""
    if api_base:
        suffix = profile.strip_base_suffix
        trimmed = api_base.rstrip("/")
        if suffix and trimmed.endswith(suffix):
            api_base = trimmed[: -len(suffix)]
    else:
        api_base = profile.default_api_base
    return api_base
