"""Keeping API keys out of everything that leaves the library.

Three mechanisms, so that a key cannot leak by construction rather than by care:

- ``redact`` masks, in text and in bytes: the request's key, every key held by a
  call in flight (``hold``), the values of key-named environment variables
  (``*_API_KEY``, ``*_TOKEN``, ...: where litellm reads keys from), and anything
  shaped like a key or a bearer token (``sk-...``, ``sk-ant-oat...``, ``Bearer ...``,
  ``x-api-key: ...``). Error messages, log lines and span events go through it.
- ``scrub`` makes an exception safe to hand to any error reporter: its own message
  is redacted, and every exception it chains (``__cause__`` and ``__context__``,
  transitively) that is not one of ours is replaced by a ``ForeignError`` stand-in
  carrying the original type name, the redacted message and the traceback (code
  locations only). Reporters that walk the chain (logging with ``exc_info``,
  Sentry, OpenTelemetry exception events) then find nothing to leak.
- ``guard_logger`` adds a filter that redacts every record of a logger (message,
  arguments, exception text) before any handler sees it.

Only this module knows the patterns; ``pipeline.errors.redact`` is this ``redact``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import traceback
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import overload

__all__ = ["ForeignError", "RedactingFilter", "guard_logger", "hold", "redact", "scrub"]

#: a key shorter than this is not masked as a literal (it would garble ordinary words)
MIN_SECRET_LEN = 4

# The family prefix stays visible (it tells which kind of key it was), the rest goes.
_SHAPES = (
    r"\b(?P<p1>sk-(?:ant-(?:oat|api|admin)\d*-|ant-|proj-|or-v1-|svcacct-|admin-)?+)"
    r"[A-Za-z0-9_\-]{6,}+(?!\*)",
    r"\b(?P<p2>(?:gsk_|xai-|pplx-|nvapi-|hf_|csk-)(?=[A-Za-z0-9_\-]{16,}))[A-Za-z0-9_\-]+",
    r"\b(?P<p3>AIza)[A-Za-z0-9_\-]{30,}",
    r"(?P<p4>\b(?:Bearer|Basic)\s+)[A-Za-z0-9\-._~+/]{6,}=*",
    r"(?P<p5>(?:\b(?:x-)?api[_-]?key|\baccess[_-]?token|[?&]key)[\"']?\s*[:=]\s*[\"']?)"
    r"(?!\*\*\*)[^\s\"',;&}\]]{4,}",
    r"(?P<p6>://[^/\s:@]+:)(?!\*\*\*@)[^/\s@]+(?=@)",  # a password in a URL
)
_TEXT_SHAPES = re.compile("|".join(_SHAPES), re.IGNORECASE)
_BYTE_SHAPES = re.compile("|".join(_SHAPES).encode(), re.IGNORECASE)
_ENV_SECRET = re.compile(r"(?:_API_KEY|_KEY|_TOKEN|_SECRET|_PASSWORD)$", re.IGNORECASE)
MASK = "***"

_held: Counter[str] = Counter()  # keys of calls in flight (process-wide, like logging)
_held_lock = threading.Lock()


@contextlib.contextmanager
def hold(secret: str | None) -> Iterator[None]:
    """Mask ``secret`` everywhere (logs of any library included) while the block runs."""
    if not secret or len(secret) < MIN_SECRET_LEN:
        yield
        return
    with _held_lock:
        _held[secret] += 1
    try:
        yield
    finally:
        with _held_lock:
            _held[secret] -= 1
            if _held[secret] <= 0:
                del _held[secret]


def _secrets(extra: str | None) -> list[str]:
    found = [extra] if extra and len(extra) >= MIN_SECRET_LEN else []
    with _held_lock:
        found.extend(_held)
    found.extend(
        value
        for name, value in os.environ.items()
        if len(value) >= 8 and _ENV_SECRET.search(name) and not value.isdigit()
    )
    # longest first, so a key that contains another is masked whole
    return sorted(set(found), key=len, reverse=True)


def _keep_prefix(m: re.Match[str]) -> str:
    prefix = next((g for g in m.groups() if g is not None), "")
    return prefix + MASK


def _keep_prefix_bytes(m: re.Match[bytes]) -> bytes:
    prefix = next((g for g in m.groups() if g is not None), b"")
    return prefix + MASK.encode()


@overload
def redact(text: str, api_key: str | None = None) -> str: ...
@overload
def redact(text: bytes, api_key: str | None = None) -> bytes: ...


def redact(text: str | bytes, api_key: str | None = None) -> str | bytes:
    """``text`` with every secret masked (see the module docstring); bytes stay bytes."""
    secrets = _secrets(api_key)
    if isinstance(text, bytes):
        for secret in secrets:
            text = text.replace(secret.encode("utf-8", "replace"), MASK.encode())
        return _BYTE_SHAPES.sub(_keep_prefix_bytes, text)
    for secret in secrets:
        text = text.replace(secret, MASK)
    return _TEXT_SHAPES.sub(_keep_prefix, text)


# --- exceptions ---------------------------------------------------------------------------


class ForeignError(Exception):
    """Stands in, inside a chain, for an exception from another library.

    ``type_name`` is the original's qualified class name; the message is its
    redacted text; the traceback is the original's (code locations, no values).
    """

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(f"{type_name}: {message}" if message else type_name)
        self.type_name = type_name


def _is_ours(exc: BaseException) -> bool:
    # Ours: raised by llmpipe's packages, or a class of the pipeline.errors tree (a
    # cause class a user's own stage defines is kept as it is, its text redacted).
    if isinstance(exc, ForeignError):
        return True
    cls = type(exc)
    if cls.__module__.split(".", 1)[0] in ("pipeline", "stages", "telemetry"):
        return True
    return any(c.__module__ == "pipeline.errors" for c in cls.__mro__)


def _qualname(exc: BaseException) -> str:
    cls = type(exc)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__name__}"


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # a broken __str__ must not break error handling
        return ""


def stand_in(exc: BaseException, secret: str | None = None) -> ForeignError:
    """A redacted ``ForeignError`` for ``exc``, its own chain replaced the same way."""
    return _stand_in(exc, secret, {})


def _stand_in(
    exc: BaseException, secret: str | None, memo: dict[int, ForeignError]
) -> ForeignError:
    if isinstance(exc, ForeignError):
        return exc
    if id(exc) in memo:  # a chain can loop back on itself
        return memo[id(exc)]
    proxy = ForeignError(_qualname(exc), redact(_safe_str(exc), secret))
    memo[id(exc)] = proxy
    proxy.__traceback__ = exc.__traceback__
    for link in ("__cause__", "__context__"):
        linked = getattr(exc, link)
        if linked is not None:
            setattr(proxy, link, _stand_in(linked, secret, memo))
    proxy.__suppress_context__ = exc.__suppress_context__  # setting __cause__ changed it
    return proxy


def scrub(exc: BaseException, secret: str | None = None) -> BaseException:
    """Make ``exc`` and its whole chain safe to print or report; returns ``exc``.

    Below an exception of ours, a foreign link is replaced by its stand-in (it
    came from a library we called: its attributes may hold request headers).
    An exception that is not ours (the caller's own stage raised it) keeps its
    identity and its chain; only secrets in their messages are masked.
    Idempotent, cheap on an already-scrubbed chain, and never raises.
    """
    with contextlib.suppress(Exception):  # scrubbing must never replace the real error
        _scrub(exc, secret)
    return exc


def _scrub(exc: BaseException, secret: str | None) -> None:
    memo: dict[int, ForeignError] = {}
    todo = [exc]
    seen: set[int] = set()
    while todo:
        node = todo.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        _redact_in_place(node, secret)
        ours = _is_ours(node)
        suppress = node.__suppress_context__
        for link in ("__cause__", "__context__"):
            linked = getattr(node, link)
            if linked is None:
                continue
            if ours and not _is_ours(linked):
                setattr(node, link, _stand_in(linked, secret, memo))
            else:
                todo.append(linked)
        node.__suppress_context__ = suppress


def _redact_in_place(exc: BaseException, secret: str | None) -> None:
    """Redact the string arguments (and notes, and a ``message`` attribute) of ``exc``."""
    args = exc.args
    if any(isinstance(a, str | bytes) for a in args):
        clean = tuple(redact(a, secret) if isinstance(a, str | bytes) else a for a in args)
        if clean != args:
            exc.args = clean
    message = getattr(exc, "message", None)
    if isinstance(message, str):
        clean_message = redact(message, secret)
        if clean_message != message:
            with contextlib.suppress(AttributeError, TypeError):
                exc.message = clean_message  # type: ignore[attr-defined]
    notes = getattr(exc, "__notes__", None)
    if isinstance(notes, list):
        exc.__notes__ = [redact(n, secret) if isinstance(n, str) else n for n in notes]


def format_exception(exc: BaseException, secret: str | None = None) -> str:
    """The traceback of ``exc`` (its chain included) as text, redacted."""
    scrub(exc, secret)
    return redact("".join(traceback.format_exception(exc)), secret)


# --- logging --------------------------------------------------------------------------------


class RedactingFilter(logging.Filter):
    """Redacts a record's message, arguments and exception text before handlers see it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string is logging's problem, not ours
            return True
        clean = redact(message)
        if record.exc_info and record.exc_info[1] is not None:
            text = "".join(traceback.format_exception(record.exc_info[1]))
            record.exc_text = redact(text)
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        return True


_FILTER = RedactingFilter()


def guard_logger(name: str) -> logging.Logger:
    """``logging.getLogger(name)`` with the redacting filter on it (added once)."""
    logger = logging.getLogger(name)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    return logger


def guard_loggers(names: Iterable[str]) -> None:
    """Guard several loggers (a library's, after importing it)."""
    for name in names:
        guard_logger(name)
