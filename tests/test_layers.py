"""The package's layers only import downwards.

backends (bottom) -> core -> aio -> kombu -> cli.  Every module of a layer is
parsed, and every import in it (at the top, inside a function, under
``TYPE_CHECKING``, a ``cimport`` in a ``.pxd``) must name greenpools
modules of its own layer or a lower one.  The shared modules at the top
of the package (exceptions, forking, startup, otel, _build) are not a
layer and are not checked here.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import greenpools

PACKAGE_DIR = Path(greenpools.__file__).parent

#: Each layer, bottom first: a module may import only its own layer and those before it.
LAYERS = ("backends", "core", "aio", "kombu", "cli")

CIMPORT = re.compile(r"^\s*(?:from\s+(\S+)\s+cimport|cimport\s+(\S+))", re.MULTILINE)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(path: Path) -> list[str]:
    name = module_name(path).split(".")
    return name if path.stem == "__init__" else name[:-1]


def imported_names(path: Path) -> set[str]:
    """Every module name ``path`` imports (``from a import b`` gives ``a`` and ``a.b``)."""
    source = path.read_text()
    if path.suffix == ".pxd":
        return {a or b for a, b in CIMPORT.findall(source)}
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = package_of(path)
                package = package[: len(package) - node.level + 1]
                base = ".".join([*package, *filter(None, [node.module])])
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def layer_of(name: str) -> str | None:
    parts = name.split(".")
    if len(parts) > 1 and parts[0] == "greenpools" and parts[1] in LAYERS:
        return parts[1]
    return None


def violations() -> list[str]:
    found = []
    for path in sorted([*PACKAGE_DIR.rglob("*.py"), *PACKAGE_DIR.rglob("*.pxd")]):
        own = layer_of(module_name(path))
        if own is None:
            continue
        allowed = LAYERS[: LAYERS.index(own) + 1]
        for name in sorted(imported_names(path)):
            target = layer_of(name)
            if target is not None and target not in allowed:
                found.append(f"{path.relative_to(PACKAGE_DIR.parent)} ({own}) imports {name}")
    return found


def test_the_walk_sees_imports_of_every_kind() -> None:
    resource = imported_names(PACKAGE_DIR / "core" / "resource.py")
    assert {"greenpools.backends", "greenpools.core.slotpool"} <= resource, resource
    pools = imported_names(PACKAGE_DIR / "kombu" / "pools.py")
    assert "greenpools.core.options" in pools, pools
    slotpool_pxd = imported_names(PACKAGE_DIR / "core" / "slotpool.pxd")
    assert "greenpools.core.waiting" in slotpool_pxd, slotpool_pxd
    compat = imported_names(PACKAGE_DIR / "pools.py")  # under TYPE_CHECKING too
    assert "greenpools.kombu.pools" in compat, compat


@pytest.mark.parametrize("layer", LAYERS)
def test_every_layer_has_modules(layer: str) -> None:
    assert (PACKAGE_DIR / layer / "__init__.py").exists()


def test_layers_import_only_downwards() -> None:
    assert violations() == []


def import_graph() -> dict[str, set[str]]:
    """Each greenpools module -> the greenpools modules it imports, anywhere in
    it (a function's body too).  Importing a submodule through its package
    (``from .. import backends``) is not an edge to the package itself, whose
    initialisation is already under way."""
    paths = [*PACKAGE_DIR.rglob("*.py"), *PACKAGE_DIR.rglob("*.pxd")]
    modules = {module_name(path) for path in paths}
    graph: dict[str, set[str]] = {}
    for path in paths:
        name = module_name(path)
        ancestors = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        graph.setdefault(name, set()).update(
            imported for imported in imported_names(path)
            if imported in modules and imported != name and imported not in ancestors
        )
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One import cycle through each module that is on one (depth first)."""
    found: list[list[str]] = []
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            found.append([*path[path.index(module):], module])
            return
        if module in done:
            return
        for imported in sorted(graph.get(module, ())):
            visit(imported, [*path, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])
    return found


def test_the_cycle_finder_finds_an_import_made_inside_a_function() -> None:
    graph = import_graph()
    graph["greenpools.core.events"] = {*graph["greenpools.core.events"],
                                       "greenpools.core.resource"}
    assert any("greenpools.core.events" in cycle for cycle in cycles(graph))


def test_no_module_imports_one_that_imports_it_back() -> None:
    assert cycles(import_graph()) == []


def test_no_module_is_over_800_lines_but_the_state_machine() -> None:
    """A module owns one idea; the slot pool is the one state machine."""
    long = {
        str(path.relative_to(PACKAGE_DIR.parent)): lines
        for path in PACKAGE_DIR.rglob("*.py")
        if (lines := len(path.read_text().splitlines())) > 800
        and path != PACKAGE_DIR / "core" / "slotpool.py"
    }
    assert long == {}
