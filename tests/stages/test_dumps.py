"""Failed-request dumps: owner-only, pruned, never raising."""

import errno
import json
import logging
import os
import stat
from pathlib import Path

import pytest

from pipeline.events import Chunk, Request
from stages import dumps
from stages.dumps import DumpFile, decode_dump, dump_dir, encode_dump, write_dump

REQ = Request(
    model="openai/m", messages=[{"role": "user", "content": "hi"}], api_key="sk-secret-dump-key"
)


def payload(kind: str = "rate_limited") -> DumpFile:
    return DumpFile.of(
        request=REQ,
        error_kind=kind,
        error="429",
        attempt=1,
        tokens=(12, "estimate"),
        chunks=[Chunk(text="a")],
    )


async def test_writes_an_owner_only_file_in_an_owner_only_directory(tmp_path: Path) -> None:
    target = tmp_path / "dumps"
    path = await write_dump(target, payload(), max_files=50)
    assert path is not None and path.parent == target
    assert stat.S_IMODE(target.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = json.loads(path.read_text())
    assert data["error_kind"] == "rate_limited"
    assert data["attempt"] == 1
    assert data["estimated_tokens"] == 12
    assert data["request"]["model"] == "openai/m"
    assert data["request"]["api_key"] is None
    assert data["chunks"][0]["text"] == "a"
    assert "sk-secret-dump-key" not in path.read_text()


async def test_only_the_newest_are_kept(tmp_path: Path) -> None:
    paths = [await write_dump(tmp_path, payload(), max_files=3) for _ in range(5)]
    assert sorted(tmp_path.glob("*.json")) == sorted(p for p in paths[-3:] if p is not None)


async def test_unwritable_directory_logs_and_returns_none(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with caplog.at_level(logging.WARNING, logger="llmpipe.dumps"):
        assert await write_dump(blocker / "dumps", payload(), max_files=50) is None
    assert "could not write a failed-request dump" in caplog.text


@pytest.mark.parametrize(
    "error",
    [
        OSError(errno.EROFS, "Read-only file system"),
        PermissionError(errno.EACCES, "Permission denied"),
        OSError(errno.ENOSPC, "No space left on device"),
    ],
    ids=["read-only", "permission", "disk-full"],
)
async def test_write_failures_never_raise(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    error: OSError,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def failing_open(*args: object, **kwargs: object) -> int:
        raise error

    monkeypatch.setattr(dumps.os, "open", failing_open)
    with caplog.at_level(logging.WARNING, logger="llmpipe.dumps"):
        assert await write_dump(tmp_path, payload(), max_files=50) is None
    assert error.strerror in caplog.text


def test_dump_dir_comes_from_the_policy_then_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(dumps.DUMP_DIR_ENV, raising=False)
    assert dump_dir(None) is None
    monkeypatch.setenv(dumps.DUMP_DIR_ENV, str(tmp_path))
    assert dump_dir(None) == tmp_path
    assert dump_dir("/elsewhere") == Path("/elsewhere")
    assert dump_dir("~/dumps") == Path.home() / "dumps"
    assert os.environ[dumps.DUMP_DIR_ENV] == str(tmp_path)


#: written by the writer before ``DumpFile`` (a dict encoded by hand), for the same inputs
OLD_DUMP = Path(__file__).parent.parent / "fixtures" / "dumps" / "empty_before_dumpfile.json"


def test_a_dump_written_before_dumpfile_reads_and_writes_back_byte_for_byte() -> None:
    data = OLD_DUMP.read_bytes()
    dump = decode_dump(data)
    assert (dump.error_kind, dump.attempt, dump.estimated_tokens, dump.time) == (
        "empty",
        2,
        7,
        "2025-01-01T12:00:00Z",
    )
    assert dump.request.model == "openai/prod-model" and dump.request.api_key is None
    assert [c.text for c in dump.chunks] == ["hi", "", "", ""]
    assert dump.chunks[1].tool_fragments[0].arguments == '{"q"'
    assert dump.chunks[3].usage_estimated
    # the same bytes, plus the request fields added since (with their defaults)
    added = b'      "temperature": 0.2\n    },\n    "fallbacks": null\n'
    assert encode_dump(dump) == data.replace(b'      "temperature": 0.2\n    }\n', added)
    assert dump.request.fallbacks is None


def test_the_writer_never_writes_the_key_even_of_a_dump_made_by_hand() -> None:
    dump = DumpFile(request=REQ, error_kind="empty")  # REQ carries a key
    assert b"sk-secret-dump-key" not in encode_dump(dump)
    assert decode_dump(encode_dump(dump)).request.api_key is None
