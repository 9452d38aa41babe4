"""The reference's event and data classes behave as the framework's do.

Code that builds, pattern-matches, compares, hashes or serialises them must
not notice the switch: frozen, a distinct ``type`` literal per class,
defaults for every field, ``dataclasses.asdict`` with exactly the framework's
keys, and ``StreamEvent`` the union of the eight.
"""

import dataclasses
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from pipeline.compat import (
    FRAMEWORK_CLASSES,
    FinishEvent,
    LLMResponse,
    ReasoningDeltaEvent,
    ReasoningStartEvent,
    StreamErrorEvent,
    StreamEvent,
    TextDeltaEvent,
    TextEndEvent,
    Tool,
    ToolCallEvent,
    ToolResultEvent,
)

ROOT = Path(__file__).resolve().parents[3]

EVENTS: dict[type[Any], tuple[str, dict[str, Any]]] = {
    TextDeltaEvent: ("text_delta", {"content": "", "snapshot": ""}),
    TextEndEvent: ("text_end", {"full_text": ""}),
    ToolCallEvent: ("tool_call", {"tool_use_id": "", "tool_name": "", "tool_input": {}}),
    ToolResultEvent: ("tool_result", {"tool_use_id": "", "content": "", "is_error": False}),
    ReasoningStartEvent: ("reasoning_start", {}),
    ReasoningDeltaEvent: ("reasoning_delta", {"content": ""}),
    FinishEvent: (
        "finish",
        {"stop_reason": "", "input_tokens": 0, "output_tokens": 0, "cached_tokens": 0, "model": ""},
    ),
    StreamErrorEvent: ("error", {"error": "", "recoverable": False}),
}


def test_the_shipped_classes_are_in_use_without_the_framework() -> None:
    assert FRAMEWORK_CLASSES is False
    assert TextDeltaEvent.__module__ == "pipeline.compat.shapes"


@pytest.mark.parametrize("cls", list(EVENTS), ids=lambda c: c.__name__)
def test_defaults_type_literal_and_field_order(cls: type[Any]) -> None:
    literal, defaults = EVENTS[cls]
    ev = cls()
    assert ev.type == literal
    # ``type`` first, then the framework's fields in its order
    assert [f.name for f in dataclasses.fields(cls)] == ["type", *defaults]
    assert dataclasses.asdict(ev) == {"type": literal, **defaults}
    assert isinstance(ev, cls)


@pytest.mark.parametrize("cls", list(EVENTS), ids=lambda c: c.__name__)
def test_every_event_is_frozen(cls: type[Any]) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        cls().type = "other"


def test_fields_are_frozen_too() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        TextDeltaEvent(content="a").content = "b"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        ToolCallEvent().tool_input = {"x": 1}  # type: ignore[misc]


def test_type_literals_are_distinct_and_the_union_is_exactly_the_eight() -> None:
    assert len({lit for lit, _ in EVENTS.values()}) == 8
    assert set(StreamEvent.__args__) == set(EVENTS)


def test_values_are_stored_and_serialised() -> None:
    assert dataclasses.asdict(TextDeltaEvent(content="chunk", snapshot="full chunk")) == {
        "type": "text_delta",
        "content": "chunk",
        "snapshot": "full chunk",
    }
    finish = FinishEvent(stop_reason="stop", input_tokens=10, output_tokens=20, model="gpt-4")
    assert dataclasses.asdict(finish) == {
        "type": "finish",
        "stop_reason": "stop",
        "input_tokens": 10,
        "output_tokens": 20,
        "cached_tokens": 0,
        "model": "gpt-4",
    }
    call = ToolCallEvent(
        tool_use_id="call_abc123",
        tool_name="web_search",
        tool_input={"query": "python", "num_results": 5},
    )
    assert dataclasses.asdict(call)["tool_input"] == {"query": "python", "num_results": 5}
    assert ToolResultEvent("tool_result", "call_abc123", "results", True).is_error is True
    assert StreamErrorEvent(error="rate limit exceeded", recoverable=True).recoverable is True


