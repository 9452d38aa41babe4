"""Dispatch through LiteLLM: the only package that imports ``litellm`` (lazily).

``backend`` sends the request; ``chunks`` converts litellm's responses,
``errors`` and ``faults`` translate its exceptions, ``http`` reads what it
lets us see of the HTTP response, ``clients`` releases its pooled clients,
``tokens`` counts tokens with its counter.
"""
