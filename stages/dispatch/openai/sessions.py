"""One aiohttp ``ClientSession`` per event loop, owned by the backend that made it.

A session (its connection pool) belongs to the event loop it was made on: a
pipeline called from several loops (``complete()`` runs its own, threads run
theirs) has one session for each, made on the loop's first call. It is closed:

- by ``aclose()`` on its own loop (``Pipeline.aclose()``, ``async with
  pipeline``, and ``complete()`` for the loop it makes), which closes that
  loop's session only; the next call opens a new one;
- when ``asyncio.run`` (or any runner calling ``shutdown_asyncgens``) ends the
  loop without that: each session is held open by a small async generator
  the loop knows of, whose ``finally`` closes it, so an application that
  never calls ``aclose()`` leaks no connection and sees no "Unclosed client
  session" warning;
- when the backend is dropped unclosed while its loop runs (a pipeline
  nobody closed, garbage in a reference cycle): the generators are also held
  in a module-level table by loop (``_OPEN``), so the collector never takes
  a session down unclosed with its owner; the owner's finalizer schedules
  their closing on their loops instead.

A proxy named by ``HTTPS_PROXY`` / ``HTTP_PROXY`` (``NO_PROXY`` honoured), as
httpx and the openai SDK read them, is looked up once per host and session
(``proxy``): aiohttp's own ``trust_env`` would look it up, and search
``~/.netrc`` for a password, on a worker thread for every request.

The pool's size comes from the first caller's policy: ``max_in_flight``
connections per host (the gate lets no more run at once), else
``DEFAULT_CONNECTIONS``; not aiohttp's default of 100, which would make the
101st concurrent stream wait for a connection inside the timed pull. Only
connecting is timed here (``CONNECT_TIMEOUT_S``); waiting for the answer is
the dispatch stage's (first-chunk and idle timeouts), and no request is
ever retried here. On Python 3.11 a request's body is written in the step
that sends it (``eager``), as aiohttp does itself from 3.12.

aiohttp is imported on the first call, so importing this module stays cheap.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from stages.dispatch.openai.eager import request_class

if TYPE_CHECKING:
    import aiohttp
    import yarl

__all__ = ["CONNECT_TIMEOUT_S", "DEFAULT_CONNECTIONS", "LoopSessions"]

#: connections per host when the policy sets no ``max_in_flight``
DEFAULT_CONNECTIONS = 1024
#: seconds to open a TCP (and TLS) connection; the answer is timed by dispatch
CONNECT_TIMEOUT_S = 30.0

USER_AGENT = "llmpipe"


class _Entry:
    __slots__ = ("keeper", "proxies", "session")

    def __init__(self, session: aiohttp.ClientSession, keeper: AsyncIterator[None]) -> None:
        self.session = session
        self.keeper = keeper
        self.proxies: dict[tuple[str, str], Proxy] = {}


#: a proxy URL and its credentials, or ``(None, None)``
Proxy = tuple["yarl.URL | None", "aiohttp.BasicAuth | None"]


class LoopSessions:
    """The sessions of one backend, one per event loop (see the module)."""

    __slots__ = ("__weakref__", "_entries", "_lock")

    def __init__(self) -> None:
        self._entries: dict[asyncio.AbstractEventLoop, _Entry] = {}
        self._lock = threading.Lock()
        done = weakref.finalize(self, _close_all, self._entries)
        done.atexit = False  # at exit the loops are gone, and their sessions with them

    def __len__(self) -> int:
        """How many loops have an open session (closed loops' are forgotten first)."""
        self._sweep()
        return len(self._entries)

    async def get(self, max_in_flight: int | None) -> aiohttp.ClientSession:
        """The running loop's session, made on its first call."""
        return (await self._entry(max_in_flight)).session

    async def route(
        self, url: str, max_in_flight: int | None
    ) -> tuple[aiohttp.ClientSession, Proxy]:
        """The running loop's session, and the proxy (if any) for ``url``'s host."""
        entry = await self._entry(max_in_flight)
        scheme, _, rest = url.partition("://")
        host = rest.split("/", 1)[0]
        proxy = entry.proxies.get((scheme, host))
        if proxy is None:
            proxy = entry.proxies[(scheme, host)] = _env_proxy(url)
        return entry.session, proxy

    async def _entry(self, max_in_flight: int | None) -> _Entry:
        loop = asyncio.get_running_loop()
        entry = self._entries.get(loop)
        if entry is not None and not entry.session.closed:
            return entry
        session = _new_session(max_in_flight)
        keeper = _keep(weakref.ref(self), loop, session)
        await keeper.__anext__()  # now the loop knows it: its shutdown closes the session
        entry = _Entry(session, keeper)
        _OPEN.setdefault(loop, set()).add(keeper)
        with self._lock:
            self._entries[loop] = entry
        self._sweep()
        return entry

    async def aclose(self) -> None:
        """Close the running loop's session, if it has one (others stay open)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            entry = self._entries.pop(loop, None)
        if entry is not None:
            _OPEN.get(loop, set()).discard(entry.keeper)
            await entry.keeper.aclose()  # type: ignore[attr-defined]

    def _forget(self, loop: asyncio.AbstractEventLoop, session: aiohttp.ClientSession) -> None:
        with self._lock:
            entry = self._entries.get(loop)
            if entry is not None and entry.session is session:
                del self._entries[loop]

    def _sweep(self) -> None:
        """Forget the sessions of loops that were closed without closing them."""
        with self._lock:
            for loop in [lp for lp in self._entries if lp.is_closed()]:
                del self._entries[loop]


#: every open session's keeper, by loop (see the module): strong references, so that a
#: backend collected in a cycle cannot take its sessions with it unclosed
_OPEN: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, set[AsyncIterator[None]]] = (
    weakref.WeakKeyDictionary()
)
#: the closing tasks scheduled by ``_close_all``, held until done
_CLOSING: set[asyncio.Task[None]] = set()


def _close_all(entries: dict[asyncio.AbstractEventLoop, _Entry]) -> None:
    """A ``LoopSessions`` was collected unclosed: close its sessions on their loops."""
    for loop, entry in list(entries.items()):
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nothing is open
            loop.call_soon_threadsafe(_start_closing, loop, entry.keeper)


def _start_closing(loop: asyncio.AbstractEventLoop, keeper: AsyncIterator[None]) -> None:
    _OPEN.get(loop, set()).discard(keeper)
    task = loop.create_task(keeper.aclose())  # type: ignore[attr-defined]
    _CLOSING.add(task)
    task.add_done_callback(_CLOSING.discard)


async def _keep(
    owner: weakref.ref[LoopSessions],
    loop: asyncio.AbstractEventLoop,
    session: aiohttp.ClientSession,
) -> AsyncIterator[None]:
    """Holds ``session`` open until closed: by ``aclose()``, by the loop's
    ``shutdown_asyncgens``, or (the sessions dropped unclosed) by the loop's
    finalizer hook. It keeps its owner only weakly: a reference cycle would
    leave the session to the garbage collector, which finalizes it (an
    "Unclosed connector" warning) before this could close it."""
    try:
        yield
    finally:
        sessions = owner()
        if sessions is not None:
            sessions._forget(loop, session)
        await session.close()


def _new_session(max_in_flight: int | None) -> aiohttp.ClientSession:
    import aiohttp

    per_host = max_in_flight or DEFAULT_CONNECTIONS
    connector = aiohttp.TCPConnector(
        limit=max(per_host, DEFAULT_CONNECTIONS), limit_per_host=per_host
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT_S),
        headers={"User-Agent": USER_AGENT},
        request_class=request_class() or aiohttp.ClientRequest,
    )


def _env_proxy(url: str) -> Proxy:
    """The proxy the environment names for ``url`` (``NO_PROXY`` honoured)."""
    import aiohttp.helpers
    import yarl

    try:
        return aiohttp.helpers.get_env_proxy_for_url(yarl.URL(url))
    except LookupError:
        return None, None
