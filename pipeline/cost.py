"""What a call cost, in US dollars, from the price table LiteLLM ships: ``cost_usd``.

The table is LiteLLM's own ``model_prices_and_context_window_backup.json``,
read from the installed package's files (``importlib.metadata``) without
importing LiteLLM: the direct backend never pays for that import, and nothing
is fetched over the network. It is read once per process, on first use (about
10-20 ms for 3 MB; ``prices_async`` does it off the event loop), and each
model's entry is decoded when it is first looked up.

A model is found as LiteLLM finds it: its name as given
(``deepseek/deepseek-chat``), else without the provider prefix
(``openai/gpt-4o-mini`` → ``gpt-4o-mini``). Prices are per token:
``input_cost_per_token`` for input that was not cached,
``cache_read_input_token_cost`` for cached input (the input price when the
table gives none), ``output_cost_per_token``; a prompt over a threshold
(``*_above_200k_tokens``) is priced at that tier's rates, as LiteLLM does.
``input_tokens`` counts cached tokens too (the OpenAI convention, which
LiteLLM follows for every provider). An unknown model costs ``None``, never
a guess.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

__all__ = ["ModelPrice", "PriceTable", "cost_usd", "prices", "prices_async", "table_path"]

#: LiteLLM's bundled copy of its price and context-window table
TABLE_FILE = "litellm/model_prices_and_context_window_backup.json"

_TIER = re.compile(r"^input_cost_per_token_above_(\d+)(k?)_tokens$")


class ModelPrice(msgspec.Struct, frozen=True, kw_only=True):
    """One model's prices per token (USD) and context window, as the table says."""

    input_cost_per_token: float | None = None
    output_cost_per_token: float | None = None
    cache_read_input_token_cost: float | None = None
    max_input_tokens: int | None = None
    #: (threshold in prompt tokens, input, output, cached input) per tier, lowest first
    tiers: tuple[tuple[int, float, float | None, float | None], ...] = ()

    def cost(self, input_tokens: int, output_tokens: int, cached_tokens: int = 0) -> float | None:
        """The cost of one call in USD; ``None`` when the table has no token prices."""
        inp, out, cached = (
            self.input_cost_per_token,
            self.output_cost_per_token,
            self.cache_read_input_token_cost,
        )
        if inp is None or out is None:
            return None
        for threshold, t_inp, t_out, t_cached in self.tiers:
            if input_tokens > threshold:
                inp = t_inp
                out = t_out if t_out is not None else out
                cached = t_cached if t_cached is not None else cached
        cached_tokens = min(max(cached_tokens, 0), max(input_tokens, 0))
        uncached = max(input_tokens, 0) - cached_tokens
        cached_rate = cached if cached is not None else inp
        return uncached * inp + cached_tokens * cached_rate + max(output_tokens, 0) * out


class _Entry(msgspec.Struct, kw_only=True):
    """The fields of a table entry we read (the rest is skipped by the decoder)."""

    input_cost_per_token: float | None = None
    output_cost_per_token: float | None = None
    cache_read_input_token_cost: float | None = None
    max_input_tokens: int | None = None


_entry_decoder = msgspec.json.Decoder(_Entry)
_dict_decoder = msgspec.json.Decoder(dict[str, Any])


class PriceTable:
    """Model name -> ``ModelPrice``, decoded lazily from the raw table. Thread-safe."""

    def __init__(self, raw: Mapping[str, msgspec.Raw]) -> None:
        self._raw = raw
        self._decoded: dict[str, ModelPrice | None] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._raw)

    def lookup(self, model: str) -> ModelPrice | None:
        """The entry for ``model`` as LiteLLM would find it, or ``None``."""
        for name in _candidates(model):
            price = self._entry(name)
            if price is not None:
                return price
        return None

    def context_window(self, model: str) -> int | None:
        price = self.lookup(model)
        return price.max_input_tokens if price is not None else None

    def _entry(self, name: str) -> ModelPrice | None:
        with self._lock:
            if name in self._decoded:
                return self._decoded[name]
        raw = self._raw.get(name)
        price = _decode(raw) if raw is not None else None
        with self._lock:
            self._decoded[name] = price
        return price


def _candidates(model: str) -> list[str]:
    names = [model]
    lower = model.lower()
    if lower != model:
        names.append(lower)
    _, slash, rest = model.partition("/")
    if slash and rest:
        names += [rest, rest.lower()]
    return names


def _decode(raw: msgspec.Raw) -> ModelPrice | None:
    try:
        entry = _entry_decoder.decode(raw)
    except msgspec.ValidationError:  # an entry of another shape (the table's own sample)
        return None
    tiers = []
    if entry.input_cost_per_token is not None:
        fields = _dict_decoder.decode(raw)
        for key, value in fields.items():
            match = _TIER.match(key)
            if match is None or not isinstance(value, int | float):
                continue
            size = match.group(1) + match.group(2)
            threshold = int(match.group(1)) * (1000 if match.group(2) else 1)
            tiers.append(
                (
                    threshold,
                    float(value),
                    _number(fields.get(f"output_cost_per_token_above_{size}_tokens")),
                    _number(fields.get(f"cache_read_input_token_cost_above_{size}_tokens")),
                )
            )
    return ModelPrice(
        input_cost_per_token=entry.input_cost_per_token,
        output_cost_per_token=entry.output_cost_per_token,
        cache_read_input_token_cost=entry.cache_read_input_token_cost,
        max_input_tokens=entry.max_input_tokens,
        tiers=tuple(sorted(tiers)),
    )


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def table_path() -> Path | None:
    """Where the installed LiteLLM keeps its table (``None``: LiteLLM is not installed)."""
    try:
        dist = importlib.metadata.distribution("litellm")
    except importlib.metadata.PackageNotFoundError:
        return None
    path = Path(str(dist.locate_file(TABLE_FILE)))
    return path if path.is_file() else None


_loaded: list[PriceTable] = []  # the process's table, once read (read-only data)
_load_lock = threading.Lock()


def prices() -> PriceTable:
    """The price table (read on first use; empty when LiteLLM's file is not there)."""
    if _loaded:
        return _loaded[0]
    with _load_lock:
        if not _loaded:
            path = table_path()
            raw: Mapping[str, msgspec.Raw] = {}
            if path is not None:
                try:
                    raw = msgspec.json.decode(path.read_bytes(), type=dict[str, msgspec.Raw])
                except (OSError, msgspec.DecodeError):
                    raw = {}
            _loaded.append(PriceTable(raw))
    return _loaded[0]


async def prices_async() -> PriceTable:
    """``prices()``, read in a thread the first time so the event loop never waits on it."""
    if _loaded:
        return _loaded[0]
    return await asyncio.to_thread(prices)


def cost_usd(
    models: str | tuple[str, ...],
    input_tokens: int,
    output_tokens: int,
    cached_tokens: int = 0,
    *,
    table: PriceTable | None = None,
) -> float | None:
    """The cost of one call of the first of ``models`` the table knows, or ``None``.

    Pass the model the call was sent as first (``openai/gpt-4o-mini``), then
    the model the provider said answered, which may be a dated version.
    """
    table = table if table is not None else prices()
    for model in (models,) if isinstance(models, str) else models:
        if not model:
            continue
        price = table.lookup(model)
        if price is not None:
            return price.cost(input_tokens, output_tokens, cached_tokens)
    return None
