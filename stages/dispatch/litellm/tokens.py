"""Token counts with litellm's counter, off the event loop and offline.

litellm picks a tokenizer per model and, for some (Llama, for one), fetches
it from the Hugging Face hub: offline that stalls for tens of seconds. So
the count always uses the OpenAI tokenizer that litellm ships on disk
(``gpt-4o``'s, via tiktoken's bundled cache): exact for OpenAI models, a close
estimate for the rest, and never a download. When litellm is not importable
or counting fails, characters / 4.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from pipeline.request import Request
from pipeline.secrets import guard_logger
from pipeline.tokens import estimate_tokens

__all__ = ["count_request_tokens"]

log = guard_logger("llmpipe.tokens")

#: a model whose tokenizer litellm ships with its package (no download)
COUNTING_MODEL = "gpt-4o"


async def count_request_tokens(req: Request) -> tuple[int, str]:
    """``(tokens, method)`` for a request: ``("tiktoken")`` or ``("estimate")``."""
    litellm = sys.modules.get("litellm")
    if litellm is None or not hasattr(litellm, "token_counter"):
        # Not imported yet (nothing was dispatched through litellm): do not
        # pay seconds of import for an estimate.
        return await estimate_tokens(req)
    try:
        count = await asyncio.to_thread(_count, litellm, req)
    except Exception as exc:  # a counting failure must never fail the call
        log.debug("litellm token counting failed (%s); using characters / 4", exc)
        return await estimate_tokens(req)
    return count, "tiktoken"


def _count(litellm: Any, req: Request) -> int:
    messages = list(req.messages)
    if req.system:
        messages.insert(0, {"role": "system", "content": req.system})
    tools = [t.to_openai() for t in req.tools] if req.tools else None
    return int(litellm.token_counter(model=COUNTING_MODEL, messages=messages, tools=tools))
