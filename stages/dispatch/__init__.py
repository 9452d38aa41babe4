"""dispatch: the stage that sends a request and turns the answer into ``Chunk``s.

``litellm`` sends through LiteLLM; ``replay`` plays back a failed-request dump.
"""
