"""Dispatch straight to OpenAI-compatible chat-completions endpoints, without litellm.

``OpenAIBackend`` (``backend``) is the backend; ``outgoing`` builds the HTTP
request, ``sse`` splits the body into events, ``wire`` decodes them into
``Chunk``s, ``errors`` translates what went wrong, ``sessions`` owns one
aiohttp session per event loop. Importing this package imports neither
aiohttp nor litellm (aiohttp is imported on the first call).
"""

from stages.dispatch.openai.backend import OpenAIBackend
from stages.dispatch.openai.outgoing import Outgoing, outgoing
from stages.dispatch.openai.sse import SSESplitter

__all__ = ["OpenAIBackend", "Outgoing", "SSESplitter", "outgoing"]
