"""What a request costs before it is sent, made cheaper without changing what it means.

- ``pipeline.request.derived``: the requests normalize and cache_tag make from a
  validated one are not validated again; what they make would pass
  validation all the same (checked here by validating it), and a request
  made any other way still is validated;
- ``profiles.resolve`` is cached (profiles are immutable), and the base-URL
  check is cached for URLs that passed: one that fails fails every time;
- ``Context.replace`` copies every field, as ``dataclasses.replace`` does.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import msgspec
import pytest

from pipeline.context import Context
from pipeline.errors import InvalidRequest
from pipeline.events import Request
from pipeline.profiles import resolve
from pipeline.request import derived
from pipeline.stage import PLAIN
from stages.cache_tag import tag_system
from stages.normalize import normalize_request

TOOLS = [{"name": "f", "description": "d", "parameters": {"type": "object"}}]
REQUESTS: list[dict[str, Any]] = [
    {"model": "openai/m", "messages": [{"role": "user", "content": "hi"}]},
    {
        "model": "anthropic/claude-x",
        "system": "be brief",
        "json_mode": True,
        "tools": TOOLS,
        "messages": [
            {"role": "system", "content": "first"},
            {"role": "user", "content": [{"type": "text", "text": "look"}]},
            {"role": "assistant", "content": ""},  # a ghost: dropped
            {"role": "assistant", "content": "ok", "reasoning_content": "hmm"},
        ],
    },
    {
        "model": "deepseek/deepseek-reasoner",
        "api_base": "https://api.deepseek.com/v1/",
        "messages": [{"role": "user", "content": "x"}],
    },
]


def validated(req: Request) -> Request:
    """``req`` made again the validating way (every field through the constructor)."""
    return Request(**{f: getattr(req, f) for f in req.__struct_fields__})


@pytest.mark.parametrize("fields", REQUESTS)
def test_what_normalize_and_cache_tag_derive_passes_validation(fields: dict[str, Any]) -> None:
    req = Request(**fields)
    profile = resolve(req.model, req.api_base)
    shaped = normalize_request(req, profile)
    tagged = tag_system(shaped)
    for out in (shaped, tagged):
        assert validated(out) == out


def test_derived_skips_validation_and_only_derived_does() -> None:
    req = Request(model="openai/m", messages=[{"role": "user", "content": "hi"}])
    # a change no stage would make, to show it is not checked again here
    odd = derived(req, messages=[{"role": "nobody", "content": 1}])
    assert odd.messages == [{"role": "nobody", "content": 1}]
    with pytest.raises(InvalidRequest, match=r"messages\[0\]"):
        msgspec.structs.replace(req, messages=[{"role": "nobody", "content": 1}])
    with pytest.raises(InvalidRequest, match=r"messages\[0\]"):  # and right after derived
        Request(model="openai/m", messages=[{"role": "nobody", "content": 1}])


def test_resolve_gives_the_same_profile_each_time() -> None:
    first = resolve("anthropic/claude-sonnet-4-5")
    assert resolve("anthropic/claude-sonnet-4-5") is first
    assert resolve("m", "http://127.0.0.1:8000/v1").name == "openai_compatible"
    assert resolve("m").name == "default"  # the same model without the base: not the cached one


def test_a_bad_base_url_is_refused_every_time_a_good_one_passes_every_time() -> None:
    for _ in range(3):
        with pytest.raises(InvalidRequest, match="api_base"):
            Request(model="m", messages=[{"role": "user", "content": "x"}], api_base="http://:99")
        ok = Request(model="m", messages=[{"role": "user", "content": "x"}], api_base="http://h:1")
        assert ok.api_base == "http://h:1"


def test_context_replace_copies_every_field_and_refuses_unknown_ones() -> None:
    req = Request(model="openai/m", messages=[{"role": "user", "content": "hi"}])
    ctx = Context(request=req, profile=resolve(req.model), instrument=PLAIN)
    ctx.meter = object()  # type: ignore[assignment]
    copy = ctx.replace(attempt=None, health=object())  # type: ignore[arg-type]
    for f in dataclasses.fields(Context):
        if f.name != "health":
            assert getattr(copy, f.name) is getattr(ctx, f.name), f.name
    assert copy.health is not None and ctx.health is None
    assert copy is not ctx
    with pytest.raises(TypeError, match="no field 'nope'"):
        ctx.replace(nope=1)
