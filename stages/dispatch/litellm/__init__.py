"""Dispatch through LiteLLM: the only package that imports ``litellm`` (lazily).

``LiteLLMBackend`` (``backend``) is the backend; ``routing`` turns a request
into litellm's arguments, ``chunks`` converts litellm's responses, ``errors``
and ``faults`` translate its exceptions, ``http`` reads what it lets us see of
the HTTP response, ``clients`` releases its pooled clients, ``tokens`` counts
tokens with its counter, ``loader`` imports it. Importing this package does
not import litellm.
"""

from stages.dispatch.litellm.backend import LiteLLMBackend
from stages.dispatch.litellm.clients import close_loop_clients
from stages.dispatch.litellm.loader import import_litellm
from stages.dispatch.litellm.routing import NO_KEY, build_kwargs
from stages.dispatch.litellm.tokens import count_request_tokens

__all__ = [
    "NO_KEY",
    "LiteLLMBackend",
    "build_kwargs",
    "close_loop_clients",
    "count_request_tokens",
    "import_litellm",
]
