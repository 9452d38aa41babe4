"""The names DESIGN.md fixes, importable where it says, and the facades."""

import asyncio
import subprocess
import sys

import pipeline
from pipeline import Pipeline, Request, Response, ToolSpec, testing
from pipeline.events import Finish, ReasoningDelta, Retrying, TextDelta, TextEnd, ToolCall


def test_documented_names_exist() -> None:
    for cls in (
        TextDelta,
        ReasoningDelta,
        TextEnd,
        ToolCall,
        Retrying,
        Finish,
        Request,
        ToolSpec,
        Response,
    ):
        assert isinstance(cls, type)
    assert (
        callable(pipeline.stream) and callable(pipeline.acomplete) and callable(pipeline.complete)
    )
    assert pipeline.testing is testing


def scripted_default(*scripts: list[object]) -> Pipeline:
    return Pipeline.default().replace("dispatch", testing.scripted(scripts))  # type: ignore[arg-type]


def test_complete_without_a_loop() -> None:
    p = scripted_default(testing.text_chunks("sync ", "ok"))
    resp = p.complete(Request(model="m", messages=[{"role": "user", "content": "hi"}]))
    assert resp.text == "sync ok"


async def test_complete_inside_a_running_event_loop() -> None:
    p = scripted_default(testing.text_chunks("from ", "a loop"))
    resp = p.complete(Request(model="m", messages=[{"role": "user", "content": "hi"}]))
    assert resp.text == "from a loop"
    assert asyncio.get_running_loop().is_running()


async def test_response_carries_tool_calls_usage_model_and_reasoning() -> None:
    from pipeline.events import Chunk

    p = scripted_default(
        [
            Chunk(reasoning="think", model="served-model"),
            *testing.tool_chunks(("c1", "search", '{"q": "x"}')),
        ]
    )
    resp = await p.acomplete({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert resp.tool_calls == (ToolCall(id="c1", name="search", arguments={"q": "x"}),)
    assert resp.stop_reason == "tool_calls"
    assert resp.model == "served-model"
    assert resp.reasoning == "think"
    assert resp.usage.input_tokens == 10


def test_importing_any_submodule_leaves_the_public_names_alone() -> None:
    """Importing ``pipeline.X`` for the first time binds ``X`` on the package: a
    submodule named like a public function (``pipeline.default`` once) replaced it."""
    code = """if True:
        import importlib, pkgutil, pipeline
        before = {n: getattr(pipeline, n) for n in pipeline.__all__}
        for info in pkgutil.walk_packages(pipeline.__path__, "pipeline."):
            importlib.import_module(info.name)
        print(sorted(n for n in pipeline.__all__ if getattr(pipeline, n) is not before[n]))
    """
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"


def test_importing_pipeline_does_not_import_litellm() -> None:
    code = "import sys, pipeline, pipeline.testing; p = pipeline.Pipeline.default(); print('litellm' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
