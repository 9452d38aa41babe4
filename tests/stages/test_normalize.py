from pipeline.events import Chunk, Request
from pipeline.profiles import resolve
from pipeline.request import ToolSpec
from stages.normalize import JSON_INSTRUCTION, normalize, normalize_request
from tests.helpers import make_request, run_stage

USER = {"role": "user", "content": "hi"}


def test_system_prompt_goes_first_and_system_messages_move_up() -> None:
    req = make_request(
        system="be brief",
        messages=[
            USER,
            {"role": "system", "content": "late rule"},
            {"role": "assistant", "content": "ok"},
        ],
    )
    out = normalize_request(req)
    assert out.messages == [
        {"role": "system", "content": "be brief"},
        {"role": "system", "content": "late rule"},
        USER,
        {"role": "assistant", "content": "ok"},
    ]
    assert out.system is None


def test_json_mode_appends_the_exact_instruction_to_the_system_prompt() -> None:
    out = normalize_request(make_request(system="You are helpful.", json_mode=True))
    assert out.messages[0] == {"role": "system", "content": "You are helpful." + JSON_INSTRUCTION}
    assert JSON_INSTRUCTION == "\n\nPlease respond with a valid JSON object."
    assert out.response_format is None
    assert out.json_mode is False


def test_json_mode_without_system_inserts_one() -> None:
    out = normalize_request(make_request(json_mode=True))
    assert out.messages[0] == {
        "role": "system",
        "content": "Please respond with a valid JSON object.",
    }
    assert out.messages[1] == USER


def test_json_mode_off_leaves_the_system_prompt_exactly() -> None:
    out = normalize_request(make_request(system="You are helpful."))
    assert out.messages[0]["content"] == "You are helpful."


def test_json_mode_with_content_parts_appends_to_the_last_text_part() -> None:
    sys_msg = {
        "role": "system",
        "content": [{"type": "text", "text": "A"}, {"type": "text", "text": "B"}],
    }
    out = normalize_request(make_request(messages=[sys_msg, USER], json_mode=True))
    assert out.messages[0]["content"] == [
        {"type": "text", "text": "A"},
        {"type": "text", "text": "B" + JSON_INSTRUCTION},
    ]


def test_ghost_assistant_messages_are_dropped_but_tool_call_turns_kept() -> None:
    call_turn = {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        ],
    }
    msgs = [
        USER,
        {"role": "assistant", "content": ""},
        {"role": "assistant"},
        {"role": "assistant", "content": None, "tool_calls": []},
        call_turn,
        {"role": "tool", "tool_call_id": "c", "content": "r"},
    ]
    out = normalize_request(make_request(messages=msgs))
    assert out.messages == [USER, call_turn, {"role": "tool", "tool_call_id": "c", "content": "r"}]


def test_reasoning_goes_back_only_to_providers_that_want_it() -> None:
    thought = {
        "role": "assistant",
        "content": None,
        "reasoning_content": "hmm",
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        ],
    }
    reply = {"role": "tool", "tool_call_id": "c1", "content": "42"}
    req = make_request(messages=[USER, thought, reply])
    stripped = normalize_request(req, resolve("openai/gpt-4o-mini"))
    assert stripped.messages == [
        USER,
        {k: v for k, v in thought.items() if k != "reasoning_content"},
        reply,
    ]
    assert req.messages[1]["reasoning_content"] == "hmm"  # the caller's request is untouched
    kept = normalize_request(req, resolve("deepseek/deepseek-reasoner"))
    assert kept.messages == [USER, thought, reply]


def test_tool_parameters_become_an_object_schema() -> None:
    tool = ToolSpec(
        name="get_weather",
        description="d",
        parameters={"properties": {"location": {"type": "string"}}},
    )
    out = normalize_request(make_request(tools=[tool, {"name": "noargs"}]))
    assert out.tools is not None
    assert out.tools[0].parameters == {
        "type": "object",
        "properties": {"location": {"type": "string"}},
        "required": [],
    }
    assert out.tools[1].parameters == {"type": "object", "properties": {}, "required": []}
    assert out.tools[0].to_openai() == {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "d",
            "parameters": out.tools[0].parameters,
        },
    }


def test_other_schema_keys_are_kept() -> None:
    params = {"type": "object", "properties": {}, "required": [], "additionalProperties": False}
    out = normalize_request(make_request(tools=[ToolSpec(name="t", parameters=params)]))
    assert out.tools is not None and out.tools[0].parameters == params


def test_normalize_is_idempotent() -> None:
    once = normalize_request(
        make_request(
            system="s", json_mode=True, messages=[USER, {"role": "assistant", "content": ""}]
        )
    )
    assert normalize_request(once) == once


async def test_stage_rewrites_requests_and_passes_other_events_in_order() -> None:
    chunk = Chunk(text="x")
    out = await run_stage(normalize(), [chunk, make_request(system="s"), chunk])
    assert out[0] == chunk and out[2] == chunk
    assert isinstance(out[1], Request)
    assert out[1].messages[0] == {"role": "system", "content": "s"}


def test_the_profile_shapes_the_base_and_leaves_routing_the_model_to_the_backend() -> None:
    from pipeline.profiles import resolve

    req = make_request(model="kimi/kimi-k2", api_base="https://api.kimi.com/coding/v1")
    out = normalize_request(req, resolve(req.model, req.api_base))
    assert (out.model, out.api_base) == ("kimi/kimi-k2", "https://api.kimi.com/coding")


def test_a_backend_that_needs_a_system_prompt_gets_one() -> None:
    from pipeline.profiles import resolve

    codex = resolve("openai/x", "https://chatgpt.com/backend-api/codex")
    out = normalize_request(make_request(api_base="https://chatgpt.com/backend-api/codex"), codex)
    assert out.messages[0] == {"role": "system", "content": "You are a helpful assistant."}
    mine = normalize_request(make_request(system="Mine."), codex)
    assert [m["content"] for m in mine.messages if m["role"] == "system"] == ["Mine."]
