"""The names DESIGN.md fixes, importable where it says, and the facades."""

import asyncio
import importlib
import subprocess
import sys

import pytest

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


#: every public module's ``__all__``, as documented: a change here is an API change
#: (add it to the CHANGELOG); names leave only through a deprecation
PUBLIC = {
    "pipeline": "Chunk Context Event EventStream Finish Message Pipeline ReasoningDelta Request"
    " Response Retrying Segment Stage TextDelta TextEnd ToolCall ToolFragment ToolSpec Usage"
    " acomplete collect complete default errors events stage stream tool_result",
    "pipeline.events": "Chunk Event EventBase FallingBack Finish ReasoningDelta Request Retrying"
    " TextDelta"
    " TextEnd ToolCall ToolFragment UsageSource decode encode",
    "pipeline.errors": "AuthenticationFailed BadRequest ClientClosed ContentFiltered"
    " ContextWindowExceeded EmptyResponse InternalError InvalidRequest MalformedResponse"
    " MalformedToolCall ModelNotFound PipelineError PipelineMisuse ProviderError ProviderTimeout"
    " ProviderUnavailable ProviderUnreachable RateLimited RetriesExhausted StageNotFound"
    " StreamError StreamInterrupted TargetCoolingDown UsageLimitExceeded redact",
    "pipeline.fallbacks": "DEFAULT_ON FALLBACK_REASONS FallbackPolicy FallbackReason Target"
    " TargetHealth coerce_targets fallback_reason",
    "pipeline.cost": "ModelPrice PriceTable cost_usd prices prices_async table_path",
    "pipeline.limits": "UsageLimits UsageMeter UsageTotals shown_limit",
    "pipeline.testing": "ConnectionRecord Done Drop FakeClock FakeProvider FinishStep"
    " FunctionBackend Raw Reasoning RecordedRequest Reply Script ScriptedBackend"
    " ScriptedDispatch Stall Text ToolDelta UsageStep Wire scripted text_chunks tool_chunks",
    "pipeline.policy": "FIRST_CHUNK_TIMEOUT_S IDLE_TIMEOUT_S RETRY_CAUSES RetryCause RetryPolicy"
    " jittered retry_delay server_delay",
    "pipeline.backend": "Backend Preparing",
    "pipeline.compat": "FRAMEWORK_CLASSES FinishEvent LLMResponse LiteLLMProvider"
    " ReasoningDeltaEvent ReasoningStartEvent StreamErrorEvent StreamEvent TextDeltaEvent"
    " TextEndEvent Tool ToolCallEvent ToolResultEvent compute_retry_delay"
    " parse_tool_call_arguments tool_to_openai_format",
    "stages": "LiteLLMBackend cache_tag dispatch empty_check fallback normalize reassemble"
    " replay_dispatch retry simulated tool_compat usage",
    "telemetry": "TelemetryHandle TelemetryInstrument setup",
}


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_each_public_modules_all_is_the_documented_list(name: str) -> None:
    module = importlib.import_module(name)
    assert sorted(module.__all__) == sorted(PUBLIC[name].split())
    missing = [n for n in module.__all__ if not hasattr(module, n)]
    assert missing == []


def test_the_renamed_testing_steps_still_work_with_a_warning() -> None:
    with pytest.warns(DeprecationWarning, match="FinishStep"):
        assert testing.Finish is testing.FinishStep  # type: ignore[attr-defined]
    with pytest.warns(DeprecationWarning, match="UsageStep"):
        assert testing.Usage is testing.UsageStep  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        testing.NoSuchStep  # type: ignore[attr-defined]  # noqa: B018
