"""The package's layer order (README "Layout", ../shared/GUIDE.md): nothing imports upward, and the
modules' top-level imports form no cycle. Read from the source with ``ast``, so a lazy import inside
a function counts as much as one at the top of a file."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

#: Layers from the ground floor up; a module may import its own layer and the ones below.
LAYERS: list[tuple[str, ...]] = [
    ("agnlens.lines", "agnlens.grid", "agnlens.spectra", "agnlens.classes", "agnlens.atomic", "agnlens.results",
     "agnlens.errors", "agnlens.data"),
    ("agnlens.io",),
    ("agnlens.preprocess", "agnlens.engine"),
    ("agnlens.simulate", "agnlens.ingest", "agnlens.redshift"),
    ("agnlens.models", "agnlens.explain", "agnlens.features"),
    ("agnlens.embed", "agnlens.realism", "agnlens.robustness"),
    ("agnlens.plot",),
    ("agnlens.report",),
    ("agnlens.stages",),
    ("agnlens.study_real", "agnlens.pipeline", "agnlens.parallel"),
    ("agnlens.cli",),
]


#: The only upward imports, each lazy (inside a function) and each for a stated reason.
ALLOWED_UPWARD = {
    # io's public ``as_spectrum_set`` preprocesses the arrays a user hands in (since v0.1)
    ("agnlens.io.coerce", "agnlens.preprocess"),
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted((SRC / "agnlens").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _layer(module: str) -> int | None:
    for rank, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank
    return None


def _plot_methods(tree: ast.Module) -> set[ast.AST]:
    """Import nodes inside a ``plot`` method: a result's ``.plot()`` draws itself through
    :mod:`agnlens.plot` (the pandas/scikit-learn convention), importing matplotlib only when called."""
    return {n for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) and f.name == "plot"
            for n in ast.walk(f) if isinstance(n, (ast.Import, ast.ImportFrom))}


def _imports(module: str, path: Path, *, top_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _plot_methods(tree)
    nodes = tree.body if top_level_only else [n for n in ast.walk(tree) if n not in skip]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                name = f"{base}.{node.module}" if node.module else base
            else:
                name = node.module or ""
            found.add(name)
            found.update(f"{name}.{a.name}" for a in node.names)  # "from agnlens.io import store"
    return {m for m in found if m == "agnlens" or m.startswith("agnlens.")}


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def test_every_module_has_a_layer():
    unplaced = [m for m in _modules() if m != "agnlens" and _layer(m) is None]
    assert not unplaced, f"modules without a layer in tests/test_layers.py: {unplaced}"


def test_nothing_imports_upward():
    modules = _modules()
    upward = []
    for module, path in modules.items():
        rank = _layer(module)
        if rank is None:  # the top-level package re-exports the public API
            continue
        for name in _imports(module, path, top_level_only=False):
            target = _resolve(name, modules)
            target_rank = _layer(target) if target else None
            if target_rank is not None and target_rank > rank and (module, target) not in ALLOWED_UPWARD:
                upward.append(f"{module} (layer {rank}) imports {target} (layer {target_rank})")
    assert not upward, "\n".join(sorted(set(upward)))


def test_no_import_cycles():
    modules = _modules()
    graph = {m: {t for n in _imports(m, p, top_level_only=True) if (t := _resolve(n, modules)) and t != m}
             for m, p in modules.items()}
    # a package's __init__ importing its own submodules is how packages re-export, not a cycle
    for m in graph:
        graph[m] = {t for t in graph[m] if not t.startswith(m + ".")}
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("limit", [500])
def test_no_module_over_the_size_limit(limit):
    big = {m: n for m, p in _modules().items() if (n := len(p.read_text(encoding="utf-8").splitlines())) > limit}
    assert not big, f"modules over {limit} lines (GUIDE: one job per file): {big}"
