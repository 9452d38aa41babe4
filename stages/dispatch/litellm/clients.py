"""Release the HTTP clients litellm pooled for one event loop, and only those.

litellm 1.109 caches its clients (``AsyncOpenAI``, httpx handlers) in
``litellm.in_memory_llm_clients_cache``, under keys that end in
``-{token}``, where ``token`` identifies the event loop that was running
when the client was made (``litellm.caching.evicted_client_closer.
running_loop_token``). litellm's own ``close_litellm_async_clients`` closes
every cached client of every loop and leaves them in the cache, so a loop
that is still running is handed a closed client on its next call. Here,
when a loop ends:

- its own entries are closed and removed from the cache, so nothing closed
  is ever handed out and other loops keep their connections;
- handlers shared by every loop (cache entries made with no loop running,
  and ``litellm.module_level_aclient``, which Anthropic calls use) are
  closed only when their connection pool (an aiohttp session) is bound to
  this loop; such a handler opens a new pool on its next use.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import sys
from typing import Any

__all__ = ["close_loop_clients"]

log = logging.getLogger("llmpipe.dispatch")


async def close_loop_clients() -> int:
    """Close the clients litellm pooled for the running loop; returns how many.

    A no-op when litellm was never imported.
    """
    litellm = sys.modules.get("litellm")
    cache = getattr(litellm, "in_memory_llm_clients_cache", None)
    entries: dict[str, Any] | None = getattr(cache, "cache_dict", None)
    if not isinstance(entries, dict):
        return 0
    from litellm.caching.evicted_client_closer import running_loop_token

    suffix = f"-{running_loop_token()}"
    ttls: dict[str, Any] = getattr(cache, "ttl_dict", {})
    keys = [k for k in tuple(entries) if isinstance(k, str) and k.endswith(suffix)]
    clients = [entries.pop(k, None) for k in keys]
    for k in keys:
        ttls.pop(k, None)
    # vars(), not getattr(): litellm makes module_level_aclient on first attribute access.
    shared = [*entries.values(), vars(litellm).get("module_level_aclient")]
    loop = asyncio.get_running_loop()
    clients += [h for h in shared if h is not None and h not in clients and _pool_loop(h) is loop]
    for client in clients:
        if client is not None:
            await _close(client)
    return len(clients)


def _pool_loop(handler: object) -> object:
    """The event loop of the open aiohttp session behind a litellm handler, if any."""
    transport = getattr(getattr(handler, "_client", None), "_transport", None)
    session = getattr(transport, "client", None)
    if getattr(session, "closed", True):
        return None
    return getattr(session, "_loop", None)


async def _close(client: object) -> None:
    """``aclose()`` or ``close()``, awaited when it is a coroutine; failures only logged."""
    close = getattr(client, "aclose", None) or getattr(client, "close", None)
    if close is None:
        return
    try:
        result = close()
        if inspect.isawaitable(result):
            await result
    except Exception as exc:  # a client that fails to close must not fail the caller
        log.debug("closing a pooled litellm client failed: %r", exc)
