"""Several event loops and threads sharing one pipeline, and litellm's per-loop clients.

``complete()`` inside a running loop runs on a worker thread with a loop of its
own; releasing that loop's pooled clients must leave every other loop's alone.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import defaultdict

import pytest

from pipeline import Pipeline
from pipeline.errors import ClientClosed, PipelineError
from pipeline.policy import RetryPolicy
from pipeline.testing import FakeClock, FakeProvider, Reply

CALLS = 3


async def test_complete_inside_a_loop_leaves_that_loops_connections_usable(
    pipe: Pipeline, fake: FakeProvider, clock: FakeClock, request_to
) -> None:  # type: ignore[no-untyped-def]
    fake.respond_with(lambda r: Reply.text("ok"))
    req = request_to()
    assert (await pipe.acomplete(req)).text == "ok"
    assert pipe.complete(req).text == "ok"
    resp = await pipe.acomplete(req)
    assert (resp.text, resp.retries) == ("ok", 0)
    assert clock.sleeps == []
    assert len(fake.requests) == 3


@pytest.mark.parametrize("backend", ["litellm", "openai"])
async def test_many_loops_and_threads_at_once_all_succeed(
    fake: FakeProvider, request_to, caplog: pytest.LogCaptureFixture, backend: str
) -> None:  # type: ignore[no-untyped-def]
    """The caller's loop, two threads calling ``complete()``, and a second
    ``asyncio.run`` on a thread: each makes a call, all wait until every first
    call (and so every loop release) is done, then each makes several more."""
    fake.respond_with(lambda r: Reply.text("ok"))
    no_retries = RetryPolicy(rate_limit_retries=0, transient_retries=0, empty_retries=0)
    p = Pipeline.default(policy=no_retries, backend=backend)  # a failure surfaces at once
    req = request_to()
    everyone_called = threading.Barrier(4, timeout=60)
    results: dict[str, list[str]] = defaultdict(list)
    failures: list[BaseException] = []

    def sync_caller(name: str) -> None:
        try:
            results[name].append(p.complete(req).text)  # its own loop, released at its end
            everyone_called.wait()
            for _ in range(CALLS):
                results[name].append(p.complete(req).text)
        except BaseException as exc:
            failures.append(exc)
            everyone_called.abort()

    def second_loop() -> None:
        async def main() -> None:
            results["loop"].append((await p.acomplete(req)).text)
            await asyncio.to_thread(everyone_called.wait)
            for _ in range(CALLS):
                results["loop"].append((await p.acomplete(req)).text)
            await p.aclose()

        try:
            asyncio.run(main())
        except BaseException as exc:
            failures.append(exc)
            everyone_called.abort()

    threads = [threading.Thread(target=sync_caller, args=(f"sync{i}",)) for i in (1, 2)]
    threads.append(threading.Thread(target=second_loop))
    with caplog.at_level(logging.INFO):
        results["caller"].append((await p.acomplete(req)).text)
        for t in threads:
            t.start()
        try:
            results["caller"].append(p.complete(req).text)  # a worker loop, released at its end
            await asyncio.to_thread(everyone_called.wait)
            for _ in range(CALLS):
                results["caller"].append((await p.acomplete(req)).text)
        finally:
            for t in threads:
                await asyncio.to_thread(t.join, 60)
    assert not any(t.is_alive() for t in threads)
    assert failures == []
    assert dict(results) == {
        "caller": ["ok"] * (CALLS + 2),
        "sync1": ["ok"] * (CALLS + 1),
        "sync2": ["ok"] * (CALLS + 1),
        "loop": ["ok"] * (CALLS + 1),
    }
    assert len(fake.requests) == 4 * (CALLS + 1) + 1
    assert "client has been closed" not in caplog.text
    await p.aclose()


async def test_a_closed_client_is_an_internal_error_raised_at_once(
    pipe: Pipeline, fake: FakeProvider, clock: FakeClock, request_to
) -> None:  # type: ignore[no-untyped-def]
    """If a pooled client is closed under a loop anyway, nothing is retried as transient."""
    import litellm
    from litellm.caching.evicted_client_closer import running_loop_token

    fake.respond_with(lambda r: Reply.text("ok"))
    await pipe.acomplete(request_to())
    # What litellm's own close_litellm_async_clients does, for this loop only: close, keep cached.
    mine = f"-{running_loop_token()}"
    for key, client in litellm.in_memory_llm_clients_cache.cache_dict.items():
        if key.endswith(mine):
            await client.close()
    with pytest.raises(ClientClosed) as info:
        await pipe.acomplete(request_to())
    assert "client has been closed" in str(info.value)
    assert not isinstance(info.value, PipelineError)  # not a call failure: a bug
    assert (clock.sleeps, len(fake.requests)) == ([], 1)


@pytest.mark.parametrize(
    ("model", "root", "backend"),
    [
        ("openai/fake-model", False, "litellm"),
        ("anthropic/claude-test", True, "litellm"),
        ("openai/fake-model", False, "openai"),
    ],
    ids=["openai", "anthropic", "direct"],
)
async def test_each_loop_that_ends_closes_the_connections_it_opened(
    fake: FakeProvider, request_to, model: str, root: bool, backend: str
) -> None:  # type: ignore[no-untyped-def]
    """Each ``complete()`` here runs on a loop of its own; when it ends, its
    connections are closed, including those of litellm's module-level client,
    which Anthropic calls use from every loop (and the direct backend's session
    for that loop)."""
    pipe = Pipeline.default(backend=backend)
    fake.respond_with(lambda r: Reply.text("ok"))
    req = request_to(model=model, **({"api_base": fake.root_url} if root else {}))
    for _ in range(3):
        assert pipe.complete(req).text == "ok"
    last = await fake.wait_closed(timeout=5)
    assert last.closed_by == "client"
    assert len(fake.requests) == 3
