"""Ray and redis are optional: the core, the CLI's parser and the local engine never import them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROGRAM = """
import asyncio, io, sys, tempfile
from pathlib import Path

import pipeline
from pipeline import Pipeline, cli
from pipeline.cli.batch.runner import BatchConfig, run_batch
from pipeline.cli.batch.input import Defaults
from pipeline.testing import scripted, text_chunks

args = cli.build_parser().parse_args(
    ["batch", "in.jsonl", "-o", "out.jsonl", "--engine", "ray", "--workers", "3"]
)
assert (args.engine, args.workers) == ("ray", 3)

work = Path(tempfile.mkdtemp())
(work / "in.jsonl").write_text('{"id": 1, "prompt": "a"}\\n{"id": 2, "prompt": "b"}\\n')
pipe = Pipeline.default().replace("dispatch", scripted([text_chunks("x"), text_chunks("y")]))
config = BatchConfig(
    input=str(work / "in.jsonl"), output=work / "out.jsonl", progress=False,
    defaults=Defaults(model="openai/m"),
)
code = asyncio.run(run_batch(config, pipe, err=io.StringIO()))
assert code == 0, code
assert len((work / "out.jsonl").read_text().splitlines()) == 2
loaded = sorted({m.split(".")[0] for m in sys.modules} & {"ray", "redis", "litellm"})
print(loaded)
"""


def test_the_core_and_the_local_engine_never_import_ray_or_redis() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"  # nor litellm: the dispatch here is scripted
