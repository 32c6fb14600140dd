"""The package's architecture, checked from the source (docs/architecture.md).

An AST scan of every module under ``magsr_tf/``: which subpackage imports which,
import cycles between files, private names crossing subpackages, file sizes and
the modules left at the top. Imports inside functions count too: a lazy import
is still a dependency.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "magsr_tf"
MAX_LINES = 600
TOP_LEVEL_MODULES = {"__init__", "errors", "lazy", "api"}
SUBPACKAGES = {
    "physics",
    "ops",
    "io",
    "data",
    "nn",
    "training",
    "inference",
    "priors",
    "evaluation",
    "serving",
    "jobs",
    "benchmarks",
}
# Subpackage -> subpackages it must never import (docs/architecture.md).
FORBIDDEN = {
    "physics": SUBPACKAGES - {"physics"},
    "ops": SUBPACKAGES - {"physics", "ops"},
    "io": SUBPACKAGES - {"physics", "ops", "io"},
    "data": {"nn", "training", "inference", "priors", "evaluation", "serving", "jobs"},
    "nn": {"training", "inference", "priors", "evaluation", "serving", "jobs"},
    "training": {"inference", "priors", "evaluation", "serving", "jobs"},
    "inference": {"training", "priors", "evaluation", "serving", "jobs"},
    "priors": {"evaluation", "inference", "serving", "jobs"},
    "evaluation": {"serving", "jobs"},
    "serving": {"training", "data", "evaluation", "priors", "jobs"},
    "jobs": set(),
}
NO_TENSORFLOW_AT_IMPORT = {"physics", "ops", "io"}
NO_TENSORFLOW_ANYWHERE = {"physics"}
HEAVY = ("tensorflow", "keras")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


MODULES = _modules()


def _imports(path: Path) -> list[tuple[str, list[str], bool]]:
    """(imported module, imported names, at module level) for every import in a file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    top_level = {id(node) for node in tree.body}
    for node in tree.body:  # imports under `if TYPE_CHECKING:` or try/except at top level
        if isinstance(node, (ast.If, ast.Try)):
            top_level.update(id(child) for child in ast.walk(node))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append((alias.name, [], id(node) in top_level))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.append((name, [a.name for a in node.names], id(node) in top_level))
    return found


def _target(name: str, names: list[str]) -> list[str]:
    """The magsr_tf modules an import statement loads (``from pkg import module`` included)."""
    if not name.startswith("magsr_tf"):
        return []
    targets = [name] if name in MODULES else []
    targets += [f"{name}.{n}" for n in names if f"{name}.{n}" in MODULES]
    return targets or ([name] if name.split(".")[0] == "magsr_tf" else [])


def _subpackage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in SUBPACKAGES else None


def _edges() -> dict[str, set[str]]:
    edges = {}
    for module, path in MODULES.items():
        edges[module] = set()
        for name, names, _ in _imports(path):
            for target in _target(name, names):
                if target != module and target in MODULES:
                    edges[module].add(target)
    return edges


def test_subpackages_import_only_downwards():
    bad = []
    for module, path in MODULES.items():
        own = _subpackage(module)
        for name, names, _ in _imports(path):
            if name.split(".")[0] == "magsr_tf_cli":
                bad.append(f"{module} imports the CLI ({name})")
            for target in _target(name, names):
                other = _subpackage(target)
                if other == "benchmarks" and own != "benchmarks":
                    bad.append(f"{module} imports {target}")
                if own in FORBIDDEN and other in FORBIDDEN[own]:
                    bad.append(f"{module} ({own}) imports {target} ({other})")
    assert not bad, "\n".join(bad)


def test_no_tensorflow_where_forbidden():
    bad = []
    for module, path in MODULES.items():
        own = _subpackage(module)
        for name, _, top in _imports(path):
            heavy = name.split(".")[0] in HEAVY
            if heavy and own in NO_TENSORFLOW_ANYWHERE:
                bad.append(f"{module} imports {name}")
            elif heavy and top and own in NO_TENSORFLOW_AT_IMPORT:
                bad.append(f"{module} imports {name} at module level")
    assert not bad, "\n".join(bad)


def test_no_import_cycle_between_files():
    edges = _edges()
    # Subpackage __init__ files re-export their modules: an edge into a package
    # stands for the modules it re-exports, so cycles through them are real too.
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt) :] + [nxt]))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)
    assert not cycles, "\n".join(cycles)


def test_no_private_name_crosses_a_subpackage():
    bad = []
    for module, path in MODULES.items():
        own = _subpackage(module)
        for name, names, _ in _imports(path):
            if not name.startswith("magsr_tf"):
                continue
            crossing = _subpackage(name) != own
            private = [n for n in names if n.startswith("_") and n != "__version__"]
            private_module = any(part.startswith("_") for part in name.split(".")[1:])
            if crossing and (private or private_module):
                bad.append(f"{module} imports {private or name} from {name}")
    assert not bad, "\n".join(bad)


def _defined_names(path: Path) -> set[str]:
    """Names a module assigns itself (not the ones it imports or re-exports)."""
    tree = ast.parse(path.read_text())
    return {
        target.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }


def test_library_imports_names_from_their_defining_module():
    """Never from the root package or a subpackage __init__ (their re-exports are for users):
    an import through an __init__ is an import-order cycle waiting to happen."""
    packages = {m for m, p in MODULES.items() if p.name == "__init__.py"}
    bad = []
    for module, path in MODULES.items():
        if path.name == "__init__.py":
            continue
        for name, names, _ in _imports(path):
            if name in packages:
                defined = _defined_names(MODULES[name])
                via_init = [n for n in names if f"{name}.{n}" not in MODULES and n not in defined]
                if via_init:
                    bad.append(f"{module} imports {via_init} from the package {name}")
    assert not bad, "\n".join(bad)


def test_file_sizes_and_top_level_modules():
    too_long = [
        f"{p.relative_to(ROOT)}: {n} lines"
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    ]
    assert not too_long, "\n".join(too_long)
    top = {p.stem for p in PACKAGE.glob("*.py")}
    assert top <= TOP_LEVEL_MODULES, sorted(top - TOP_LEVEL_MODULES)
    packages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert packages == SUBPACKAGES, sorted(packages ^ SUBPACKAGES)


def test_scan_sees_imports():
    """The scan itself: a known dependency and a known absence are reported as such."""
    edges = _edges()
    assert "magsr_tf.physics.hamiltonian" in edges["magsr_tf.physics.anneal"]
    assert not any(t.startswith("magsr_tf.nn") for t in edges["magsr_tf.physics.anneal"])


@pytest.mark.parametrize(
    "module", ["magsr_tf", "magsr_tf.physics.anneal", "magsr_tf.ops.downsample", "magsr_tf.io"]
)
def test_light_modules_do_not_load_tensorflow(module):
    code = f"import sys, {module}; assert 'tensorflow' not in sys.modules, '{module}'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
