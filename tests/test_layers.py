"""The house's floors (../shared/DESIGN.md): imports point one way, and there is no circle.

Every ``import`` / ``from ... import`` of every module under src/binlearn is read with
``ast`` (at module level, inside functions and under ``TYPE_CHECKING`` alike), so a lazy
import cannot hide an upward dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "binlearn"

# floor -> the floors it may import (itself always). ``atomic`` is the ground floor.
ALLOWED: dict[str, set[str]] = {
    "version": set(),
    "atomic": set(),
    "errors": set(),
    "stop": set(),
    "kernel_cache": set(),  # where numba caches kernels; set by binlearn/__init__ before numba loads
    "data": {"atomic"},
    "binary": {"atomic"},
    "nn": {"atomic", "binary"},
    "energy": {"atomic", "binary"},
    "rules": {"atomic", "binary", "nn", "energy"},
    "spiking": {"atomic", "binary", "nn", "energy"},
    "experiment": {"atomic", "data", "binary", "nn", "energy", "rules", "spiking"},
    "artifacts": {"atomic", "data", "binary", "nn", "energy", "rules", "spiking", "experiment"},
    "reproduce": {"atomic", "data", "binary", "nn", "energy", "rules", "spiking", "experiment", "artifacts"},
    "cli": {"atomic", "data", "binary", "nn", "energy", "rules", "spiking", "experiment", "artifacts",
            "reproduce"},
    "__main__": {"cli"},
    # the generated reference pages of the documentation site (the CLI's parser, the configs)
    "reference_pages": {"atomic", "data", "binary", "nn", "energy", "rules", "spiking", "experiment",
                        "artifacts", "reproduce", "cli"},
}
GROUND = {"version", "atomic", "errors", "stop"}  # every floor may import these


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


MODULES = _modules()


def _imports(name: str, path: Path) -> list[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) for every binlearn import in ``path``."""
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, [], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names = [alias.name for alias in node.names]
            # ``from pkg import submodule`` imports the submodule
            modules = [f"{base}.{n}" for n in names if f"{base}.{n}" in MODULES]
            found += [(m, [], node.lineno) for m in modules]
            rest = [n for n in names if f"{base}.{n}" not in MODULES]
            if rest or not modules:
                found.append((base, rest, node.lineno))
    return [(module, names, line) for module, names, line in found
            if module == "binlearn" or module.startswith("binlearn.")]


def _floor(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_module_is_on_a_known_floor():
    floors = {_floor(name) for name in MODULES} - {""}
    assert floors <= set(ALLOWED), f"new floor(s) {sorted(floors - set(ALLOWED))}: place them in ALLOWED"


def test_imports_point_down_only():
    wrong = []
    for name, path in MODULES.items():
        floor = _floor(name)
        if not floor:  # the root package re-exports the public API
            continue
        for module, names, line in _imports(name, path):
            target = _floor(module)
            if not target:
                wrong.append(f"{path.relative_to(SRC)}:{line} imports {names} from the root package")
            elif target != floor and target not in ALLOWED[floor] | GROUND:
                wrong.append(f"{path.relative_to(SRC)}:{line} ({floor}) imports {module} ({target})")
    assert not wrong, "upward imports:\n" + "\n".join(wrong)


def test_lower_floors_know_nothing_of_rules_or_experiments():
    """The acceptance line of issue 13, stated on its own."""
    for floor in ("binary", "data", "energy", "nn"):
        assert not ALLOWED[floor] & {"rules", "experiment", "cli", "spiking"}


def test_no_private_names_cross_modules():
    """A module uses another's public names only (its own package's ``_`` helpers stay home)."""
    wrong = []
    for name, path in MODULES.items():
        for module, names, line in _imports(name, path):
            private = [n for n in names if n.startswith("_") and n != "__version__"]
            if any(part.startswith("_") and part != "__init__" for part in module.split(".")):
                private.append(module)
            if private:
                wrong.append(f"{path.relative_to(SRC)}:{line} imports {private} from {module}")
    assert not wrong, "\n".join(wrong)


def test_no_import_circle():
    """Modules form a DAG (a package's ``__init__`` importing its own submodules is the only
    edge allowed into a package, so ``from binlearn.energy import X`` inside energy/ is a
    circle and refused)."""
    graph = {name: sorted({m for m, _, _ in _imports(name, path) if m in MODULES and m != name})
             for name, path in MODULES.items()}
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    circles = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                circles.append(" -> ".join([*trail[trail.index(nxt):], nxt]))
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [node])
    # a package importing a submodule that imports the package back (for another name) is a
    # circle too, but the DFS above sees it only if the submodule names the package; so check
    # that no module imports its own package's __init__ (or an ancestor's).
    for name, edges in graph.items():
        for target in edges:
            if name.startswith(target + ".") and MODULES[target].name == "__init__.py":
                circles.append(f"{name} -> {target} (its own package)")
    assert not circles, "import circles:\n" + "\n".join(sorted(set(circles)))
