"""The package's layer order (docs/development.md, "Layout"): nothing imports upward, no two
modules import each other in a loop, and no module takes another module's private name (by import,
or as a private member of another module's objects). Read from the source with ``ast``, so a lazy
import inside a function, or one under ``TYPE_CHECKING``, counts as much as one at the top of a
file."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

#: Layers from the ground floor up; a module may import its own layer and the ones below. The
#: package itself (``agnlens/__init__.py``) is the public face, above them all: no module imports it.
LAYERS: list[tuple[str, ...]] = [
    ("agnlens.lines", "agnlens.grid", "agnlens.spectra", "agnlens.classes", "agnlens.atomic", "agnlens.results",
     "agnlens.errors", "agnlens.data", "agnlens._version"),
    ("agnlens.preprocess",),
    ("agnlens.io",),
    ("agnlens.engine", "agnlens.simulate", "agnlens.ingest", "agnlens.redshift"),
    ("agnlens.models", "agnlens.explain", "agnlens.features"),
    ("agnlens.embed", "agnlens.realism", "agnlens.robustness", "agnlens.twins"),
    ("agnlens.plot",),
    ("agnlens.report",),
    ("agnlens.stages",),
    ("agnlens.study_real", "agnlens.pipeline"),
    ("agnlens.cli",),
]


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


def _imported(module: str, path: Path, nodes) -> set[str]:
    """The dotted names that the import statements among ``nodes`` bring in."""
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


def _imports(module: str, path: Path, *, plot_methods: bool = False) -> set[str]:
    """Every import of ``module``: top level, under ``TYPE_CHECKING`` and inside functions; the
    imports inside ``plot`` methods only when ``plot_methods``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = set() if plot_methods else _plot_methods(tree)
    return _imported(module, path, [n for n in ast.walk(tree) if n not in skip])


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def test_every_module_has_a_layer():
    unplaced = [m for m in _modules() if m != "agnlens" and _layer(m) is None]
    assert not unplaced, f"modules without a layer in tests/test_layers.py: {unplaced}"


def _upward(modules: dict[str, Path]) -> list[str]:
    """Every import of a higher layer (the package itself counts as the top: it is the public face)."""
    upward = []
    for module, path in modules.items():
        rank = _layer(module)
        if rank is None:  # the top-level package re-exports the public API
            continue
        for name in _imports(module, path):
            target = _resolve(name, modules)
            target_rank = len(LAYERS) if target == "agnlens" else _layer(target) if target else None
            if target_rank is not None and target_rank > rank:
                upward.append(f"{module} (layer {rank}) imports {target} (layer {target_rank})")
    return sorted(set(upward))


def test_nothing_imports_upward():
    upward = _upward(_modules())
    assert not upward, "\n".join(upward)


def test_no_import_cycles():
    """No loop of imports, counting every kind: a ``TYPE_CHECKING`` import or one inside a ``plot``
    method still ties the two modules together (the one must be read to understand the other)."""
    modules = _modules()
    graph = {m: {t for n in _imports(m, p, plot_methods=True) if (t := _resolve(n, modules)) and t != m}
             for m, p in modules.items()}
    # a package's __init__ importing its own submodules is how packages re-export, not a cycle
    for m in graph:
        graph[m] = {t for t in graph[m] if not t.startswith(m + ".")}
    cycles = _cycles(graph)
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The loops a depth-first walk of ``graph`` (module -> modules it imports) closes."""
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [])
    return cycles


@pytest.mark.parametrize("limit", [500])
def test_no_module_over_the_size_limit(limit):
    big = {m: n for m, p in _modules().items() if (n := len(p.read_text(encoding="utf-8").splitlines())) > limit}
    assert not big, f"modules over {limit} lines (GUIDE: one job per file): {big}"


def _private_imports(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The names ``module`` imports that are private to another module: ``from x import _y`` where
    ``_y`` is not a submodule, or a private module ``p._m`` imported from outside its package ``p``."""
    found = set()
    for name in _imports(module, path, plot_methods=True):
        target = _resolve(name, modules)
        if target is None:
            continue
        rest = name[len(target) + 1:].split(".") if name != target else []
        if target != module and any(part.startswith("_") and not part.startswith("__") for part in rest):
            found.add(name)
        parts = target.split(".")
        for i, part in enumerate(parts):
            owner = ".".join(parts[:i])
            if part.startswith("_") and not part.startswith("__") and not (module + ".").startswith(owner + "."):
                found.add(name)
    return found


