"""Redaction, chain scrubbing and the logging filter, without a network."""

from __future__ import annotations

import logging
import traceback

import pytest

from pipeline.errors import ProviderUnavailable
from pipeline.secrets import ForeignError, guard_logger, hold, redact, scrub, stand_in
from stages.dispatch.litellm.faults import chain


@pytest.mark.parametrize(
    ("text", "kept", "gone"),
    [
        ("Incorrect API key provided: Bearer sk-abcdefghijkl", "Bearer ***", "abcdefghijkl"),
        ("token sk-ant-oat01-ABCDEFGHIJKLMNOP expired", "sk-ant-oat01-***", "ABCDEFGHIJKLMNOP"),
        ("key sk-ant-api03-ABCDEFGHIJKLMNOP", "sk-ant-api03-***", "ABCDEFGHIJKLMNOP"),
        ("key sk-proj-AbCdEf0123456789", "sk-proj-***", "AbCdEf0123456789"),
        ("groq gsk_abcdefghijklmnopqrstuvwx", "gsk_***", "abcdefghijklmnopqrst"),
        ("x-api-key: canary123456", "x-api-key: ***", "canary123456"),
        ("api_key='zzz-canary-1234'", "api_key='***'", "zzz-canary-1234"),
        (
            "https://g.example/v1?key=AIzaSyA1234567890abcdefghijklmnopq&x=1",
            "key=***",
            "AIzaSyA1234",
        ),
        ("https://user:hunter2@llm.example:8443/v1", "user:***@", "hunter2"),
    ],
)
def test_key_shapes_are_masked(text: str, kept: str, gone: str) -> None:
    out = redact(text)
    assert kept in out and gone not in out


def test_ordinary_words_are_left_alone() -> None:
    text = "task-1234567890 uses sk-learn; a Bearer of news; keyboard=qwerty"
    assert redact(text) == text


def test_the_request_key_is_masked_whatever_its_shape() -> None:
    assert redact("quoted: canary-7f3a9 and more", "canary-7f3a9") == "quoted: *** and more"


def test_bytes_stay_bytes() -> None:
    body = b'{"error": "sk-ant-oat01-ABCDEFGHIJKLMNOP is \xff bad", "k": "canaryKEY99"}'
    out = redact(body, "canaryKEY99")
    assert isinstance(out, bytes)
    assert b"ABCDEFGHIJKLMNOP" not in out and b"canaryKEY99" not in out and b"\xff" in out


def test_keys_held_by_calls_in_flight_and_from_the_environment_are_masked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SOME_PROVIDER_API_KEY", "env-canary-0042")
    with hold("held-canary-0042"):
        assert redact("a held-canary-0042 b env-canary-0042") == "a *** b ***"
    assert redact("a held-canary-0042") == "a held-canary-0042"  # released


def test_redaction_is_idempotent() -> None:
    once = redact("Bearer sk-abcdefghijkl and sk-ant-oat01-ABCDEFGHIJKLMNOP")
    assert redact(once) == once


def raise_chain(secret: str) -> ProviderUnavailable:
    """Our error, raised inside the except block of a foreign one that quotes the key."""
    try:
        try:
            raise ConnectionError(f"reset by peer; header Authorization: Bearer {secret}")
        except ConnectionError as inner:
            raise RuntimeError(f"litellm says {secret}") from inner
    except RuntimeError:
        try:
            raise ProviderUnavailable(f"unavailable ({secret})") from None
        except ProviderUnavailable as ours:
            return ours


def walk(exc: BaseException) -> list[BaseException]:
    return list(chain(exc))


def test_scrub_replaces_foreign_links_and_redacts_ours() -> None:
    secret = "canary-secret-9876"
    exc = raise_chain(secret)
    # before: the key is reachable through __context__, though hidden from printing
    assert any(secret in str(node) for node in walk(exc))
    scrub(exc, secret)
    nodes = walk(exc)
    assert not any(secret in str(node) or secret in repr(node.args) for node in nodes)
    assert secret not in "".join(traceback.format_exception(exc))
    stand = exc.__context__
    assert isinstance(stand, ForeignError) and stand.type_name == "RuntimeError"
    assert isinstance(stand.__cause__, ForeignError)
    assert stand.__cause__.type_name == "ConnectionError"
    assert exc.__suppress_context__  # "from None" is kept
    assert str(exc) == "unavailable (***)"


def test_a_foreign_exception_keeps_its_identity_and_chain() -> None:
    secret = "canary-secret-1234"
    cause = KeyError("harmless")
    top = ValueError(f"user code saw {secret}")
    top.__cause__ = cause
    scrub(top, secret)
    assert top.__cause__ is cause
    assert str(top) == "user code saw ***"


def test_stand_in_survives_a_chain_that_loops() -> None:
    a, b = ValueError("a sk-abcdefghijkl"), TypeError("b")
    a.__context__, b.__context__ = b, a
    proxy = stand_in(a)
    assert "abcdefghijkl" not in str(proxy)
    assert proxy.__context__ is not None and proxy.__context__.__context__ is proxy


def test_guarded_loggers_redact_message_args_and_exception_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = guard_logger("llmpipe.test_secrets")
    caplog.set_level(logging.DEBUG, logger="llmpipe.test_secrets")
    secret = "sk-proj-Canary0123456789"
    try:
        raise RuntimeError(f"boom Bearer {secret}")
    except RuntimeError:
        log.exception("failed with %s", secret)
    [record] = caplog.records
    assert "Canary0123456789" not in record.getMessage()
    assert "Canary0123456789" not in (record.exc_text or "")
    assert "Canary0123456789" not in caplog.text
    assert "RuntimeError" in caplog.text  # the traceback is still there, masked


def test_guard_logger_adds_its_filter_once() -> None:
    log = guard_logger("llmpipe.test_secrets.once")
    guard_logger("llmpipe.test_secrets.once")
    assert len(log.filters) == 1
