"""The ``llmpipe`` command: try a model, push a file of prompts through it, debug a failure.

    llmpipe run --model openai/gpt-4o-mini "Why is the sky blue?"
    llmpipe batch prompts.jsonl -o answers.jsonl --model openai/gpt-4o-mini
    llmpipe replay ~/.llmpipe/failed/20250101T120000_empty_1a2b3c4d.json
    llmpipe demo --trace console

It is an application, so (with ``pipeline.default``) it is a composition
root: it may import ``stages`` and ``telemetry``; the library modules may not.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
import textwrap
import time
import traceback
from collections.abc import Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, TextIO

from pipeline import errors
from pipeline.batch_io import Defaults
from pipeline.cli_exits import EXIT_CODES, EXIT_HELP, exit_code
from pipeline.core import Pipeline
from pipeline.events import (
    Event,
    Finish,
    ReasoningDelta,
    Retrying,
    TextDelta,
    TextEnd,
    ToolCall,
    encode,
)
from pipeline.policy import RetryPolicy
from pipeline.request import Request
from pipeline.stage import Instrument

__all__ = ["EXIT_CODES", "build_parser", "describe", "exit_code", "main"]

EXAMPLES = """examples:
  llmpipe run --model openai/gpt-4o-mini "Why is the sky blue?"
  echo "Summarise this" | llmpipe run --model anthropic/claude-haiku-4-5 -
  llmpipe run --model openai/local --api-base http://localhost:8000/v1 "hi"
  llmpipe batch prompts.jsonl -o answers.jsonl --model openai/gpt-4o-mini --concurrency 16
  llmpipe replay ~/.llmpipe/failed/20250101T120000_empty_1a2b3c4d.json
  llmpipe demo --trace console

keys come from the provider's usual variable (OPENAI_API_KEY, ANTHROPIC_API_KEY, ...);
LLMPIPE_DUMP_DIR turns on failed-request dumps; OTEL_* configure --trace otlp.
"""

RUN_EXAMPLES = """examples:
  llmpipe run --model openai/gpt-4o-mini --system "Be brief." "Why is the sky blue?"
  git diff | llmpipe run -m anthropic/claude-haiku-4-5 -s "Review this diff." -
  llmpipe run -m openai/local --api-base http://localhost:8000/v1 --json "three colours"

The answer streams to stdout; reasoning ([thinking]), tool calls, retries and
the final usage line go to stderr, so `> answer.txt` keeps only the answer.
"""

BATCH_EXAMPLES = """input (one JSON object per line; an id, and a prompt or messages):
  {"id": "q1", "prompt": "Why is the sky blue?"}
  {"id": "q2", "messages": [{"role": "user", "content": "hi"}], "model": "openai/gpt-4o",
   "system": "Be brief.", "max_tokens": 200, "temperature": 0.2, "json": false}
  per-line overrides: model, system, max_tokens, json, api_base, temperature, tools,
  response_format, extra

output (one JSON line per id, written as soon as it finishes, in finishing order):
  {"id": "q1", "text": "...", "reasoning": "", "tool_calls": [], "stop_reason": "stop",
   "usage": {"input_tokens": 12, "output_tokens": 80, "cached_tokens": 0,
   "source": "provider"}, "model": "...", "attempts": 1, "error": null, "line": 1,
   "elapsed_s": 1.234}
  a failed id has "error": {"kind": "rate_limited", "type": "RetriesExhausted",
  "message": "..."}

resume: run the same command again. Ids with a result are skipped; ids that
failed are skipped too unless --retry-failed (their new line replaces the
old). Ctrl-C or SIGTERM stops cleanly (exit 130 / 143); even after SIGKILL
the output holds only whole lines.

example:
  llmpipe batch prompts.jsonl -o answers.jsonl --model openai/gpt-4o-mini --concurrency 16
  llmpipe batch prompts.jsonl -o answers.jsonl --model openai/gpt-4o-mini --retry-failed
  llmpipe batch prompts.jsonl -o answers.jsonl -m openai/gpt-4o-mini --engine ray --workers 4 -c 64

LLMPIPE_GATE_URL=redis://host:6379/0 shares each endpoint's 429 waits (and rate) between
every process and Ray worker that uses the same Redis.
"""

REPLAY_EXAMPLES = """Dumps are written when LLMPIPE_DUMP_DIR (or RetryPolicy.dump_dir) is set:
one JSON file per rate-limited or empty answer, with the request (never the
API key) and the chunks received. Replay feeds those chunks through the real
pipeline (reassemble, usage, empty_check, retry with no retries) instead of
calling the provider, and prints each event and the error it ends with.