def test_no_module_takes_another_modules_private_name():
    modules = _modules()
    taken = sorted(f"{module} imports {name}" for module, path in modules.items()
                   for name in _private_imports(module, path, modules))
    assert not taken, ("a private name belongs to its module; make it public, or make the modules one "
                       "package whose private modules share public names:\n" + "\n".join(taken))


def _private_members(paths: dict[str, Path]) -> dict[str, set[str]]:
    """Private member name -> the modules whose classes define it (``def _x`` or ``self._x = ...``)."""
    owners: dict[str, set[str]] = {}
    for module, path in paths.items():
        for cls in (n for n in ast.walk(ast.parse(path.read_text(encoding="utf-8"))) if isinstance(n, ast.ClassDef)):
            for node in ast.walk(cls):
                if isinstance(node, ast.FunctionDef):
                    name = node.name
                elif (isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
                      and isinstance(node.value, ast.Name) and node.value.id == "self"):
                    name = node.attr
                else:
                    continue
                if name.startswith("_") and not name.startswith("__"):
                    owners.setdefault(name, set()).add(module)
    return owners


def _member_reaches(paths: dict[str, Path]) -> list[str]:
    """``obj._x`` (``obj`` not ``self``/``cls``) where only another module's classes define ``_x``:
    one module reaching into an object of another's past its public names."""
    owners = _private_members(paths)
    found = []
    for module, path in paths.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Attribute) and node.attr in owners and module not in owners[node.attr]
                    and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))):
                found.append(f"{module}:{node.lineno} uses .{node.attr} of {', '.join(sorted(owners[node.attr]))}")
    return found


def test_no_module_reaches_into_another_modules_private_members():
    reaches = _member_reaches(_modules())
    assert not reaches, "use (or add) a documented public member instead:\n" + "\n".join(reaches)


def test_the_rules_catch_what_they_promise(tmp_path):
    """The checks above, each on modules written to break it (a rule that cannot fail proves
    nothing)."""
    pkg = tmp_path / "agnlens"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from agnlens.b import B\n")
    (pkg / "b.py").write_text("def f():\n    from agnlens.a import _x\n")
    modules = {"agnlens.a": pkg / "a.py", "agnlens.b": pkg / "b.py"}
    assert "agnlens.b" in _imports("agnlens.a", pkg / "a.py")  # a TYPE_CHECKING import counts
    assert "agnlens.a" in _imports("agnlens.b", pkg / "b.py")  # and so does a lazy one: a circle
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []
    assert _private_imports("agnlens.b", pkg / "b.py", modules) == {"agnlens.a._x"}
    (pkg / "_m.py").write_text("")
    (pkg / "sub").mkdir()
    (pkg / "sub" / "_inner.py").write_text("")
    (pkg / "c.py").write_text("from agnlens.sub._inner import thing\nfrom agnlens._m import y\n")
    modules.update({"agnlens._m": pkg / "_m.py", "agnlens.sub._inner": pkg / "sub" / "_inner.py"})
    # a private module is its package's own: agnlens._m may be used anywhere in agnlens, sub._inner only in sub
    assert _private_imports("agnlens.c", pkg / "c.py", modules) == {"agnlens.sub._inner", "agnlens.sub._inner.thing"}
    (pkg / "sub" / "__init__.py").write_text("from agnlens.sub._inner import thing\n")
    assert not _private_imports("agnlens.sub", pkg / "sub" / "__init__.py", modules)  # its own package
    assert _layer("agnlens.cli.main") > _layer("agnlens.io.store") > _layer("agnlens.grid")
    (pkg / "est.py").write_text("class Est:\n    def fit(self):\n        self._w = 1\n        return self._w\n")
    (pkg / "use.py").write_text("def f(model):\n    return model._w + model.coef_\n")
    assert _member_reaches({"agnlens.est": pkg / "est.py", "agnlens.use": pkg / "use.py"}) == [
        "agnlens.use:2 uses ._w of agnlens.est"]
    (pkg / "grid.py").write_text("def f():\n    from agnlens import __version__\n    from agnlens.io import x\n")
    (pkg / "io.py").write_text("")
    fake = {"agnlens": pkg / "__init__.py", "agnlens.grid": pkg / "grid.py", "agnlens.io": pkg / "io.py"}
    assert _upward(fake) == [f"agnlens.grid (layer 0) imports agnlens (layer {len(LAYERS)})",
                             "agnlens.grid (layer 0) imports agnlens.io (layer 2)"]
