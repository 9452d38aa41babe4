"""The ``llmpipe`` command: try a model, push a file of prompts through it, debug a failure.

    llmpipe run --model openai/gpt-4o-mini "Why is the sky blue?"
    llmpipe batch prompts.jsonl -o answers.jsonl --model openai/gpt-4o-mini
    llmpipe replay ~/.llmpipe/failed/20250101T120000_empty_1a2b3c4d.json
    llmpipe demo --trace console

It is an application, so (with ``pipeline.composition``) it is a composition
root: it may import ``stages`` and ``telemetry``; the library modules may not.
This module is the program (arguments, logging, tracing, exit statuses);
each command is a module of its own (``run``, ``batch.command``, ``replay``,
``demo``), the parser is ``parser``, the exit codes ``exits``, how events are
printed ``render``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import sys
from collections.abc import Coroutine, Iterator, Sequence
from typing import Any, Protocol, TextIO

from pipeline import errors
from pipeline.cli.exits import EXIT_CODES, exit_code
from pipeline.cli.parser import api_key_from, build_parser
from pipeline.cli.render import describe
from pipeline.secrets import format_exception, guard_logger, redact
from pipeline.stage import Instrument

__all__ = ["EXIT_CODES", "build_parser", "console", "describe", "exit_code", "main"]

log = guard_logger("llmpipe.cli")


#: at exit, how long --trace otlp may spend sending the last spans: enough for a
#: collector that answers, and no long wait for one that is not there
TRACE_FLUSH_S = 1.0


class _Handle(Protocol):
    def shutdown(self, timeout_s: float | None = None) -> None: ...

    def instrument(self) -> Instrument: ...


# --- main -----------------------------------------------------------------------------------


def console() -> None:
    """The program ``llmpipe``: ``main``, then exit without the interpreter's last
    garbage collections, which walk litellm's objects for about 2 s after the
    work is done (``gc.freeze``; files and the standard streams are still
    flushed and closed as usual)."""
    code = main()
    gc.freeze()
    raise SystemExit(code)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as exc:  # --help, --version, or a usage error (already printed)
            return exc.code if isinstance(exc.code, int) else EXIT_CODES["bad_input"]
        # given before or after the command (SUPPRESS keeps one from undoing the other)
        args.debug = getattr(args, "debug", False)
        args.trace = getattr(args, "trace", None)
        with _logging(args.debug):
            return _main(args)
    except KeyboardInterrupt:  # outside the event loop: starting up, or flushing traces
        print("\nllmpipe: interrupted", file=sys.stderr)
        return EXIT_CODES["cancelled"]


def _main(args: argparse.Namespace) -> int:
    out, err = sys.stdout, sys.stderr
    try:
        args.api_key = api_key_from(getattr(args, "api_key_env", None))
    except errors.InvalidRequest as exc:  # a usage error, said as argparse says them
        print(f"llmpipe: error: {exc.field}: {exc.problem}", file=err)
        return EXIT_CODES["bad_input"]
    try:
        tracing = _start_tracing(args.trace, out if args.command == "demo" else err)
        args.instrument = tracing.instrument() if tracing is not None else None
    except Exception as exc:
        print(f"llmpipe: error: cannot start --trace {args.trace}: {exc}", file=err)
        return EXIT_CODES["bad_input"]
    try:
        return asyncio.run(_command(args, out, err))
    except KeyboardInterrupt:
        print("\nllmpipe: interrupted", file=err)
        return EXIT_CODES["cancelled"]
    except BrokenPipeError:  # `llmpipe run ... | head`: the reader left; not an error
        _silence_stdout()
        return EXIT_CODES["ok"]
    except Exception as exc:
        return _fail(exc, args.debug, err)
    finally:
        if tracing is not None:
            tracing.shutdown(timeout_s=TRACE_FLUSH_S)


def _fail(exc: BaseException, debug: bool, err: TextIO) -> int:
    """One clear line (the traceback too with --debug), secrets masked; the exit status."""
    if debug:
        err.write(format_exception(exc))
    code = exit_code(exc)
    message = " ".join(redact(str(exc)).split())  # one line, whatever the provider sent
    if code == EXIT_CODES["internal"]:
        hint = "" if debug else " (run with --debug for the traceback)"
        print(f"llmpipe: internal error: {type(exc).__name__}: {message}{hint}", file=err)
        return code
    if code == EXIT_CODES["auth"]:
        message += (
            " (the key comes from the provider's usual variable, e.g. OPENAI_API_KEY,"
            " or from the one --api-key-env NAME names)"
        )
    print(f"llmpipe: error: {type(exc).__name__}: {message}", file=err)
    return code


@contextlib.contextmanager
def _logging(debug: bool) -> Iterator[None]:
    """Log lines as ``llmpipe: WARNING: ...``; quieter loggers restored afterwards
    (``main`` also runs in-process: tests, applications)."""
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="llmpipe: %(levelname)s: %(message)s",
    )
    # litellm's own chatter; retries, shown as events (run, demo, replay) or counted (batch)
    quiet = [] if debug else [logging.getLogger(n) for n in ("LiteLLM", "llmpipe.retry")]
    levels = [logger.level for logger in quiet]
    for logger in quiet:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(quiet, levels, strict=True):
            logger.setLevel(level)


def _start_tracing(exporter: str | None, out: TextIO) -> _Handle | None:
    """The SDK for ``--trace``, bound to the pipelines this command builds.

    Not installed globally: the command builds every pipeline it runs, so it
    hands them the handle's instrument, and running the command in-process
    (tests, an application calling ``main``) leaves OpenTelemetry's global
    state alone.
    """
    if exporter is None:
        return None
    from telemetry import setup

    handle: _Handle = setup(exporter, out=out, set_global=False)
    return handle


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _command(args: argparse.Namespace, out: TextIO, err: TextIO) -> Coroutine[Any, Any, int]:
    """The command asked for, one module each, imported only when it runs (fast start)."""
    if args.command == "run":
        from pipeline.cli.run import run

        return run(args, out, err)
    if args.command == "batch":
        from pipeline.cli.batch.command import batch

        return batch(args, err)
    if args.command == "replay":
        from pipeline.cli.replay import replay

        return replay(args, out)
    from pipeline.cli.demo import demo

    return demo(args, out, err)
