import pytest

from pipeline import Pipeline, testing
from pipeline.context import Context
from pipeline.errors import PipelineMisuse, StageNotFound
from pipeline.events import Chunk, Event, TextDelta
from pipeline.pipeline import Pipeline as CorePipeline
from pipeline.stage import Stage, stage
from stages.retry import Retry

DEFAULT_NAMES = [
    "fallback",
    "normalize",
    "cache_tag",
    "retry",
    "tool_compat",
    "dispatch",
    "reassemble",
    "usage",
    "empty_check",
]


def marker(name: str) -> Stage:
    async def run(upstream, ctx: Context):  # type: ignore[no-untyped-def]
        async for ev in upstream:
            yield ev

    return stage(name, run)


def test_default_has_the_designed_shape() -> None:
    p = Pipeline.default()
    assert p.names == DEFAULT_NAMES
    assert (
        repr(p)
        == "Pipeline(fallback(normalize -> cache_tag -> retry(tool_compat(dispatch) -> reassemble -> usage -> empty_check)))"
    )
    assert isinstance(p["retry"], Retry)


def test_replace_finds_stages_inside_segments_and_leaves_the_original_alone() -> None:
    p = Pipeline.default()
    fake = testing.scripted([["hi"]])
    p2 = p.replace("dispatch", fake)
    assert p2["dispatch"] is fake
    assert p["dispatch"] is not fake
    assert p2.names == DEFAULT_NAMES


def test_insert_before_after_and_remove() -> None:
    p = Pipeline.default()
    p2 = (
        p.insert_before("reassemble", marker("a"))
        .insert_after("normalize", marker("b"))
        .remove("cache_tag")
    )
    assert p2.names == [
        "fallback",
        "normalize",
        "b",
        "retry",
        "tool_compat",
        "dispatch",
        "a",
        "reassemble",
        "usage",
        "empty_check",
    ]
    assert p.names == DEFAULT_NAMES


def test_unknown_names_raise() -> None:
    p = Pipeline.default()
    for edit in (
        p.remove,
        lambda n: p.replace(n, marker("x")),
        lambda n: p.insert_before(n, marker("x")),
    ):
        with pytest.raises(StageNotFound, match="no stage named 'nope'"):
            edit("nope")


def test_duplicate_names_raise_on_any_edit_that_makes_them() -> None:
    p = Pipeline.default()
    with pytest.raises(PipelineMisuse, match="duplicate stage name 'usage'"):
        p.insert_after("normalize", marker("usage"))
    with pytest.raises(PipelineMisuse, match="duplicate"):
        CorePipeline([marker("a"), marker("a")])


def test_non_stages_are_refused() -> None:
    with pytest.raises(PipelineMisuse, match="not a stage"):
        CorePipeline([object()])  # type: ignore[list-item]


async def test_scripted_dispatch_runs_the_rest_of_the_default_pipeline() -> None:
    fake = testing.scripted([testing.text_chunks("Hel", "lo")])
    p = Pipeline.default().replace("dispatch", fake)
    resp = await p.acomplete(
        {"model": "openai/m", "messages": [{"role": "user", "content": "hi"}], "system": "s"}
    )
    assert resp.text == "Hello"
    assert resp.stop_reason == "stop"
    assert (resp.usage.input_tokens, resp.usage.output_tokens, resp.usage.source) == (
        10,
        5,
        "provider",
    )
    # what reached dispatch is the normalized request
    assert fake.calls[0].messages[0] == {"role": "system", "content": "s"}
    assert fake.outcomes == ["finished"]


async def test_a_stream_is_consumed_once() -> None:
    p = Pipeline.default().replace("dispatch", testing.scripted([testing.text_chunks("x")]))
    s = p.stream({"model": "openai/m", "messages": [{"role": "user", "content": "hi"}]})
    async with s as events:
        assert [type(e) async for e in events][0] is TextDelta  # noqa: RUF015
    with pytest.raises(PipelineMisuse, match="already consumed"):
        async with s:
            pass


async def test_pipeline_without_dispatch_passes_the_request_through() -> None:
    p = CorePipeline([marker("only")])
    got: list[Event] = []
    async with p.stream({"model": "m", "messages": [{"role": "user", "content": "hi"}]}) as events:
        got = [e async for e in events]
    assert [type(e).__name__ for e in got] == ["Request"]


async def test_scripted_raises_when_out_of_scripts() -> None:
    p = Pipeline.default().replace("dispatch", testing.scripted([]))
    with pytest.raises(PipelineMisuse, match="attempt 1 has none"):
        await p.acomplete({"model": "m", "messages": [{"role": "user", "content": "hi"}]})


async def test_an_exception_in_a_script_is_raised() -> None:
    boom = ConnectionError("reset")
    p = Pipeline.default().replace("dispatch", testing.scripted([[Chunk(text="a"), boom]]))
    with pytest.raises(ConnectionError):
        await p.acomplete({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
