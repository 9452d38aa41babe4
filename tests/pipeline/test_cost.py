"""What a call cost, from the price table LiteLLM ships, read without importing LiteLLM."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from pipeline.cost import PriceTable, cost_usd, prices, table_path

#: the table as shipped, read with the standard library: the expectations' own source
TABLE: dict[str, Any] = json.loads(table_path().read_text())  # type: ignore[union-attr]


def by_hand(key: str, inp: int, out: int, cached: int, tier: str | None = None) -> float:
    """Cost as the table's own numbers say, written out: uncached input, cached input, output."""
    e = TABLE[key]
    suffix = f"_above_{tier}_tokens" if tier else ""
    in_rate = e[f"input_cost_per_token{suffix}"]
    out_rate = e.get(f"output_cost_per_token{suffix}", e["output_cost_per_token"])
    cached_rate = e.get(
        f"cache_read_input_token_cost{suffix}", e.get("cache_read_input_token_cost", in_rate)
    )
    return (inp - cached) * in_rate + cached * cached_rate + out * out_rate


#: (model as called, table key, input, output, cached, tier)
CASES = [
    ("openai/gpt-4o-mini", "gpt-4o-mini", 1000, 500, 0, None),
    ("openai/gpt-4o-mini", "gpt-4o-mini", 1000, 500, 400, None),
    ("gpt-4o", "gpt-4o", 12_000, 800, 6_000, None),
    ("anthropic/claude-sonnet-4-5", "claude-sonnet-4-5", 3000, 1200, 2048, None),
    ("anthropic/claude-haiku-4-5", "claude-haiku-4-5", 5000, 100, 4096, None),
    ("deepseek/deepseek-chat", "deepseek/deepseek-chat", 2000, 100, 1500, None),
    ("gemini/gemini-2.5-pro", "gemini/gemini-2.5-pro", 150_000, 1000, 0, None),
    ("gemini/gemini-2.5-pro", "gemini/gemini-2.5-pro", 250_000, 1000, 100_000, "200k"),
]


@pytest.mark.parametrize(("model", "key", "inp", "out", "cached", "tier"), CASES)
def test_costs_follow_the_shipped_price_table(
    model: str, key: str, inp: int, out: int, cached: int, tier: str | None
) -> None:
    assert cost_usd(model, inp, out, cached) == pytest.approx(by_hand(key, inp, out, cached, tier))


def test_cached_input_is_cheaper_where_the_table_says_so() -> None:
    full = cost_usd("openai/gpt-4o-mini", 1000, 0, 0)
    cached = cost_usd("openai/gpt-4o-mini", 1000, 0, 1000)
    assert full is not None and cached is not None
    assert cached == pytest.approx(full / 2)  # $0.075 against $0.15 per million


def test_an_unknown_model_costs_none_not_a_guess() -> None:
    assert cost_usd("openai/fake-model", 1000, 1000) is None
    assert cost_usd("", 10, 10) is None
    assert cost_usd("sample_spec", 10, 10) is None  # the table's own template entry


def test_the_first_known_model_is_priced() -> None:
    """The model as sent first, then the one the provider said answered."""
    assert cost_usd(("my-deployment", "gpt-4o"), 10, 10) == cost_usd("gpt-4o", 10, 10)
    assert cost_usd(("gpt-4o-mini", "gpt-4o"), 10, 10) == cost_usd("gpt-4o-mini", 10, 10)


def test_context_windows_come_from_the_same_table() -> None:
    assert prices().context_window("openai/gpt-4o-mini") == TABLE["gpt-4o-mini"]["max_input_tokens"]
    assert prices().context_window("openai/fake-model") is None


def test_entries_of_another_shape_are_unknown_not_errors() -> None:
    table = PriceTable(
        {"odd": b'{"input_cost_per_token": "cheap"}', "ok": b'{"input_cost_per_token": 1e-06}'}  # type: ignore[dict-item]
    )
    assert table.lookup("odd") is None
    assert table.lookup("ok") is not None and table.lookup("ok").cost(1, 1) is None  # type: ignore[union-attr]


def test_reading_the_table_does_not_import_litellm() -> None:
    code = (
        "import sys; from pipeline.cost import cost_usd;"
        " assert cost_usd('openai/gpt-4o-mini', 1000, 10) > 0;"
        " assert 'litellm' not in sys.modules, 'litellm was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
