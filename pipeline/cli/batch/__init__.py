"""``llmpipe batch``: a JSONL file of requests through one pipeline, losing nothing.

``command`` is the command itself; ``runner`` runs a batch (``run_batch``);
``input`` reads and checks the input lines; ``journal`` is the output file;
``engine`` is where the calls run (the ``Engine`` seam, ``LocalEngine``,
``call_one``), ``ray_engine`` on Ray actors; ``breaker`` stops a batch whose
endpoint cannot be reached; ``progress`` and ``report`` are what the user
sees.
"""
