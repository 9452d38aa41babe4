"""Targets and the fallback policy: validated when made, keys never shown, reasons classified."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline import Pipeline, Request
from pipeline.errors import (
    AuthenticationFailed,
    BadRequest,
    ContentFiltered,
    ContextWindowExceeded,
    EmptyResponse,
    InvalidRequest,
    MalformedResponse,
    MalformedToolCall,
    ModelNotFound,
    PipelineError,
    ProviderTimeout,
    ProviderUnavailable,
    ProviderUnreachable,
    RateLimited,
    RetriesExhausted,
    StreamInterrupted,
    TargetCoolingDown,
    UsageLimitExceeded,
)
from pipeline.fallbacks import DEFAULT_ON, FallbackPolicy, Target, fallback_reason
from stages.dumps import DumpFile, encode_dump

MSGS = [{"role": "user", "content": "hi"}]
KEY = "sk-fallback-key-0123456789"


@pytest.mark.parametrize(
    ("fallbacks", "field"),
    [
        ([{"model": ""}], "fallbacks[0].model"),
        ([{"model": "ok"}, {"model": "has space"}], "fallbacks[1].model"),
        ([{"model": "m", "api_base": "ftp://x"}], "fallbacks[0].api_base"),
        ([{"model": "m", "api_key": "sk bad\n"}], "fallbacks[0].api_key"),
        ([{"model": "m", "extra": {"stream": True}}], "fallbacks[0].extra.stream"),
        ([{"model": "m", "extra": {"temperature": "hot"}}], "fallbacks[0].extra.temperature"),
        ([{"model": "m", "priority": "first"}], "fallbacks[0].priority"),
        ([{"model": "m", "max_input_tokens": 0}], "fallbacks[0].max_input_tokens"),
        ([{"model": "m", "colour": "red"}], "fallbacks[0].colour"),
        ([{"api_base": "http://h:1"}], "fallbacks[0].model"),
        (["openai/gpt-4o"], "fallbacks[0]"),
        ("openai/gpt-4o", "fallbacks"),
    ],
)
def test_a_bad_fallback_is_refused_when_the_request_is_built_naming_it(
    fallbacks: Any, field: str
) -> None:
    with pytest.raises(InvalidRequest) as info:
        Request(model="m", messages=MSGS, fallbacks=fallbacks)
    assert info.value.field == field


def test_a_bad_pipeline_fallback_is_refused_when_the_pipeline_is_built() -> None:
    with pytest.raises(InvalidRequest) as info:
        Pipeline.default(fallbacks=[{"model": "ok"}, {"model": "m", "api_base": "nope"}])
    assert info.value.field == "fallbacks[1].api_base"


def test_dict_targets_become_targets() -> None:
    req = Request(
        model="m",
        messages=MSGS,
        fallbacks=[{"model": "b", "api_base": "http://h:8000/v1", "extra": {"seed": 3}}],
    )
    assert req.fallbacks == [Target(model="b", api_base="http://h:8000/v1", extra={"seed": 3})]


def test_keys_never_appear_in_reprs_or_dumps() -> None:
    target = Target(model="b", api_key=KEY, api_base="http://user:pw-secret@h:1/v1")
    req = Request(model="m", messages=MSGS, api_key="sk-primary-0123456789", fallbacks=[target])
    for shown in (repr(target), str(target), repr(req), str(req)):
        assert KEY not in shown and "pw-secret" not in shown
    assert "fallbacks=['b']" in repr(req)
    dumped = encode_dump(DumpFile(request=req, error_kind="empty"))
    assert KEY.encode() not in dumped and b"sk-primary" not in dumped
    clean = req.without_secrets()
    assert clean.api_key is None and clean.fallbacks == [msgspec_replace(target, api_key=None)]


def msgspec_replace(t: Target, **changes: Any) -> Target:
    import msgspec

    return msgspec.structs.replace(t, **changes)


def test_the_policy_checks_its_fields() -> None:
    with pytest.raises(ValueError, match="unknown reason 'sunspots'"):
        FallbackPolicy(on={"rate_limited", "sunspots"})
    with pytest.raises(ValueError, match="cooldown_after"):
        FallbackPolicy(cooldown_after=-1)
    with pytest.raises(ValueError, match="cooldown_s"):
        FallbackPolicy(cooldown_s=0)
    with pytest.raises(ValueError, match="order"):
        FallbackPolicy(order="random")  # type: ignore[arg-type]
    assert FallbackPolicy(on=["auth"]).on == frozenset({"auth"})


def exhausted(cause: PipelineError, reason: str = "transient") -> RetriesExhausted:
    return RetriesExhausted.after(cause, "gave up", attempts=4, reason=reason)


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (RateLimited("429"), "rate_limited"),
        (exhausted(RateLimited("429"), "rate_limited"), "rate_limited"),
        (ProviderUnavailable("503"), "unavailable"),
        (exhausted(ProviderUnavailable("dropped")), "unavailable"),
        (ProviderUnreachable("refused"), "unavailable"),
        (ProviderTimeout("stalled"), "timeout"),
        (EmptyResponse("nothing"), "empty"),
        (MalformedResponse("html"), "malformed"),
        (MalformedToolCall("bad", tool_name="t", tool_call_id="c", raw_arguments="{"), "malformed"),
        (ContextWindowExceeded("too long"), "context_window"),
        (ContentFiltered("refused"), "content_filtered"),
        (AuthenticationFailed("401"), "auth"),
        (ModelNotFound("404"), "not_found"),
        (BadRequest("400"), "bad_request"),
        (TargetCoolingDown("cool", model="m", seconds=1.0), "cooling_down"),
        (InvalidRequest("max_tokens", "bad"), None),
        (StreamInterrupted("cut", partial_text="a", transient=True), None),
        (UsageLimitExceeded("spent", limit="cost_usd", used=5.0, maximum=5.0), None),
        (exhausted(ProviderUnavailable("503"), "deadline"), None),
        (RuntimeError("a bug"), None),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_every_failure_has_its_reason(error: BaseException, reason: str | None) -> None:
    assert fallback_reason(error) == reason


def test_the_default_policy_moves_on_for_an_unwell_deployment_and_nothing_else() -> None:
    policy = FallbackPolicy()
    moves = {
        r
        for r in (
            "rate_limited",
            "unavailable",
            "timeout",
            "empty",
            "malformed",
            "context_window",
            "content_filtered",
            "auth",
            "not_found",
            "bad_request",
            "cooling_down",
        )
        if policy.moves_on(r)
    }
    assert moves == set(DEFAULT_ON) | {"cooling_down"}
    assert not policy.moves_on(None)
    assert FallbackPolicy(on=DEFAULT_ON | {"content_filtered"}).moves_on("content_filtered")
