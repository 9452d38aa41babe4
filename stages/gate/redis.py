"""The per-endpoint gate in Redis: one block and one bucket for every process.

Each endpoint has two keys: ``llmpipe:gate:{endpoint}:blocked`` (the time
until which every call waits; a Retry-After only ever moves it later) and
``...:bucket`` (the token bucket's next turn, GCRA). Each operation is one
Lua script, so it is atomic on the server and costs one round trip. The
scripts read the time with ``redis.call('TIME')``: only the server's clock
counts, processes need not agree on the time, and what a script returns is a
duration, which the caller sleeps on its own clock (``ctx.sleep``).

The gate is an optimisation, never a new failure mode: if Redis cannot be
reached (or ``redis`` is not installed), the call goes through the
in-process gate (``stages.gate.local``), with one warning per pipeline, and
Redis is tried again a few seconds later. ``max_in_flight`` is always per
process.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pipeline.context import SharedState
from pipeline.request import Request
from stages.gate.local import Clock, EndpointGate, Sleep, endpoint_key

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

__all__ = ["ACQUIRE", "PAUSE", "RedisGate", "RedisStores", "redis_gate"]

log = logging.getLogger("llmpipe.gate")

#: seconds without Redis after a failure, before it is tried again
RETRY_AFTER_S = 5.0
#: a block ending less than this after the time waited for is the same block (the
#: scripts round times to microseconds)
_SAME = 0.001

#: KEYS: blocked, bucket. ARGV: interval (s; 0: no bucket), burst, reserve (1: take a turn).
#: Returns {seconds to wait, blocked until, now} (server time), as strings: Redis would
#: truncate a Lua number to an integer.
ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local blocked = tonumber(redis.call('GET', KEYS[1]) or '0')
local wait = blocked - now
local interval = tonumber(ARGV[1])
if ARGV[3] == '1' and interval > 0 then
  local tat = math.max(tonumber(redis.call('GET', KEYS[2]) or '0'), now, blocked) + interval
  local turn = tat - tonumber(ARGV[2]) * interval - now
  if turn > wait then wait = turn end
  redis.call('SET', KEYS[2], string.format('%.6f', tat), 'PX', math.ceil((tat - now) * 1000) + 1000)
end
if wait < 0 then wait = 0 end
return {string.format('%.6f', wait), string.format('%.6f', blocked), string.format('%.6f', now)}
"""

#: KEYS: blocked. ARGV: seconds from now. Moves the block later, never earlier.
PAUSE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local seconds = tonumber(ARGV[1])
local untl = now + seconds
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if untl > cur then
  redis.call('SET', KEYS[1], string.format('%.6f', untl), 'PX', math.ceil(seconds * 1000) + 1000)
  cur = untl
end
return string.format('%.6f', cur - now)
"""


class _Store:
    """One Redis client (per URL and event loop) and its two scripts."""

    def __init__(self, url: str, warned: set[str]) -> None:
        self.where = _where(url)
        self._warned = warned
        self._down_until = 0.0
        self._client: Any = None
        self._scripts: dict[str, Any] = {}
        try:
            import redis.asyncio as aioredis
        except ImportError:
            self._fail("the redis package is not installed (pip install 'llmpipe[redis]')")
            self._down_until = float("inf")
            return
        self._client = aioredis.Redis.from_url(
            url, socket_connect_timeout=1.0, socket_timeout=1.0, health_check_interval=30
        )
        self._scripts = {"acquire": self._client.register_script(ACQUIRE)}
        self._scripts["pause"] = self._client.register_script(PAUSE)

    async def run(self, script: str, keys: list[str], args: list[Any]) -> list[float] | None:
        """The script's reply as numbers, or ``None`` if Redis cannot be used now."""
        if time.monotonic() < self._down_until:
            return None
        try:
            reply = await self._scripts[script](keys=keys, args=args)
            return [float(x) for x in (reply if isinstance(reply, list) else [reply])]
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any failure of the store: the call goes on without it
            self._down_until = time.monotonic() + RETRY_AFTER_S
            self._fail(f"{type(exc).__name__}: {exc}")
            return None

    def _fail(self, why: str) -> None:
        if self.where in self._warned:
            log.debug("gate: Redis at %s unusable: %s", self.where, why)
            return
        self._warned.add(self.where)
        log.warning(
            "gate: Redis at %s cannot be used (%s); calls use the in-process gate"
            " (this process only) until it can",
            self.where,
            why,
        )

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()


class RedisGate:
    """One endpoint's gate, shared through Redis; the in-process gate as its fallback."""

    def __init__(self, store: _Store, endpoint: str, local: EndpointGate) -> None:
        self._store = store
        self._keys = [f"llmpipe:gate:{endpoint}:blocked", f"llmpipe:gate:{endpoint}:bucket"]
        self.local = local

    def slot(self, clock: Clock, sleep: Sleep) -> AbstractAsyncContextManager[None]:
        # The in-flight bound and this process's own blocks stay local; Redis admits.
        return self.local.slot(clock, sleep, admit=self._admit)

    async def pause(self, seconds: float, clock: Clock) -> None:
        self.local.block(clock() + seconds)  # at once here, and if Redis is down
        await self._store.run("pause", self._keys[:1], [f"{max(seconds, 0.0):.6f}"])

    async def _admit(self, clock: Clock, sleep: Sleep) -> None:
        """One round trip when the call may go at once; as the in-process ``admit``.

        Waits are what Redis says, slept on the caller's clock. After one, the
        block is checked again: only a block that ends later than the time
        waited for (a new 429 meanwhile) means more waiting, for the
        difference, and then a new turn of the bucket.
        """
        rate = self.local.rate
        turn = [f"{rate.interval:.9f}", rate.burst, 1] if rate else [0, 0, 1]
        while True:
            reply = await self._store.run("acquire", self._keys, turn)
            if reply is None:  # no Redis: this process's own gate
                await self.local.admit(clock, sleep)
                return
            wait, _, now = reply
            if wait <= 0:
                break
            await sleep(wait)
            check = await self._store.run("acquire", self._keys, [0, 0, 0])
            later = 0.0 if check is None else check[1] - (now + wait)
            if later < _SAME:
                break
            await sleep(later)
        await self.local.wait_open(clock, sleep)


class RedisStores:
    """A pipeline's Redis clients, one per URL and event loop (a shared-state entry).

    ``aclose()`` closes the running loop's (``Pipeline.aclose`` calls it);
    the next call on that loop makes a new client.
    """

    def __init__(self) -> None:
        self._loops = weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _Store]]()
        self.warned: set[str] = set()  # where Redis was said to be unusable, once each

    def store(self, url: str) -> _Store:
        per_loop = self._loops.setdefault(asyncio.get_running_loop(), {})
        store = per_loop.get(url)
        if store is None:
            store = per_loop[url] = _Store(url, self.warned)
        return store

    async def aclose(self) -> None:
        for store in self._loops.pop(asyncio.get_running_loop(), {}).values():
            await store.aclose()


def redis_gate(shared: SharedState, url: str, req: Request, local: EndpointGate) -> RedisGate:
    """The Redis gate of ``req``'s endpoint (one client per URL and event loop)."""
    stores = shared.setdefault("gate.redis", RedisStores)
    return RedisGate(stores.store(url), endpoint_key(req), local)


def _where(url: str) -> str:
    """``host:port/db`` of a Redis URL, never its password."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return parts.path
    host = parts.hostname or "localhost"
    return f"{host}:{parts.port or 6379}{parts.path or ''}"
