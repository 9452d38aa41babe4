"""The ``llmpipe`` command line: its options, help texts and checks of what was typed.

Everything argparse can refuse is refused here, before anything is sent
(exit 2): out-of-range numbers, a key typed on the command line. It is
a little over 300 lines because most of it is help text, read with the
options it explains.
"""

from __future__ import annotations

import argparse
import os
import re
import textwrap
from collections.abc import Callable

from pipeline import __version__, errors
from pipeline.cli.exits import EXIT_HELP

__all__ = ["api_key_from", "build_parser"]

EXAMPLES = """examples:
  llmpipe run --model openai/gpt-4o-mini "Why is the sky blue?"
  echo "Summarise this" | llmpipe run --model anthropic/claude-haiku-4-5 -
  llmpipe run --api-base http://localhost:8000/v1 -m any-model "hi"   # vLLM, llama.cpp, Ollama /v1
  llmpipe batch prompts.jsonl -o answers.jsonl --model openai/gpt-4o-mini --concurrency 16
  llmpipe replay ~/.llmpipe/failed/20250101T120000_empty_1a2b3c4d.json
  llmpipe demo --trace console

keys come from the provider's usual variable (OPENAI_API_KEY, ANTHROPIC_API_KEY, ...),
or from the variable --api-key-env NAME names (never from the command line, where
ps shows it); a local server needs none. LLMPIPE_DUMP_DIR turns on failed-request
dumps; OTEL_* configure --trace otlp.
"""

RUN_EXAMPLES = """examples:
  llmpipe run --model openai/gpt-4o-mini --system "Be brief." "Why is the sky blue?"
  git diff | llmpipe run -m anthropic/claude-haiku-4-5 -s "Review this diff." -
  llmpipe run -m any-model --api-base http://localhost:8000/v1 --json "three colours"
  llmpipe run --api-base https://api.together.xyz/v1 --api-key-env TOGETHER_API_KEY \\
      -m meta-llama/Llama-3.3-70B-Instruct-Turbo "hi"

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
   "source": "provider", "cost_usd": 0.000123}, "model": "...", "attempts": 1,
   "error": null, "line": 1, "elapsed_s": 1.234}
  a failed id has "error": {"kind": "rate_limited", "type": "RetriesExhausted",
  "message": "..."}

limits: --max-cost 5 --max-total-tokens 2M stop starting ids once the batch (this run
and the earlier ones on OUT) used that much; the ids in flight finish (a retry they
would need is not sent and the id is left for later). Nothing partial is written:
re-run with a higher limit to resume. Exit status 9.

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
        allow_abbrev=False,
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
    parser.add_argument("--version", action="version", version=f"llmpipe {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str, description: str, epilog: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            allow_abbrev=False,
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
        type=_whole(minimum=1),
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
        type=_whole(minimum=1),
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
        "--max-cost",
        type=_dollars,
        metavar="USD",
        help="stop starting ids once the batch (this run and earlier ones on OUT) cost this"
        " much, by LiteLLM's price table; see README 'Usage limits'",
    )
    batch.add_argument(
        "--max-total-tokens",
        type=_amount,
        metavar="N",
        help="the same for input + output tokens (2M, 500k or 2000000)",
    )
    batch.add_argument(
        "--max-requests",
        type=_amount,
        metavar="N",
        help="the same for requests sent (retries count)",
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
        type=_seconds,
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

    demo = command(
        "demo",
        "a scripted session against the built-in fake provider (offline)",
        "Start the built-in fake provider on 127.0.0.1 and run a short scripted session"
        " through the full default pipeline: streamed text, a tool call, a 429 with"
        " retry-after-ms handled by the retry stage, an empty answer retried."
        " No keys, no network.",
        DEMO_EXAMPLES,
    )
    _backend_option(demo)
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
        type=_whole(minimum=1),
        default=4096,
        metavar="N",
        help="answer budget (default 4096)",
    )
    p.add_argument(
        "--api-base",
        metavar="URL",
        help="base URL of the server; with a bare model name (no provider/ prefix) any"
        " OpenAI-compatible server: vLLM, llama.cpp, Ollama's /v1, LM Studio (no key needed)",
    )
    p.add_argument(
        "--api-key-env",
        metavar="NAME",
        help="read the API key from the environment variable NAME (default: the provider's"
        " usual variable, e.g. OPENAI_API_KEY)",
    )
    _backend_option(p)
    # A key on the command line is visible to every user (ps, shell history): refused,
    # without repeating it (argparse would quote the "unrecognized argument").
    p.add_argument("--api-key", action=_RefuseKey, nargs="?", help=argparse.SUPPRESS)


def _backend_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--backend",
        choices=("auto", "litellm", "openai"),
        default="auto",
        help="what sends the requests: auto (the default: direct HTTP to endpoints that speak"
        " OpenAI chat-completions, litellm for the rest), litellm (always), openai (always"
        " direct HTTP)",
    )


def _retry_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--retries",
        type=_whole(minimum=0),
        metavar="N",
        help="retries per cause (default: 10 for rate limits, 3 for transient errors and"
        " empty answers; 0 disables retrying)",
    )


def _whole(*, minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    parse.__name__ = "whole number"  # argparse names the type in some messages
    return parse


def _amount(text: str) -> int:
    """A whole number, with an optional k or M: ``2M``, ``500k``, ``2000000``."""
    raw = text.strip().replace("_", "")
    scale = {"k": 1_000, "m": 1_000_000}.get(raw[-1:].lower(), 1)
    digits = raw[:-1] if scale > 1 else raw
    try:
        value = float(digits) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r} (2M, 500k, 2000000)") from None
    if not value >= 0 or value == float("inf") or value != int(value):
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, got {text}")
    return int(value)


def _dollars(text: str) -> float:
    try:
        value = float(text.strip().lstrip("$"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an amount of US dollars: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be $0 or more, got {text}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {text}")
    return value


class _RefuseKey(argparse.Action):
    def __call__(self, parser: argparse.ArgumentParser, *_: object, **__: object) -> None:
        parser.error(
            "--api-key is not accepted: a key on the command line is visible to other"
            " users (ps) and kept in shell history. Put it in an environment variable and"
            " pass its name: --api-key-env NAME"
        )


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def api_key_from(name: str | None) -> str | None:
    """The key in the variable ``--api-key-env`` names (``None``: not asked for).

    Raises ``InvalidRequest`` naming the variable when it is unset or empty,
    and without repeating the argument when it is not a variable name (it may
    be a key pasted in by mistake).
    """
    if name is None:
        return None
    if not _ENV_NAME.fullmatch(name):
        raise errors.InvalidRequest(
            "--api-key-env",
            "takes the name of an environment variable (such as OPENAI_API_KEY), not a key",
        )
    value = os.environ.get(name, "")
    if not value.strip():
        state = "is empty" if name in os.environ else "is not set"
        raise errors.InvalidRequest("--api-key-env", f"the variable {name} {state}")
    return value.strip()


# --- main -----------------------------------------------------------------------------------
