"""``llmpipe run``: one prompt, the answer streamed to stdout, the rest on stderr."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TextIO

from pipeline import errors
from pipeline.cli.render import RunView
from pipeline.cli.shared import pipeline_for, prepare
from pipeline.request import Request

__all__ = ["run"]


async def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
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
    await prepare(args, request.model, request.api_base, err)
    view = RunView(out, err)
    started = time.monotonic()
    try:
        async with pipeline_for(args) as pipe, pipe.stream(request) as events:
            async for ev in events:
                view.show(ev)
    finally:
        view.end_line()
    view.summary(time.monotonic() - started)
    return 0
