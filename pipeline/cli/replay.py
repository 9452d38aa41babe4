"""``llmpipe replay DUMP.json``: a failed request's recorded chunks through the pipeline again."""

from __future__ import annotations

import argparse
import json
from typing import TextIO

from pipeline import errors
from pipeline.cli.exits import EXIT_CODES, exit_code
from pipeline.cli.render import describe, to_json
from pipeline.cli.shared import pipeline_for
from pipeline.events import encode
from pipeline.policy import RetryPolicy

__all__ = ["replay"]


async def replay(args: argparse.Namespace, out: TextIO) -> int:
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
    replaying = pipeline_for(args, policy=no_retries).replace(
        "dispatch", replay_dispatch(dump.chunks)
    )
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
