"""``llmpipe --trace otlp batch``: one trace, rooted at ``batch {file}``, every call under it
(real litellm, the fake provider, a real OTLP receiver). The Ray engine's variant is in
``tests/scale/test_batch_ray.py``."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline import cli
from pipeline.testing import FakeProvider, Reply
from tests.telemetry.receivers import HttpReceiver

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("close_litellm_clients")]  # real litellm


def test_a_batch_is_one_trace_rooted_at_its_span(
    fake: FakeProvider, tmp_path: Path, otlp_env: pytest.MonkeyPatch
) -> None:
    fake.reset()
    fake.default = Reply.text("ok")
    fake.script(Reply.error(400, "no such model"))  # the first request fails, not retried
    prompts = tmp_path / "in.jsonl"
    prompts.write_text("".join(f'{{"id": {i}, "prompt": "p{i}"}}\n' for i in range(4)))
    out = tmp_path / "out.jsonl"
    with HttpReceiver() as rx:
        otlp_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rx.url)
        otlp_env.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        args = ["--trace", "otlp", "batch", str(prompts), "-o", str(out), "-q", "-c", "2"]
        status = cli.main([*args, "-m", "any-model", "--api-base", fake.base_url])
        received = rx.spans()
    assert status == 1, "one id failed: the batch is incomplete"
    [root] = [s for s in received if s.name == f"batch {prompts}"]
    calls = [s for s in received if s.name.startswith("chat ")]
    assert len(calls) == 4
    assert root.parent_id == b""
    assert {s.span.trace_id for s in received} == {root.span.trace_id}
    assert {s.parent_id for s in calls} == {root.span_id}
    attrs = root.attributes
    assert {k: attrs[k] for k in attrs if k.startswith("llmpipe.batch.")} == {
        "llmpipe.batch.ids": 4,
        "llmpipe.batch.to_run": 4,
        "llmpipe.batch.done": 3,
        "llmpipe.batch.failed": 1,
        "llmpipe.batch.skipped": 0,
        "llmpipe.batch.input_tokens": 30,
        "llmpipe.batch.output_tokens": 15,
    }
