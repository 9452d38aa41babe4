"""The ``llmpipe`` command: try a model, or watch the pipeline work offline.

    llmpipe run --model openai/gpt-4o-mini "Why is the sky blue?"
    llmpipe demo

It is an application, so (with ``pipeline.default``) it is allowed to know the
stages; the library modules are not.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import traceback
from collections.abc import Sequence
from typing import TextIO

from pipeline import errors
from pipeline.core import Pipeline
from pipeline.events import Event, Finish, ReasoningDelta, Retrying, TextDelta, ToolCall
from pipeline.policy import RetryPolicy
from pipeline.request import Request

__all__ = ["EXIT_CODES", "exit_code", "main"]

#: exit status per failure kind (2 is also argparse's usage error)
EXIT_CODES: dict[str, int] = {
    "ok": 0,
    "bad_input": 2,
    "auth": 3,
    "rate_limited": 4,
    "provider": 5,
    "interrupted": 6,
    "cancelled": 130,
}

EXAMPLES = """examples:
  llmpipe run --model openai/gpt-4o-mini "Why is the sky blue?"
  echo "Summarise this" | llmpipe run --model anthropic/claude-haiku-4-5 -
  llmpipe run --model openai/local --api-base http://localhost:8000/v1 "hi"
  llmpipe demo
"""


def exit_code(exc: BaseException) -> int:
    """The exit status for an exception that ended a command."""
    if isinstance(exc, errors.InvalidRequest | errors.BadRequest):
        return EXIT_CODES["bad_input"]
    if isinstance(exc, errors.AuthenticationFailed):
        return EXIT_CODES["auth"]
    if isinstance(exc, errors.RateLimited) or (
        isinstance(exc, errors.RetriesExhausted) and isinstance(exc.__cause__, errors.RateLimited)
    ):
        return EXIT_CODES["rate_limited"]
    if isinstance(exc, errors.StreamInterrupted):
        return EXIT_CODES["interrupted"]
    if isinstance(exc, KeyboardInterrupt | asyncio.CancelledError):
        return EXIT_CODES["cancelled"]
    return EXIT_CODES["provider"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmpipe",
        description="Robust, observable LLM calls through LiteLLM, as a pipeline of stages.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="stream one answer to stdout",
        description="Stream one answer to stdout; tool calls, reasoning and usage go to stderr."
        " Keys come from the provider's usual environment variable (OPENAI_API_KEY, ...).",
        epilog='example:\n  llmpipe run --model openai/gpt-4o-mini --system "Be brief." "hi"',
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("prompt", metavar="PROMPT", help="the user message, or - to read stdin")
    run.add_argument("--model", "-m", required=True, help="litellm model, e.g. openai/gpt-4o")
    run.add_argument("--system", "-s", help="system prompt")
    run.add_argument("--json", action="store_true", help="ask for a JSON object answer")
    run.add_argument("--max-tokens", type=int, default=4096, help="answer budget (default 4096)")
    run.add_argument("--api-base", help="base URL of any OpenAI-compatible server")
    run.add_argument(
        "--retries",
        type=int,
        metavar="N",
        help="retries per cause (default: 10 for rate limits, 3 for transient errors and"
        " empty answers; 0 disables retrying)",
    )
    run.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="as above")

    demo = sub.add_parser(
        "demo",
        help="run a scripted session against the built-in fake provider (offline)",
        description="Start the built-in fake provider on 127.0.0.1 and run a short scripted"
        " conversation through the full default pipeline: streamed text and a tool call."
        " No keys, no network.",
        epilog="example:\n  llmpipe demo",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="as above")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="llmpipe: %(levelname)s: %(message)s",
    )
    if not args.debug:
        logging.getLogger("LiteLLM").setLevel(logging.ERROR)
    try:
        if args.command == "run":
            return asyncio.run(_run(args, sys.stdout, sys.stderr))
        from pipeline.demo import run_demo

        return asyncio.run(run_demo(sys.stdout))
    except KeyboardInterrupt:
        print("\nllmpipe: interrupted", file=sys.stderr)
        return EXIT_CODES["cancelled"]
    except (errors.PipelineError, errors.PipelineMisuse) as exc:
        if args.debug:
            traceback.print_exc()
        print(f"llmpipe: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return exit_code(exc)


async def _run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    request = Request(
        model=args.model,
        messages=[{"role": "user", "content": prompt}],
        system=args.system,
        json_mode=args.json,
        max_tokens=args.max_tokens,
        api_base=args.api_base,
    )
    options = {}
    if args.retries is not None:
        n = max(args.retries, 0)
        options["policy"] = RetryPolicy(rate_limit_retries=n, transient_retries=n, empty_retries=n)
    async with Pipeline.default(**options).stream(request) as events:
        async for ev in events:
            show(ev, out, err)
    return 0


def show(ev: Event, out: TextIO, err: TextIO) -> None:
    """Print one event the way ``llmpipe run`` shows it."""
    if isinstance(ev, TextDelta):
        out.write(ev.text)
        out.flush()
    elif isinstance(ev, ReasoningDelta):
        err.write(ev.text)
        err.flush()
    elif isinstance(ev, ToolCall):
        err.write(f"\n[tool call] {ev.name}({_json(ev.arguments)}) id={ev.id}\n")
    elif isinstance(ev, Retrying):
        err.write(f"\n[retrying] attempt {ev.attempt} in {ev.delay_s:.1f}s: {ev.reason}\n")
    elif isinstance(ev, Finish):
        out.write("\n")
        err.write(
            f"[{ev.stop_reason}] {ev.input_tokens} in / {ev.output_tokens} out tokens"
            f" ({ev.cached_tokens} cached, usage {ev.usage_source}) · model {ev.model}\n"
        )


def _json(value: object) -> str:
    import json

    return json.dumps(value, ensure_ascii=False)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
