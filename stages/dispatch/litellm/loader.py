"""Importing litellm: on first use, off the event loop, offline-safe, Ctrl-C-safe.

The import takes seconds (7 on a slow machine), so it runs once per process
on a daemon thread that every caller waits for: not ``asyncio.to_thread``,
whose threads are joined when the loop and the interpreter end, so a Ctrl-C
during the import would wait for it to finish. Before importing, the
variables that keep litellm from fetching its cost map and a beta-headers
table over the network are set (unless the user set them), and its loggers
and the HTTP clients' loggers are redacted like llmpipe's own.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import importlib
import os
import sys
import threading
from types import ModuleType

from pipeline.secrets import guard_loggers

__all__ = ["LIBRARY_LOGGERS", "import_litellm", "litellm_providers", "load_litellm"]

#: the loggers of litellm and the clients under it: redacted like our own
LIBRARY_LOGGERS = (
    "LiteLLM",
    "LiteLLM Router",
    "LiteLLM Proxy",
    "openai",
    "openai._base_client",
    "httpx",
    "httpcore",
    "aiohttp.client",
)


async def import_litellm() -> ModuleType:
    """litellm, imported on first use off the event loop, offline-safe."""
    module = sys.modules.get("litellm")
    if module is not None and hasattr(module, "acompletion"):
        return module
    loop = asyncio.get_running_loop()
    done: asyncio.Future[ModuleType] = loop.create_future()
    source = _start_import()

    def wake(_: concurrent.futures.Future[ModuleType]) -> None:
        with contextlib.suppress(RuntimeError):  # that loop closed (its caller was cancelled)
            loop.call_soon_threadsafe(_settle, done, source)

    source.add_done_callback(wake)
    return await done


def litellm_providers() -> frozenset[str]:
    """The provider prefixes litellm knows (``openai``, ``anthropic``, ...)."""
    module = sys.modules.get("litellm")
    if module is None or not hasattr(module, "provider_list"):
        module = load_litellm()
    return frozenset(str(getattr(p, "value", p)) for p in module.provider_list)


def _settle(
    done: asyncio.Future[ModuleType], source: concurrent.futures.Future[ModuleType]
) -> None:
    if done.done():  # the waiter was cancelled
        return
    error = source.exception()
    if error is not None:
        done.set_exception(error)
    else:
        done.set_result(source.result())


_import_lock = threading.Lock()
_import: concurrent.futures.Future[ModuleType] | None = None


def _start_import() -> concurrent.futures.Future[ModuleType]:
    """The one import of litellm (started here if it was not yet); a failed one
    is started again by the next caller."""
    global _import
    with _import_lock:
        if _import is None or (_import.done() and _import.exception() is not None):
            _import = concurrent.futures.Future()
            _import.set_running_or_notify_cancel()  # a waiter's cancel never cancels it
            threading.Thread(
                target=_import_into, args=(_import,), name="llmpipe-import-litellm", daemon=True
            ).start()
        return _import


def _import_into(future: concurrent.futures.Future[ModuleType]) -> None:
    try:
        future.set_result(load_litellm())
    except BaseException as exc:  # handed to the waiters, raised there
        future.set_exception(exc)


def load_litellm() -> ModuleType:
    """Import litellm here and now (blocking), set up to stay offline and quiet."""
    # Without these, importing litellm fetches a cost map (and, on first
    # Anthropic OAuth use, a beta-headers table) over the network, which
    # offline stalls for seconds. A value the user set wins.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS", "True")
    module = importlib.import_module("litellm")
    # litellm prints "Give Feedback / Get Help" banners on errors otherwise.
    setattr(module, "suppress_debug_info", True)  # noqa: B010
    # Its cost calculation counts tokens after every call, and for a model named
    # "...llama-3..." (common on local servers) fetches a tokenizer from the
    # Hugging Face hub: offline, a stall of about 25 s. The bundled OpenAI
    # tokenizer instead, unless the application chose.
    if getattr(module, "disable_hf_tokenizer_download", None) is None:
        setattr(module, "disable_hf_tokenizer_download", True)  # noqa: B010
    guard_loggers(LIBRARY_LOGGERS)
    return module
