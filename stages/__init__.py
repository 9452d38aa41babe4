"""The stages: one module each, and this barrel of their factories, in data-flow order.

The default pipeline (``pipeline.composition`` builds it)::

    fallback( normalize -> cache_tag -> retry( tool_compat( dispatch ) -> reassemble -> usage
              -> empty_check ) )

- ``fallback(*stages, targets=..., policy=...)``: the segment that runs its
  stages once per target (the request's model, then its fallbacks) while
  nothing reached the consumer, with cool-downs shared by the pipeline;
- ``normalize()``: the provider profile's shaping, system prompts first,
  JSON mode as an instruction, ghost assistant turns dropped, tool schemas;
- ``cache_tag()``: ``cache_control`` on the system prompt where accepted;
- ``retry(*stages)``: the segment that runs its stages once per attempt and
  again on rate limits, transient failures and empty answers;
- ``tool_compat(*stages)``: the segment around dispatch for models that
  cannot use native tools where they are routed;
- ``dispatch(backend)``: sends each request through a backend
  (``LiteLLMBackend``; ``replay_dispatch(chunks)`` plays a dump back;
  ``simulated(backend)`` where a provider's streaming is broken), with
  per-pull timeouts, attempt recording and closing, written once;
- ``reassemble()``: chunks into text deltas, whole tool calls and a finish;
- ``usage()``: the finish's token counts and cost, and where they come from;
- ``empty_check()``: an answer with nothing in it is an error.

Each module's docstring says what its stage consumes, emits, passes through
and buffers. The names here are the factories, which share their modules'
names: import anything else from the module (``from stages.retry import
cause_of``). Importing ``stages`` does not import litellm.
"""

from stages.cache_tag import cache_tag
from stages.dispatch import dispatch
from stages.dispatch.litellm import LiteLLMBackend
from stages.dispatch.replay import replay_dispatch
from stages.dispatch.simulated import simulated
from stages.empty_check import empty_check
from stages.fallback import fallback
from stages.normalize import normalize
from stages.reassemble import reassemble
from stages.retry import retry
from stages.tool_compat import tool_compat
from stages.usage import usage

__all__ = [
    "LiteLLMBackend",
    "cache_tag",
    "dispatch",
    "empty_check",
    "fallback",
    "normalize",
    "reassemble",
    "replay_dispatch",
    "retry",
    "simulated",
    "tool_compat",
    "usage",
]