def test_equality_and_hashing() -> None:
    assert TextDeltaEvent(content="hi") == TextDeltaEvent(content="hi")
    assert TextDeltaEvent(content="hi") != ReasoningDeltaEvent(content="hi")
    a = FinishEvent(stop_reason="end_turn", input_tokens=150, output_tokens=300, model="m")
    b = FinishEvent(stop_reason="end_turn", input_tokens=150, output_tokens=300, model="m")
    assert a == b and hash(a) == hash(b)
    with pytest.raises(TypeError, match="unhashable type"):
        hash(ToolCallEvent(tool_input={"q": 1}))


def test_pattern_matching_by_class_and_by_type() -> None:
    def kind(ev: object) -> str:
        match ev:
            case TextDeltaEvent(content=c, snapshot=s):
                return f"delta {c}/{s}"
            case FinishEvent(stop_reason=r):
                return f"finish {r}"
        return "other"

    assert kind(TextDeltaEvent(content="b", snapshot="ab")) == "delta b/ab"
    assert kind(FinishEvent(stop_reason="stop")) == "finish stop"
    assert kind(StreamErrorEvent()) == "other"


def test_llm_response_and_tool_are_mutable_with_the_reference_defaults() -> None:
    resp = LLMResponse(content="hi", model="m")
    assert (resp.input_tokens, resp.output_tokens, resp.stop_reason, resp.raw_response) == (
        0,
        0,
        "",
        None,
    )
    resp.content = "changed"
    assert resp.content == "changed"
    assert [f.name for f in dataclasses.fields(LLMResponse)] == [
        "content",
        "model",
        "input_tokens",
        "output_tokens",
        "stop_reason",
        "raw_response",
    ]
    a, b = Tool("a", "first"), Tool("b", "second")
    a.parameters["x"] = 1
    assert b.parameters == {}  # one dict per instance


FAKE_FRAMEWORK = {
    "framework/__init__.py": "",
    "framework/llm/__init__.py": "",
    "framework/llm/stream_events.py": """
        from dataclasses import dataclass
        @dataclass(frozen=True)
        class TextDeltaEvent:
            type: str = "text_delta"
            content: str = ""
            snapshot: str = ""
        TextEndEvent = ToolCallEvent = ToolResultEvent = ReasoningStartEvent = TextDeltaEvent
        ReasoningDeltaEvent = FinishEvent = StreamErrorEvent = TextDeltaEvent
        StreamEvent = TextDeltaEvent
        """,
    "framework/llm/provider.py": """
        class LLMResponse: pass
        class Tool: pass
        """,
}


def _run_with(tmp_path: Path, files: dict[str, str], code: str) -> str:
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_frameworks_own_classes_are_used_when_importable(tmp_path: Path) -> None:
    out = _run_with(
        tmp_path,
        FAKE_FRAMEWORK,
        "import pipeline.compat as c, framework.llm.stream_events as e,"
        " framework.llm.provider as p\n"
        "print(c.FRAMEWORK_CLASSES, c.TextDeltaEvent is e.TextDeltaEvent,"
        " c.LLMResponse is p.LLMResponse, c.Tool is p.Tool)",
    )
    assert out == "True True True True"


def test_a_partial_framework_gets_the_shipped_classes_throughout(tmp_path: Path) -> None:
    partial = {**FAKE_FRAMEWORK, "framework/llm/provider.py": "class LLMResponse: pass\n"}
    out = _run_with(
        tmp_path,
        partial,
        "import pipeline.compat as c\nprint(c.FRAMEWORK_CLASSES, c.LLMResponse.__module__)",
    )
    assert out == "False pipeline.compat.shapes"


def test_importing_compat_and_making_a_provider_do_not_import_litellm(tmp_path: Path) -> None:
    out = _run_with(
        tmp_path,
        {},
        "import sys, pipeline.compat\npipeline.compat.LiteLLMProvider()\n"
        "print('litellm' in sys.modules)",
    )
    assert out == "False"
