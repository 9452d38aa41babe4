"""The direct backend as users call it: routing, connections, loops, imports.

What the equivalence test (``test_equivalence_e2e.py``) cannot show by comparing
with litellm: which requests ``backend="auto"`` sends directly, that more than
aiohttp's default 100 streams run at once, that connections are reused and
closed with their event loop, and that a program using only the direct backend
never imports litellm.
"""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
import textwrap
import threading
from typing import Any

import pytest

from pipeline import Pipeline, Request
from pipeline.errors import AuthenticationFailed, InvalidRequest
from pipeline.policy import RetryPolicy
from pipeline.testing import FakeProvider, Reply, Stall, Text
from stages.dispatch import dispatch
from stages.dispatch.openai import OpenAIBackend
from stages.dispatch.openai.sessions import DEFAULT_CONNECTIONS, LoopSessions
from stages.dispatch.simulated import simulated

NO_RETRIES = RetryPolicy(rate_limit_retries=0, transient_retries=0, empty_retries=0)


def ask(fake: FakeProvider, **fields: Any) -> Request:
    base: dict[str, Any] = {
        "model": "openai/fake-model",
        "messages": [{"role": "user", "content": "hi"}],
        "api_base": fake.base_url,
        "api_key": "sk-test-key-not-real",
    }
    return Request(**{**base, **fields})


@pytest.mark.parametrize(
    ("backend", "model", "root", "direct"),
    [
        ("auto", "openai/fake-model", False, True),
        ("auto", "any-model", False, True),
        ("auto", "groq/fake-model", False, True),
        ("auto", "anthropic/claude-test", True, False),
        ("litellm", "openai/fake-model", False, False),
        ("openai", "any-model", False, True),
    ],
)
async def test_auto_sends_directly_where_the_profile_says_the_endpoint_speaks_chat_completions(
    fake: FakeProvider, backend: str, model: str, root: bool, direct: bool
) -> None:
    fake.script(Reply.text("ok"))
    base = fake.root_url if root else fake.base_url
    async with Pipeline.default(backend=backend, policy=NO_RETRIES) as pipe:
        resp = await pipe.acomplete(ask(fake, model=model, api_base=base))
    assert resp.text == "ok"
    agent = fake.requests[0].headers["user-agent"]
    assert (agent == "llmpipe") is direct, agent  # litellm's requests say AsyncOpenAI/...


async def test_more_streams_at_once_than_aiohttps_default_pool(fake: FakeProvider) -> None:
    """aiohttp allows 100 connections unless told otherwise; the 101st stream would
    wait for one inside its timed first pull. All 120 reach the server at once here."""
    fake.respond_with(lambda r: Reply((Text("waiting"), Stall(None))))
    async with Pipeline.default(backend="openai", policy=NO_RETRIES) as pipe:

        async def one() -> None:
            async with pipe.stream(ask(fake)) as events:
                async for _ in events:
                    pass

        tasks = [asyncio.create_task(one()) for _ in range(120)]
        try:
            requests = await fake.wait_requests(120, timeout=20)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    assert len({r.connection_id for r in requests}) == 120
    await fake.wait_closed(timeout=5)


async def test_the_pool_size_comes_from_the_policy() -> None:
    sessions = LoopSessions()
    session = await sessions.get(max_in_flight=3)
    try:
        assert session.connector is not None and session.connector.limit_per_host == 3
        assert await sessions.get(max_in_flight=99) is session  # one per loop, made once
    finally:
        await sessions.aclose()
    assert session.closed and len(sessions) == 0
    other = await sessions.get(max_in_flight=None)
    assert other.connector is not None and other.connector.limit_per_host == DEFAULT_CONNECTIONS
    await sessions.aclose()


async def test_a_loops_calls_share_a_connection_and_aclose_closes_it(fake: FakeProvider) -> None:
    fake.respond_with(lambda r: Reply.text("ok"))
    pipe = Pipeline.default(backend="openai")
    for _ in range(3):
        assert (await pipe.acomplete(ask(fake))).text == "ok"
    assert len({r.connection_id for r in fake.requests}) == 1  # read to the end, then reused
    await pipe.aclose()
    closed = await fake.wait_closed(timeout=1.0)
    assert closed.closed_by == "client"
    assert (await pipe.acomplete(ask(fake))).text == "ok"  # still usable: a new connection
    assert len({r.connection_id for r in fake.requests}) == 2
    await pipe.aclose()


