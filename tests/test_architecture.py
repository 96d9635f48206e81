"""The layering rules, read from the source with `ast`: who may talk to MLflow or W&B, and no
import cycles between the package's modules (every import counts: top level, inside a function,
under TYPE_CHECKING)."""

import ast
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import ROOT

PACKAGE = ROOT / "src" / "housing_mlops"
TRACKING_LIBRARIES = ("mlflow", "wandb")
# The pipeline layer, the registry's one MLflow module and the integrations; nothing else.
MAY_TRACK = ("housing_mlops.pipeline.", "housing_mlops.registry.store.", "housing_mlops.integrations.")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imported(name: str, path: Path) -> Iterator[tuple[str, int]]:
    """(absolute name, line) of everything `path` imports, `from a import b` as `a.b` too."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from ((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            yield base, node.lineno
            yield from ((f"{base}.{alias.name}", node.lineno) for alias in node.names if alias.name != "*")


def internal_edges(name: str, path: Path) -> set[str]:
    """The package modules `name` imports, plus the packages Python runs to get to them."""
    edges = set()
    for target, _ in imported(name, path):
        if target in MODULES:
            parts = target.split(".")
            edges |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
    return edges - {name}


def test_only_the_pipeline_registry_store_and_integrations_import_mlflow_or_wandb() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line} imports {target}"
        for name, path in MODULES.items()
        if not f"{name}.".startswith(MAY_TRACK)
        for target, line in imported(name, path)
        if target.split(".")[0] in TRACKING_LIBRARIES
    ]
    assert not offenders, "only pipeline/*, registry/store.py and integrations/* talk to MLflow or W&B:\n" + "\n".join(
        offenders
    )


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` as a path that returns to its start, or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_sees_a_cycle_and_only_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycles_between_package_modules() -> None:
    graph = {name: internal_edges(name, path) for name, path in MODULES.items()}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_runner_names_no_integration() -> None:
    runner = MODULES["housing_mlops.pipeline.runner"]
    assert not [t for t, _ in imported("housing_mlops.pipeline.runner", runner) if ".integrations" in t]
