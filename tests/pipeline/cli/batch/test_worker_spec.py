"""What each ``batch --engine ray`` worker is told: load litellm while warming up only
when the batch's model goes through it (``pipeline.cli.batch.command.worker_spec``)."""

from __future__ import annotations

import pytest

from pipeline.cli.batch.command import worker_spec
from pipeline.cli.parser import build_parser

BASE = ["batch", "in.jsonl", "-o", "out.jsonl", "--engine", "ray"]


@pytest.mark.parametrize(
    ("extra", "loads"),
    [
        (["--api-base", "http://127.0.0.1:8000/v1", "-m", "m"], False),  # direct (auto)
        (["-m", "openai/gpt-4o-mini"], False),  # direct: an OpenAI-compatible profile
        (["-m", "anthropic/claude-sonnet-4-5"], True),  # through litellm
        (["--backend", "litellm", "-m", "openai/gpt-4o-mini"], True),  # forced
        ([], False),  # every line names its model: each loads what it needs, on its call
    ],
)
def test_a_worker_loads_litellm_only_for_a_model_that_goes_through_it(
    extra: list[str], loads: bool
) -> None:
    spec = worker_spec(build_parser().parse_args([*BASE, *extra]))
    assert spec.load_litellm is loads
    assert spec.backend == ("litellm" if "--backend" in extra else "auto")
