"""The recorded provider streams of ``tests/fixtures/realstreams``, as the providers sent them.

``body_events`` frames a recording per its README (one SSE event per piece);
``serve`` answers each request with the recording its ``model`` names
(``openai/<id>``, ``anthropic/<id>``), one write per event, then closes the
connection; ``check`` compares a ``Response`` with the expected answer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline import Request, Response
from pipeline.testing import FakeProvider, RecordedRequest, Reply

ROOT = Path(__file__).parent.parent / "fixtures" / "realstreams"


def recordings() -> list[dict[str, Any]]:
    index: list[dict[str, Any]] = json.loads((ROOT / "index.json").read_text())
    return index


def expected(entry: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = json.loads((ROOT / entry["expected"]).read_text())
    return found


def body_events(entry: dict[str, Any]) -> list[bytes]:
    """The recording as the provider sent it, one SSE event per item (README rules)."""
    data = (ROOT / entry["file"]).read_bytes()
    if entry["framing"] == "raw-sse":
        parts = data.split(b"\n\n")
        events = [p + b"\n\n" for p in parts[:-1]]
        return events + ([parts[-1]] if parts[-1] else [])
    lines = [line for line in data.split(b"\n") if line]
    if entry["format"] == "openai":
        return [b"data: " + line + b"\n\n" for line in lines] + [b"data: [DONE]\n\n"]
    return [
        b"event: " + json.loads(line)["type"].encode() + b"\ndata: " + line + b"\n\n"
        for line in lines
    ]


def serve(fake: FakeProvider) -> None:
    """Answer every request with the recording its model names (a 404 for no such one)."""
    replies = {
        e["id"]: Reply.raw(
            *body_events(e), content_type="text/event-stream; charset=utf-8", framing="close"
        )
        for e in recordings()
    }

    def respond(r: RecordedRequest) -> Reply:
        reply = replies.get(str(r.body.get("model")))
        return reply if reply is not None else Reply.error(404, f"no recording {r.body!r:.80}")

    fake.respond_with(respond)


def request_for(entry: dict[str, Any], fake: FakeProvider) -> Request:
    anthropic = entry["format"] == "anthropic"
    names = sorted({c["name"] for c in expected(entry)["tool_calls"]})
    return Request(
        model=f"{'anthropic' if anthropic else 'openai'}/{entry['id']}",
        messages=[{"role": "user", "content": "hi"}],
        tools=[{"name": n, "parameters": {"type": "object", "properties": {}}} for n in names],
        api_base=fake.root_url if anthropic else fake.base_url,
        api_key="sk-replay-key-not-real",
    )


def answer_of(resp: Response) -> dict[str, Any]:
    """A response in the shape of an expected answer."""
    u = resp.usage
    return {
        "model": resp.model,
        "text": resp.text,
        "reasoning": resp.reasoning,
        "tool_calls": [
            {"id": c.id, "name": c.name, "arguments": c.arguments} for c in resp.tool_calls
        ],
        "stop_reason": resp.stop_reason,
        "usage": {"input": u.input_tokens, "output": u.output_tokens, "cached": u.cached_tokens},
        "usage_source": u.source,
        "repaired": [c.repaired for c in resp.tool_calls],
    }


def wanted(entry: dict[str, Any]) -> dict[str, Any]:
    exp = expected(entry)
    return {
        "model": exp["model"],
        "text": exp["text"],
        "reasoning": exp["reasoning"],
        "tool_calls": exp["tool_calls"],
        "stop_reason": exp["stop_reason"],
        "usage": exp["usage"],
        "usage_source": "provider",
        "repaired": [False] * len(exp["tool_calls"]),
    }
