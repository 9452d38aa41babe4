"""The layering of STYLE.md as folder rules, checked by walking every import statement.

- the core, ``pipeline/*.py``, imports none of ``pipeline.cli``,
  ``pipeline.testing``, ``pipeline.compat``, ``stages``, ``telemetry``; except
  the composition root ``pipeline/composition.py`` (it builds the default
  pipeline from the stages and telemetry), and ``pipeline/__init__.py``'s
  lazy ``pipeline.testing`` attribute (the docs' ``pipeline.testing`` without
  an import of its own; importing ``pipeline`` does not load the doubles);
- ``pipeline/compat/`` (the reference-provider adapter) is an edge: it may
  use the stages' pure functions (tool format, argument repair), never
  ``telemetry``, ``pipeline.cli`` or ``pipeline.testing``; nothing else
  imports it;
- ``stages/`` and ``telemetry/`` import the core only: not each other, nor
  the application or the doubles;
- ``pipeline/cli/`` (the application) and ``pipeline/testing/`` (the shipped
  doubles, which run the real dispatch stage) are composition roots: they
  may import ``stages`` and ``telemetry``; only the CLI imports the CLI;
- only ``stages/dispatch/litellm/`` imports ``litellm``; only ``telemetry/``
  imports ``opentelemetry``; only the two HTTP backends,
  ``stages/dispatch/litellm/`` and ``stages/dispatch/openai/``, import
  ``aiohttp`` (so ``import pipeline`` never loads it).
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: the core modules that may import what the core may not, and what, and why
CORE_EXCEPTIONS = {
    "pipeline/composition.py": {"stages", "telemetry"},  # builds Pipeline.default()
    "pipeline/__init__.py": {"pipeline.testing"},  # the lazy pipeline.testing attribute
}
APPLICATION = ("pipeline/cli/",)
DOUBLES = ("pipeline/testing/",)
EDGE = ("pipeline/compat/",)
LITELLM_HOME = "stages/dispatch/litellm/"
AIOHTTP_HOMES = (LITELLM_HOME, "stages/dispatch/openai/")


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", None) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.add(node.args[0].value)
    return found


def layers(names: set[str]) -> set[str]:
    """What each imported name belongs to: a top package, or a named part of ``pipeline``."""
    out = set()
    for name in names:
        parts = name.split(".")
        if parts[0] == "pipeline" and len(parts) > 1 and parts[1] in ("cli", "testing", "compat"):
            out.add(f"pipeline.{parts[1]}")
        else:
            out.add(parts[0])
    return out


SOURCES = sorted(
    p.relative_to(ROOT).as_posix()
    for pkg in ("pipeline", "stages", "telemetry")
    for p in (ROOT / pkg).rglob("*.py")
)

NOT_CORE = {"stages", "telemetry", "pipeline.cli", "pipeline.testing", "pipeline.compat"}


def forbidden(rel: str) -> set[str]:
    """What ``rel`` must not import, by the folder it is in."""
    return _forbidden(rel) | (set() if rel.startswith(AIOHTTP_HOMES) else {"aiohttp"})


def _forbidden(rel: str) -> set[str]:
    if rel.startswith(APPLICATION):
        return {"pipeline.compat", "litellm", "opentelemetry"}
    if rel.startswith(DOUBLES):
        return {"pipeline.cli", "pipeline.compat", "litellm", "opentelemetry"}
    if rel.startswith(EDGE):
        return {"telemetry", "pipeline.cli", "pipeline.testing", "litellm", "opentelemetry"}
    if rel.startswith("pipeline/"):
        return (NOT_CORE | {"litellm", "opentelemetry"}) - CORE_EXCEPTIONS.get(rel, set())
    if rel.startswith("stages/"):
        rule = {"telemetry", "pipeline.cli", "pipeline.testing", "pipeline.compat", "opentelemetry"}
        return rule if rel.startswith(LITELLM_HOME) else rule | {"litellm"}
    assert rel.startswith("telemetry/")
    return {"stages", "pipeline.cli", "pipeline.testing", "pipeline.compat", "litellm"}


@pytest.mark.parametrize("rel", SOURCES)
def test_layering(rel: str) -> None:
    names = imports_of(ROOT / rel)
    if rel.startswith(EDGE):  # the edge's own modules import each other
        names = {n for n in names if not n.startswith("pipeline.compat")}
    wrong = layers(names) & forbidden(rel)
    assert not wrong, f"{rel} imports {sorted(wrong)}: {sorted(names)}"


def test_the_composition_root_is_the_only_core_module_that_knows_the_stages() -> None:
    knowing = {
        rel
        for rel in SOURCES
        if rel.startswith("pipeline/")
        and not rel.startswith(APPLICATION + DOUBLES + EDGE)
        and layers(imports_of(ROOT / rel)) & {"stages", "telemetry"}
    }
    assert knowing == {"pipeline/composition.py"}


def test_the_walk_sees_function_level_and_dynamic_imports(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text(
        "def f():\n    import litellm.x\n    from stages import y\n    importlib.import_module('telemetry')\n"
    )
    assert imports_of(f) == {"litellm.x", "stages", "telemetry"}
    assert layers({"pipeline.cli.run", "pipeline.events", "litellm.x"}) == {
        "pipeline.cli",
        "pipeline",
        "litellm",
    }


def test_a_rule_broken_is_caught() -> None:
    """The rules bite: each folder's forbidden imports are what STYLE.md says."""
    assert "stages" in forbidden("pipeline/pipeline.py")
    assert "pipeline.testing" in forbidden("pipeline/pipeline.py")
    assert "pipeline.testing" not in forbidden("pipeline/__init__.py")
    assert "litellm" in forbidden("stages/dispatch/__init__.py")
    assert "litellm" not in forbidden("stages/dispatch/litellm/backend.py")
    assert "telemetry" in forbidden("stages/retry.py")
    assert "stages" in forbidden("telemetry/spans.py")
    assert "opentelemetry" in forbidden("pipeline/cli/run.py")
    assert "telemetry" in forbidden("pipeline/compat/provider.py")
    assert "aiohttp" in forbidden("stages/dispatch/http.py")
    assert "aiohttp" in forbidden("pipeline/pipeline.py")
    assert "aiohttp" not in forbidden("stages/dispatch/openai/sessions.py")