def test_a_loop_that_ends_without_aclose_closes_its_connections(fake: FakeProvider) -> None:
    """``asyncio.run`` and a pipeline nobody closes: the loop's shutdown closes the
    session (no "Unclosed client session" warning, which the suite makes an error)."""
    fake.respond_with(lambda r: Reply.text("ok"))
    pipe = Pipeline.default(backend="openai")
    texts: list[str] = []

    def program() -> None:
        async def main() -> None:
            texts.append((await pipe.acomplete(ask(fake))).text)

        asyncio.run(main())

    for _ in range(2):
        thread = threading.Thread(target=program)
        thread.start()
        thread.join(30)
    assert texts == ["ok", "ok"]
    assert [c.closed_by for c in fake.connections] == ["client", "client"]


async def test_a_pipeline_dropped_in_a_reference_cycle_closes_its_connection(
    fake: FakeProvider,
) -> None:
    """A pipeline nobody closed, collected as part of a cycle while its loop runs: its
    session is closed on the loop (no "Unclosed client session" warning, which the suite
    makes an error), and the server sees the client go."""
    fake.respond_with(lambda r: Reply.text("ok"))
    holder: dict[str, Any] = {}
    holder["pipe"] = Pipeline.default(backend="openai")
    holder["self"] = holder  # a cycle: only the collector frees it
    assert (await holder["pipe"].acomplete(ask(fake))).text == "ok"
    del holder
    gc.collect()
    closed = await fake.wait_closed(timeout=1.0)
    assert closed.closed_by == "client"


async def test_simulated_streaming_makes_one_call_without_stream(fake: FakeProvider) -> None:
    fake.script(Reply.tool_calls(("c1", "f", {"a": 1})))
    backend = simulated(OpenAIBackend(), when=lambda ctx: True)
    pipe = Pipeline.default(policy=NO_RETRIES).replace("dispatch", dispatch(backend))
    async with pipe:
        resp = await pipe.acomplete(ask(fake, tools=[{"name": "f"}]))
    assert [(c.id, c.name, c.arguments) for c in resp.tool_calls] == [("c1", "f", {"a": 1})]
    assert (resp.stop_reason, resp.usage.source) == ("tool_calls", "provider")
    assert "stream" not in fake.requests[0].body


async def test_what_the_direct_backend_refuses_sends_nothing(
    fake: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    async with Pipeline.default(backend="openai", policy=NO_RETRIES) as pipe:
        with pytest.raises(AuthenticationFailed, match="Missing credentials"):
            await pipe.acomplete(ask(fake, api_key=None))  # openai/ needs a key, as with litellm
        with pytest.raises(InvalidRequest) as info:  # no endpoint of its own, none given
            await pipe.acomplete(ask(fake, model="gpt-4o-mini", api_base=None))
    assert info.value.field == "api_base"
    assert fake.requests == []


def test_a_program_that_only_calls_compatible_endpoints_never_imports_litellm(
    fake: FakeProvider,
) -> None:
    """In a fresh interpreter: ``import pipeline`` loads neither litellm nor aiohttp;
    a call through the default pipeline to an OpenAI-compatible server loads aiohttp
    and still not litellm."""
    fake.respond_with(lambda r: Reply.text("direct"))
    code = textwrap.dedent(
        f"""
        import sys
        import pipeline
        assert "litellm" not in sys.modules and "aiohttp" not in sys.modules
        req = pipeline.Request(
            model="any-model", messages=[{{"role": "user", "content": "hi"}}],
            api_base={fake.base_url!r},
        )
        print(pipeline.complete(req).text)
        print(pipeline.Pipeline.default().complete(req).text)
        assert "aiohttp" in sys.modules
        assert not [m for m in sys.modules if m == "litellm" or m.startswith("litellm.")]
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "direct\ndirect\n", "")


async def test_a_request_larger_than_the_socket_buffers_goes_whole(fake: FakeProvider) -> None:
    """A body the transport cannot take at once makes aiohttp's writer wait to drain:
    on Python 3.11 that wait is handed from the sending step to aiohttp's task
    (``eager``), which finishes the write."""
    fake.script(Reply.text("read it"), Reply.text("again"))
    big = "x" * (8 * 2**20)  # far above the socket's and the transport's buffers
    async with Pipeline.default(backend="openai", policy=NO_RETRIES) as pipe:
        for expected in ("read it", "again"):  # the connection is fine for the next one
            resp = await pipe.acomplete(ask(fake, messages=[{"role": "user", "content": big}]))
            assert resp.text == expected
    assert [len(r.body["messages"][0]["content"]) for r in fake.requests] == [len(big)] * 2
