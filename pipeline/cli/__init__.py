"""The ``llmpipe`` command: try a model, push a file of prompts through it, debug a failure.

    llmpipe run --model openai/gpt-4o-mini "Why is the sky blue?"
    llmpipe batch prompts.jsonl -o answers.jsonl --model openai/gpt-4o-mini
    llmpipe replay ~/.llmpipe/failed/20250101T120000_empty_1a2b3c4d.json
    llmpipe demo --trace console

It is an application, so (with ``pipeline.composition``) it is a composition
root: it may import ``stages`` and ``telemetry``; the library modules may not.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from pipeline import errors
from pipeline.cli.batch.input import Defaults
from pipeline.cli.exits import EXIT_CODES, exit_code
from pipeline.cli.parser import api_key_from, build_parser
from pipeline.cli.render import RunView, describe, isatty, to_json
from pipeline.events import encode
from pipeline.pipeline import Pipeline
from pipeline.policy import RetryPolicy
from pipeline.request import Request
from pipeline.secrets import format_exception, guard_logger, redact
from pipeline.stage import Instrument

if TYPE_CHECKING:
    from pipeline.cli.batch.runner import BatchConfig

__all__ = ["EXIT_CODES", "build_parser", "console", "describe", "exit_code", "main"]

log = guard_logger("llmpipe.cli")


#: how long loading the provider library may take before a terminal is told
LOADING_NOTICE_S = 1.0

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
    commands: dict[str, Callable[[], Coroutine[Any, Any, int]]] = {
        "run": lambda: _run(args, out, err),
        "batch": lambda: _batch(args, err),
        "replay": lambda: _replay(args, out),
        "demo": lambda: _demo(args, out, err),
    }
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
        return asyncio.run(commands[args.command]())
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


async def _load_provider(err: TextIO) -> None:
    """Import litellm before the first call (seconds, the first time); a terminal is
    told when it takes more than ``LOADING_NOTICE_S``, on a line erased afterwards."""
    from stages.dispatch.litellm import import_litellm

    loading = asyncio.ensure_future(import_litellm())
    try:
        done, _ = await asyncio.wait({loading}, timeout=LOADING_NOTICE_S)
        if done or not isatty(err):
            await loading
            return
        err.write("llmpipe: loading the provider library…")
        err.flush()
        try:
            await loading
        finally:
            err.write("\r\x1b[2K")
            err.flush()
    finally:
        loading.cancel()  # nothing when it is done; else the waiter only, not the import


def _policy(retries: int | None) -> RetryPolicy | None:
    if retries is None:
        return None
    return RetryPolicy(rate_limit_retries=retries, transient_retries=retries, empty_retries=retries)


def _pipeline(args: argparse.Namespace, **options: Any) -> Pipeline:
    """The default pipeline, with ``--retries`` and ``--trace`` applied."""
    policy = _policy(getattr(args, "retries", None))
    if policy is not None:
        options.setdefault("policy", policy)
    if getattr(args, "instrument", None) is not None:
        options["instrument"] = args.instrument
    return Pipeline.default(**options)


# --- run --------------------------------------------------------------------------------------


async def _run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    if not prompt.strip():
        raise errors.InvalidRequest("prompt", "is empty")
    request = Request(
        model=args.model,
        messages=[{"role": "user", "content": prompt}],
        system=args.system,
        json_mode=args.json,
        max_tokens=args.max_tokens,
        api_base=args.api_base,
        api_key=args.api_key,
    )
    await _load_provider(err)  # first, so neither the timings nor --trace count the import
    view = RunView(out, err)
    started = time.monotonic()
    try:
        async with _pipeline(args) as pipe, pipe.stream(request) as events:
            async for ev in events:
                view.show(ev)
    finally:
        view.end_line()
    view.summary(time.monotonic() - started)
    return 0


# --- batch ------------------------------------------------------------------------------------


async def _batch(args: argparse.Namespace, err: TextIO) -> int:
    from pipeline.cli.batch.runner import BatchConfig

    config = BatchConfig(
        input=args.input,
        output=Path(args.output),
        defaults=Defaults(
            model=args.model,
            system=args.system,
            max_tokens=args.max_tokens,
            json_mode=args.json,
            api_base=args.api_base,
            api_key=args.api_key,
        ),
        concurrency=args.concurrency,
        retry_failed=args.retry_failed,
        strict=args.strict,
        progress=not args.quiet,
        progress_interval_s=args.progress_every,
    )
    if args.instrument is None:
        return await _batch_run(args, config, err, None)
    from telemetry.propagation import batch_trace

    # one trace root for the run: every call's span, here or in a Ray worker, is under it
    with batch_trace(args.instrument, f"batch {args.input}") as traced:
        return await _batch_run(args, config, err, traced.summary)


async def _batch_run(
    args: argparse.Namespace,
    config: BatchConfig,
    err: TextIO,
    summary: Callable[[dict[str, int]], None] | None,
) -> int:
    from pipeline.cli.batch.runner import run_batch

    if args.engine == "local":
        async with _pipeline(args) as pipe:
            return await run_batch(
                config, pipe, err=err, prepare=lambda: _load_provider(err), summary=summary
            )
    from pipeline.cli.batch.ray_engine import RayEngine, WorkerSpec

    spec = WorkerSpec(policy=_policy(args.retries), trace=args.trace)
    engine = RayEngine(
        spec,
        workers=args.workers,
        concurrency=args.concurrency,
        address=args.ray_address,
        instrument=args.instrument,
    )
    try:
        pipe = _pipeline(args)  # unused by the Ray engine: each worker builds its own
        return await run_batch(
            config, pipe, err=err, prepare=engine.start, engine=engine, summary=summary
        )
    finally:
        await engine.close()


# --- replay -----------------------------------------------------------------------------------


async def _replay(args: argparse.Namespace, out: TextIO) -> int:
    from stages.dispatch.replay import replay_dispatch
    from stages.dumps import BadDump, read_dump
    from stages.retry import cause_of

    try:
        dump = read_dump(args.dump)
    except OSError as exc:
        raise errors.InvalidRequest(
            "DUMP.json", f"cannot read {args.dump}: {exc.strerror}"
        ) from None
    except BadDump as exc:
        raise errors.InvalidRequest("DUMP.json", f"{args.dump}: {exc}") from None
    req = dump.request
    tools = ", ".join(t.name for t in req.tools) if req.tools else "none"
    out.write(
        f"replaying {args.dump}\n"
        f"  recorded: {dump.error_kind} on attempt {dump.attempt}"
        f"{' at ' + dump.time if dump.time else ''}: {dump.error}\n"
        f"  request: {req.model}, {len(req.messages)} messages, tools: {tools},"
        f" max_tokens {req.max_tokens}, ~{dump.estimated_tokens} tokens\n"
        f"  {len(dump.chunks)} chunks recorded\n"
    )
    if args.show_request:
        out.write(to_json(json.loads(encode(req))) + "\n")
    if args.chunks:
        for chunk in dump.chunks:
            out.write(f"  chunk {encode(chunk).decode()}\n")
    if not dump.chunks:
        out.write(
            "nothing to replay: the failure came before the stream (an HTTP error such as"
            " a 429), so no chunk was received.\n"
        )
        return EXIT_CODES.get(dump.error_kind, EXIT_CODES["provider"])
    no_retries = RetryPolicy(rate_limit_retries=0, transient_retries=0, empty_retries=0)
    replaying = _pipeline(args, policy=no_retries).replace("dispatch", replay_dispatch(dump.chunks))
    out.write("events:\n")
    try:
        async with replaying as pipe, pipe.stream(req) as events:
            async for ev in events:
                out.write((encode(ev).decode() if args.json else "  " + describe(ev)) + "\n")
    except errors.PipelineError as exc:
        same = cause_of(exc) == dump.error_kind
        verdict = "reproduces the recorded failure" if same else "differs from the recorded failure"
        out.write(
            f"the replay raised {type(exc).__name__}: {exc}\n  ({verdict}: {dump.error_kind})\n"
        )
        return exit_code(exc)
    out.write(f"the replay finished without an error (recorded: {dump.error_kind}).\n")
    return EXIT_CODES["ok"]


# --- demo -------------------------------------------------------------------------------------


async def _demo(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from pipeline.cli.demo import POLICY, run_demo

    async with _pipeline(args, policy=POLICY) as pipe:
        return await run_demo(out, pipe=pipe, prepare=lambda: _load_provider(err))
