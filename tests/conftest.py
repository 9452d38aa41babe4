"""Suite-wide rules: which tests are end to end, and a guard that keeps the rest fast.

A test is ``e2e`` when it runs real litellm, a subprocess or a real server.
Whole folders and modules are marked here; tests elsewhere carry
``@pytest.mark.e2e`` themselves. ``pytest -m "not e2e"`` is the inner loop,
and it must never import litellm (seconds on its own): a test that is not
marked and imports it fails, naming the marker it needs.
"""

from __future__ import annotations

import sys
from collections.abc import Generator
from pathlib import Path

import pytest

_TESTS = Path(__file__).parent

#: folders and modules that are end to end as a whole (relative to tests/)
E2E = (
    "e2e/",
    "scale/",
    "test_readme_python.py",
    "test_readme_shell.py",
    "pipeline/cli/batch/test_kill.py",
    "pipeline/cli/test_startup.py",
    "telemetry/test_otlp_e2e.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        where = item.path.relative_to(_TESTS).as_posix()
        if where.startswith(E2E):
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    loaded = "litellm" in sys.modules
    result = yield
    if not loaded and "litellm" in sys.modules and item.get_closest_marker("e2e") is None:
        pytest.fail(f"{item.nodeid} imports litellm: mark it @pytest.mark.e2e", pytrace=False)
    return result
