"""Is another instrumentation of LiteLLM active? Then say so, once.

OpenInference's and OpenLLMetry's LiteLLM instrumentors wrap
``litellm.acompletion``: every llmpipe call then gets a second LLM span
under ``dispatch``, and both record message content by default, which
llmpipe keeps out unless asked. LiteLLM's own OpenTelemetry callbacks
(``litellm.callbacks = ["otel"]`` and the like) do the same. Nothing here
imports LiteLLM or an instrumentor: it looks at what is already loaded
(``sys.modules``), through the marks each leaves:

- an instrumentor's registry: OpenTelemetry's ``BaseInstrumentor`` keeps one
  instance per class, which knows whether it instrumented;
- the wrapped function itself: OpenInference marks its wrappers
  ``is_wrapper``; OpenLLMetry's is a ``wrapt`` proxy whose wrapper comes
  from its module;
- LiteLLM's callback lists.

Warned once per process and instrumentation (like ``warnings``): a process
has one ``litellm`` module, so one warning says all there is to say.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from pipeline.secrets import guard_logger

__all__ = ["active_instrumentations", "warn_if_doubled"]

log = guard_logger("llmpipe.telemetry")

#: module of the instrumentor -> (who, how to turn it off)
_INSTRUMENTORS = {
    "openinference.instrumentation.litellm": (
        "OpenInference's LiteLLMInstrumentor (openinference-instrumentation-litellm)",
        "LiteLLMInstrumentor().uninstrument()",
    ),
    "opentelemetry.instrumentation.litellm": (
        "OpenLLMetry's LiteLLMInstrumentor (opentelemetry-instrumentation-litellm)",
        "LiteLLMInstrumentor().uninstrument(), or leave it out of Traceloop.init()",
    ),
}
_CALLBACKS = frozenset({"otel", "arize", "arize_phoenix", "langfuse_otel", "logfire", "traceloop"})
_CALLBACK_LISTS = ("callbacks", "success_callback", "failure_callback", "_async_success_callback")

_warned: set[str] = set()
_lock = threading.Lock()


def active_instrumentations() -> list[tuple[str, str]]:
    """``(who, how to turn it off)`` for each LiteLLM instrumentation active now."""
    modules = sys.modules
    found: dict[str, tuple[str, str]] = {}
    for module, described in _INSTRUMENTORS.items():
        mod = modules.get(module)
        cls = getattr(mod, "LiteLLMInstrumentor", None) if mod is not None else None
        instance = getattr(cls, "_instance", None)
        if instance is not None and getattr(instance, "is_instrumented_by_opentelemetry", False):
            found[module] = described
    litellm = modules.get("litellm")
    if litellm is None:
        return list(found.values())
    wrapped = getattr(litellm, "acompletion", None)
    if getattr(wrapped, "is_wrapper", False):
        found.setdefault(*_entry("openinference.instrumentation.litellm"))
    wrapper = getattr(wrapped, "_self_wrapper", None)  # a wrapt proxy's wrapper function
    if str(getattr(wrapper, "__module__", "")).startswith("opentelemetry.instrumentation.litellm"):
        found.setdefault(*_entry("opentelemetry.instrumentation.litellm"))
    for name in _callbacks(litellm):
        found.setdefault(
            f"litellm:{name}",
            (
                f"LiteLLM's own {name!r} callback",
                f"remove {name!r} from litellm.callbacks / litellm.success_callback",
            ),
        )
    return list(found.values())


def _entry(module: str) -> tuple[str, tuple[str, str]]:
    return module, _INSTRUMENTORS[module]


def _callbacks(litellm: Any) -> list[str]:
    names = []
    for attr in _CALLBACK_LISTS:
        for cb in getattr(litellm, attr, None) or ():
            name = cb if isinstance(cb, str) else type(cb).__name__
            if name.lower() in _CALLBACKS or name == "OpenTelemetry":
                names.append(name)
    return list(dict.fromkeys(names))


def warn_if_doubled() -> None:
    """One warning per instrumentation, per process, the first time a traced call sees it."""
    try:
        found = active_instrumentations()
    except Exception:  # telemetry never breaks the pipeline
        log.debug("telemetry: cannot look for other LiteLLM instrumentation", exc_info=True)
        return
    for who, how in found:
        with _lock:
            if who in _warned:
                continue
            _warned.add(who)
        log.warning(
            "telemetry: %s is active: each llmpipe call also gets its spans under"
            " 'dispatch', and it records message content, which llmpipe keeps out unless"
            " asked; llmpipe already traces LiteLLM calls, so turn it off: %s",
            who,
            how,
        )