example:
  LLMPIPE_DUMP_DIR=~/.llmpipe/failed llmpipe batch prompts.jsonl -o out.jsonl -m openai/gpt-4o
  llmpipe replay ~/.llmpipe/failed/20250101T120000_empty_1a2b3c4d.json
"""

DEMO_EXAMPLES = """example:
  llmpipe demo
  llmpipe demo --trace console     # and the span tree of every call
"""

log = logging.getLogger("llmpipe.cli")


class _Handle(Protocol):
    def shutdown(self) -> None: ...

    def instrument(self) -> Instrument: ...


# --- the parser ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show tracebacks and debug logs",
    )
    common.add_argument(
        "--trace",
        choices=("otlp", "console"),
        default=argparse.SUPPRESS,
        help="trace every call: otlp (to the collector the OTEL_* variables name, e.g. Jaeger)"
        " or console (a span tree per call on stderr)",
    )
    parser = argparse.ArgumentParser(
        prog="llmpipe",
        description=textwrap.fill(
            "Robust, observable LLM calls through LiteLLM, as a pipeline of stages:"
            " try a model (run), push a file of prompts through it (batch), debug a failed"
            " request offline (replay), or watch it all work without keys (demo).",
            79,
        ),
        epilog=EXAMPLES + "\n" + EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str, description: str, epilog: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=help,
            description=textwrap.fill(description, 79),
            epilog=epilog + "\n" + EXIT_HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            parents=[common],
        )

    run = command(
        "run",
        "stream one answer to stdout",
        "Send one prompt and stream the answer to stdout as it arrives.",
        RUN_EXAMPLES,
    )
    run.add_argument("prompt", metavar="PROMPT", help="the user message, or - to read stdin")
    _request_options(run, model_required=True)
    _retry_option(run)

    batch = command(
        "batch",
        "run a JSONL file of requests, N at a time; resumable",
        "Run every request of a JSONL file through one pipeline, N at a time, writing each"
        " result to OUT as one JSON line as soon as it finishes. Re-run to resume.",
        BATCH_EXAMPLES,
    )
    batch.add_argument("input", metavar="IN.jsonl", help="the requests, one per line (- for stdin)")
    batch.add_argument(
        "-o", "--output", required=True, metavar="OUT.jsonl", help="where results go (appended)"
    )
    _request_options(batch, model_required=False)
    batch.add_argument(
        "-c",
        "--concurrency",
        type=_positive_int,
        default=8,
        metavar="N",
        help="requests in flight at once (default 8)",
    )
    batch.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="where the calls run: local (this process, the default) or ray (a pool of"
        " Ray actors; llmpipe[ray]); see README 'Scaling out'",
    )
    batch.add_argument(
        "--workers",
        type=_positive_int,
        default=4,
        metavar="N",
        help="--engine ray: actors in the pool (default 4); --concurrency is shared by all",
    )
    batch.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="--engine ray: join this Ray cluster (e.g. auto, or head:6379); default: start"
        " a local one on 127.0.0.1 for this run",
    )
    batch.add_argument(
        "--retry-failed",
        action="store_true",
        help="also run the ids whose earlier result is an error",
    )
    batch.add_argument(
        "--strict",
        action="store_true",
        help="stop before sending anything if any input line is bad (default: skip it)",
    )
    batch.add_argument(
        "-q", "--quiet", action="store_true", help="no progress display (errors still show)"
    )
    batch.add_argument(
        "--progress-every",
        type=float,
        default=5.0,
        metavar="S",
        help="seconds between progress lines when stderr is not a terminal (default 5)",
    )
    _retry_option(batch)

    replay = command(
        "replay",
        "re-run a failed-request dump offline and print its events",
        "Replay a failed-request dump through the pipeline, with the recorded chunks in"
        " place of the provider: a production failure, debugged offline.",
        REPLAY_EXAMPLES,
    )
    replay.add_argument(
        "dump", metavar="DUMP.json", help="a dump file (format llmpipe.failed-request/1)"
    )
    replay.add_argument("--json", action="store_true", help="print events as JSON lines")
    replay.add_argument("--chunks", action="store_true", help="also print the recorded chunks")
    replay.add_argument(
        "--show-request", action="store_true", help="also print the recorded request as JSON"
    )

    command(
        "demo",
        "a scripted session against the built-in fake provider (offline)",
        "Start the built-in fake provider on 127.0.0.1 and run a short scripted session"
        " through the full default pipeline: streamed text, a tool call, a 429 with"
        " retry-after-ms handled by the retry stage, an empty answer retried."
        " No keys, no network.",
        DEMO_EXAMPLES,
    )
    return parser


def _request_options(p: argparse.ArgumentParser, *, model_required: bool) -> None:
    what = "" if model_required else " (default for lines without a model)"
    p.add_argument(
        "--model", "-m", required=model_required, help="litellm model, e.g. openai/gpt-4o" + what
    )
    p.add_argument("--system", "-s", help="system prompt")
    p.add_argument("--json", action="store_true", help="ask for a JSON object answer")
    p.add_argument(
        "--max-tokens",
        type=int,
        default=4096,
        metavar="N",
        help="answer budget (default 4096)",
    )
    p.add_argument("--api-base", metavar="URL", help="base URL of any OpenAI-compatible server")


def _retry_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--retries",
        type=int,
        metavar="N",
        help="retries per cause (default: 10 for rate limits, 3 for transient errors and"
        " empty answers; 0 disables retrying)",
    )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


# --- main -----------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error (already printed)
        return exc.code if isinstance(exc.code, int) else EXIT_CODES["bad_input"]
    # given before or after the command (SUPPRESS keeps one from undoing the other)
    args.debug = getattr(args, "debug", False)
    args.trace = getattr(args, "trace", None)
    with _logging(args.debug):
        return _main(args)


def _main(args: argparse.Namespace) -> int:
    out, err = sys.stdout, sys.stderr
    commands: dict[str, Callable[[], Coroutine[Any, Any, int]]] = {
        "run": lambda: _run(args, out, err),
        "batch": lambda: _batch(args, err),
        "replay": lambda: _replay(args, out),
        "demo": lambda: _demo(args, out),
    }
    try:
        tracing = _start_tracing(args.trace, out if args.command == "demo" else err)
        args.instrument = tracing.instrument() if tracing is not None else None
    except Exception as exc:
        print(f"llmpipe: error: cannot start --trace {args.trace}: {exc}", file=err)
        return EXIT_CODES["bad_input"]
    try:
        return asyncio.run(_closing_clients(commands[args.command]()))
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
            tracing.shutdown()


def _fail(exc: BaseException, debug: bool, err: TextIO) -> int:
    """One clear line (the traceback too with --debug); the exit status."""
    if debug:
        traceback.print_exception(exc, file=err)
    code = exit_code(exc)
    if code == EXIT_CODES["internal"]:
        hint = "" if debug else " (run with --debug for the traceback)"
        print(f"llmpipe: internal error: {type(exc).__name__}: {exc}{hint}", file=err)
    else:
        print(f"llmpipe: error: {type(exc).__name__}: {exc}", file=err)
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


async def _closing_clients(work: Coroutine[Any, Any, int]) -> int:
    """Run a command, then close litellm's pooled connections before the loop ends."""
    from stages.dispatch import close_clients

    try:
        return await work
    finally:
        await close_clients()


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _policy(retries: int | None) -> RetryPolicy | None:
    if retries is None:
        return None
    n = max(retries, 0)
    return RetryPolicy(rate_limit_retries=n, transient_retries=n, empty_retries=n)


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
    )
    from stages.dispatch import import_litellm

    await import_litellm()  # first, so neither the timings nor --trace count the import
    view = RunView(out, err)
    started = time.monotonic()
    try:
        async with _pipeline(args).stream(request) as events:
            async for ev in events:
                view.show(ev)
    finally:
        view.end_line()
    view.summary(time.monotonic() - started)
    return 0


