"""The batch output journal and its resume rules: whole lines, the last per id counts."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pipeline.cli.batch.input import Defaults, id_key, parse_input
from pipeline.cli.batch.journal import Journal
from pipeline.cli.batch.runner import plan

DEFAULTS = Defaults(model="openai/m", max_tokens=100)


def lines(*objs: object) -> bytes:
    return b"\n".join(o if isinstance(o, bytes) else json.dumps(o).encode() for o in objs) + b"\n"


def record(id: object, error: object = None, text: str = "t") -> bytes:
    return json.dumps({"id": id, "text": text, "error": error}).encode()


def test_the_journal_appends_whole_lines_and_the_last_line_per_id_counts(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    j = Journal(path)
    j.open()
    j.append(record("a", error={"kind": "provider"}))
    j.append(record("b"))
    j.append(record("a"))  # the retry of a, which succeeded
    j.append(record("c", error={"kind": "auth"}))
    j.close()
    assert path.read_bytes().count(b"\n") == 4
    loaded = Journal(path).load()
    assert loaded.ok == {id_key("a"), id_key("b")}
    assert loaded.failed == {id_key("c")}
    assert (loaded.lines, loaded.superseded, loaded.truncated) == (4, 1, 0)


def test_a_torn_last_line_is_cut_off_so_the_next_line_starts_clean(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(record("a") + b"\n" + b'{"id": "b", "te')
    j = Journal(path)
    loaded = j.load()
    assert loaded.ok == {id_key("a")} and loaded.truncated == len(b'{"id": "b", "te')
    j.open()
    j.append(record("b"))
    j.close()
    assert path.read_bytes() == record("a") + b"\n" + record("b") + b"\n"


def test_an_unreadable_line_in_the_middle_is_ignored_and_compacted_away(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(record("a") + b"\ngarbage\n" + record("b") + b"\n")
    j = Journal(path)
    loaded = j.load()
    assert loaded.unreadable == 1 and loaded.ok == {id_key("a"), id_key("b")}
    assert j.compact() == 1
    assert path.read_bytes() == record("a") + b"\n" + record("b") + b"\n"


def test_compact_keeps_the_last_line_of_each_id_in_place(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(
        b"\n".join(
            [record("a", {"kind": "x"}, "old"), record("b"), record("a", None, "new"), record(3)]
        )
        + b"\n"
    )
    j = Journal(path)
    assert j.compact() == 1
    assert [json.loads(ln)["text"] for ln in path.read_bytes().splitlines()] == ["t", "new", "t"]
    assert j.compact() == 0  # nothing left to do: the file is not rewritten
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_fsync_runs_at_most_once_a_second(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    now = [0.0]
    synced: list[int] = []
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd))
    j = Journal(tmp_path / "o.jsonl", clock=lambda: now[0])
    j.open()
    for t in (0.1, 0.5, 0.9):
        now[0] = t
        j.append(record(t))
    assert synced == []
    now[0] = 1.2
    j.append(record("x"))
    assert len(synced) == 1
    now[0] = 1.3
    j.append(record("y"))
    j.close()  # and once more at the end, for what was written since
    assert len(synced) == 2


def test_plan_skips_done_ids_and_failed_ones_unless_asked(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(record("a") + b"\n" + record("b", {"kind": "provider"}) + b"\n")
    loaded = Journal(path).load()
    items = parse_input(lines(*({"id": i, "prompt": i} for i in ("a", "b", "c"))), DEFAULTS).items
    todo, done, skipped = plan(items, loaded, retry_failed=False)
    assert ([i.id for i in todo], done, skipped) == (["c"], 1, 1)
    todo, done, skipped = plan(items, loaded, retry_failed=True)
    assert ([i.id for i in todo], done, skipped) == (["b", "c"], 1, 0)


def test_a_second_batch_on_the_same_output_is_refused(tmp_path: Path) -> None:
    first = Journal(tmp_path / "out.jsonl")
    first.open()
    try:
        with pytest.raises(OSError, match="another llmpipe batch is writing to"):
            Journal(tmp_path / "out.jsonl").open()
    finally:
        first.close()
    second = Journal(tmp_path / "out.jsonl")
    second.open()  # free again
    second.close()
