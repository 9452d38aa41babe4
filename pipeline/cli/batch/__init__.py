"""``llmpipe batch``: a JSONL file of requests through one pipeline, losing nothing.

``runner`` runs a batch (``run_batch``, the ``Engine`` seam, ``call_one``);
``input`` reads and checks the input lines and keeps the output journal;
``breaker`` stops a batch whose endpoint cannot be reached; ``progress`` and
``report`` are what the user sees; ``ray_engine`` runs the calls on Ray actors.
"""