class RunView:
    """How ``llmpipe run`` prints events: the answer on ``out``, the rest on ``err``."""

    def __init__(self, out: TextIO, err: TextIO) -> None:
        self.out, self.err = out, err
        self.dim = _isatty(err)
        self.in_text = False  # the answer's line is open on out
        self.thinking = False  # a [thinking] block is open on err
        self.retries = 0
        self.finish: Finish | None = None

    def show(self, ev: Event) -> None:
        if isinstance(ev, TextDelta):
            self._close_thinking()
            self.out.write(ev.text)
            self.out.flush()
            if ev.text:
                self.in_text = not ev.text.endswith("\n")
        elif isinstance(ev, ReasoningDelta):
            if not self.thinking:
                self.thinking = True
                self.err.write(self._style("[thinking] "))
            self.err.write(self._style(ev.text))
            self.err.flush()
        elif isinstance(ev, ToolCall):
            self._close_thinking()
            self.end_line()
            mark = " (arguments repaired: may be truncated)" if ev.repaired else ""
            self.err.write(f"[tool call] {ev.name}({_json(ev.arguments)}) id={ev.id}{mark}\n")
        elif isinstance(ev, Retrying):
            self._close_thinking()
            self.retries += 1
            self.err.write(
                f"[retrying] {_REASONS.get(ev.reason, ev.reason)}: attempt {ev.attempt} failed;"
                f" trying again in {ev.delay_s:.1f}s\n"
            )
        elif isinstance(ev, TextEnd):
            self.end_line()  # now: the --trace console tree is printed as the call ends
        elif isinstance(ev, Finish):
            self.finish = ev

    def end_line(self) -> None:
        """End the answer's line on stdout (and an open [thinking] block)."""
        self._close_thinking()
        if self.in_text:
            self.out.write("\n")
            self.out.flush()
            self.in_text = False

    def summary(self, elapsed_s: float) -> None:
        f = self.finish
        if f is None:
            return
        retries = f" · {self.retries} {'retry' if self.retries == 1 else 'retries'}"
        self.err.write(
            f"[{f.stop_reason}] {f.input_tokens} in / {f.output_tokens} out tokens"
            f" ({f.cached_tokens} cached, usage {f.usage_source})"
            f"{retries if self.retries else ''} · model {f.model} · {elapsed_s:.1f}s\n"
        )
        self.err.flush()

    def _close_thinking(self) -> None:
        if self.thinking:
            self.err.write("\n")
            self.thinking = False

    def _style(self, text: str) -> str:
        return f"\x1b[2m{text}\x1b[0m" if self.dim else text


