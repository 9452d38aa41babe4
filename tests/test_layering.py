"""The layering of STYLE.md, checked by walking every import statement.

- the core (``pipeline/``) imports nothing from ``stages`` or ``telemetry``,
  except the composition roots (the module that builds the default pipeline,
  and the CLI and its Ray batch engine, an application);
- ``pipeline/compat/`` (the reference-provider adapter) is an edge: it may
  import ``stages`` for their pure functions (the tool format, argument
  repair), never ``telemetry``; and no other core module imports it;
- ``stages`` and ``telemetry`` import the core only (and not each other);
- only ``telemetry`` imports ``opentelemetry``; only ``stages/dispatch*``
  and the litellm adapters ``stages/litellm_*`` import ``litellm``.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMPOSITION_ROOTS = {
    "pipeline/composition.py",
    "pipeline/cli/__init__.py",
    "pipeline/cli/batch/ray_engine.py",
    "pipeline/testing/scripted.py",
}
EDGES = ("pipeline/compat/",)


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


def top(name: str) -> str:
    return name.split(".")[0]


SOURCES = sorted(
    p.relative_to(ROOT).as_posix()
    for pkg in ("pipeline", "stages", "telemetry")
    for p in (ROOT / pkg).rglob("*.py")
)


@pytest.mark.parametrize("rel", SOURCES)
def test_layering(rel: str) -> None:
    package = rel.split("/")[0]
    names = imports_of(ROOT / rel)
    tops = {top(n) for n in names}
    if rel.startswith(EDGES):
        assert "telemetry" not in tops, f"{rel} is an edge adapter and must not import telemetry"
    elif package == "pipeline" and rel not in COMPOSITION_ROOTS:
        assert not tops & {"stages", "telemetry"}, (
            f"{rel} is core and must not import stages/telemetry"
        )
    if not rel.startswith(EDGES):
        assert not {n for n in names if n.startswith("pipeline.compat")}, (
            f"{rel} must not depend on the compat adapter"
        )
    if package == "stages":
        assert "telemetry" not in tops, f"{rel}: stages must not import telemetry"
    if package == "telemetry":
        assert "stages" not in tops, f"{rel}: telemetry must not import stages"
    if package != "telemetry":
        assert "opentelemetry" not in tops, f"{rel}: only telemetry/ may import opentelemetry"
    if not rel.startswith("stages/dispatch/litellm/"):
        assert "litellm" not in tops, f"{rel}: only stages/dispatch/litellm/ imports litellm"


def test_the_walk_sees_function_level_and_dynamic_imports(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text(
        "def f():\n    import litellm.x\n    from stages import y\n    importlib.import_module('telemetry')\n"
    )
    assert imports_of(f) == {"litellm.x", "stages", "telemetry"}