_REASONS = {
    "rate_limited": "rate limited",
    "transient": "transient failure",
    "empty": "empty answer",
}


# --- batch ------------------------------------------------------------------------------------


async def _batch(args: argparse.Namespace, err: TextIO) -> int:
    from pipeline.batch import BatchConfig, run_batch

    config = BatchConfig(
        input=args.input,
        output=Path(args.output),
        defaults=Defaults(
            model=args.model,
            system=args.system,
            max_tokens=args.max_tokens,
            json_mode=args.json,
            api_base=args.api_base,
        ),
        concurrency=args.concurrency,
        retry_failed=args.retry_failed,
        strict=args.strict,
        progress=not args.quiet,
        progress_interval_s=max(args.progress_every, 0.1),
    )
    from stages.dispatch import import_litellm

    if args.engine == "local":
        pipe = _pipeline(args)
        try:
            return await run_batch(config, pipe, err=err, prepare=import_litellm)
        finally:
            await pipe.release_loop()  # a Redis gate's client (LLMPIPE_GATE_URL), for one
    from pipeline.batch_ray import RayEngine, WorkerSpec

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
        return await run_batch(config, pipe, err=err, prepare=engine.start, engine=engine)
    finally:
        await engine.close()


# --- replay -----------------------------------------------------------------------------------


async def _replay(args: argparse.Namespace, out: TextIO) -> int:
    from stages.replay import BadDump, read_dump, replay_dispatch
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
        out.write(_json(json.loads(encode(req))) + "\n")
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
    pipe = _pipeline(args, policy=no_retries).replace("dispatch", replay_dispatch(dump.chunks))
    out.write("events:\n")
    try:
        async with pipe.stream(req) as events:
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


def describe(ev: Event) -> str:
    """One event as one readable line."""
    if isinstance(ev, TextDelta | ReasoningDelta):
        return f"{type(ev).__struct_config__.tag:<15} {ev.text!r}"
    if isinstance(ev, TextEnd):
        return f"{'text_end':<15} {len(ev.text)} chars: {_clip(ev.text)!r}"
    if isinstance(ev, ToolCall):
        mark = " (repaired)" if ev.repaired else ""
        return f"{'tool_call':<15} {ev.name}({_json(ev.arguments)}) id={ev.id}{mark}"
    if isinstance(ev, Retrying):
        return f"{'retrying':<15} attempt {ev.attempt} failed ({ev.reason}); wait {ev.delay_s:.1f}s"
    if isinstance(ev, Finish):
        return (
            f"{'finish':<15} {ev.stop_reason}; {ev.input_tokens} in / {ev.output_tokens} out"
            f" tokens ({ev.cached_tokens} cached, usage {ev.usage_source}); model {ev.model}"
        )
    return encode(ev).decode()


# --- demo -------------------------------------------------------------------------------------


async def _demo(args: argparse.Namespace, out: TextIO) -> int:
    from pipeline.demo import POLICY, run_demo
    from stages.dispatch import import_litellm

    return await run_demo(out, pipe=_pipeline(args, policy=POLICY), prepare=import_litellm)


def _clip(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
