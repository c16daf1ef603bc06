"""The allowed import graph of ``rayzer`` (DESIGN §4), read from the source with ``ast``.

Every ``import`` / ``from … import`` in ``src/rayzer`` counts, at module level or inside a
function, so a lazy import cannot hide a forbidden edge. The rules:

* geometry ← nn ← models: geometry imports no other rayzer package; nn only geometry; models
  neither data, train, eval, infer, bench nor the CLI.
* render imports only geometry.
* data never imports models (nor anything above it).
* eval, infer and bench form no import cycles between them; infer does not import train.
* configs live in leaf modules: ``rayzer.config`` and ``rayzer.model_config`` import no other
  rayzer module except each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import rayzer

SRC = Path(rayzer.__file__).parent


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Fully qualified rayzer modules (or packages) imported anywhere in ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "rayzer")
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            if mod.split(".")[0] != "rayzer":
                continue
            found.add(mod)
            # ``from rayzer.models import registry`` imports a submodule
            for alias in node.names:
                sub = f"{mod}.{alias.name}"
                if (SRC.parent / sub.replace(".", "/")).with_suffix(".py").is_file():
                    found.add(sub)
    return found


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in SRC.rglob("*.py")}


GRAPH = _graph()


def _package(module: str) -> str:
    """``rayzer.eval.run`` → ``eval``; top-level modules keep their name (``config``)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "rayzer"


def _edges(src_pkg: str) -> set[tuple[str, str]]:
    return {
        (mod, dep)
        for mod, deps in GRAPH.items()
        if _package(mod) == src_pkg
        for dep in deps
        if _package(dep) != src_pkg
    }


def _forbidden(src_pkg: str, allowed: set[str]) -> list[str]:
    return sorted(f"{m} imports {d}" for m, d in _edges(src_pkg) if _package(d) not in allowed)


def test_the_parser_sees_function_level_and_package_imports():
    """The checker must be able to fail: it sees a lazy import and a ``from pkg import mod``."""
    loop = GRAPH["rayzer.train.loop"]
    assert "rayzer.models" in loop and "rayzer.data.stream" in loop
    lazy = ast.parse("def f():\n    from rayzer.models import registry\n")
    assert any(isinstance(n, ast.ImportFrom) for n in ast.walk(lazy))
    assert "rayzer.models.registry" in _imports(SRC / "models" / "__init__.py")


@pytest.mark.parametrize(
    ("package", "allowed"),
    [
        ("geometry", set()),
        ("nn", {"geometry"}),
        ("render", {"geometry"}),
        ("models", {"geometry", "nn", "render", "model_config", "utils"}),
        ("data", {"geometry", "config", "model_config", "utils"}),
        ("utils", set()),
    ],
)
def test_lower_layers_import_only_below_them(package, allowed):
    assert _forbidden(package, allowed) == []


def test_configs_are_leaf_modules():
    for leaf in ("rayzer.config", "rayzer.model_config"):
        others = {d for d in GRAPH[leaf] if d not in ("rayzer.config", "rayzer.model_config")}
        assert others == set(), f"{leaf} imports {sorted(others)}"


def test_data_never_reaches_model_code():
    """Transitively: importing any data module loads no model (and no torch network) code."""
    seen: set[str] = set()
    todo = [m for m in GRAPH if _package(m) == "data"]
    while todo:
        mod = todo.pop()
        if mod in seen:
            continue
        seen.add(mod)
        todo += [d for d in GRAPH.get(mod, ()) if d in GRAPH]
    assert sorted(m for m in seen if _package(m) == "models") == []


def test_infer_does_not_import_train():
    assert sorted(f"{m} imports {d}" for m, d in _edges("infer") if _package(d) == "train") == []


def test_eval_infer_bench_form_no_cycles():
    """No package-level cycle among eval, infer, bench (and the layers below them)."""
    packages = {"eval", "infer", "bench", "train", "models", "data", "checkpoints"}
    edges: dict[str, set[str]] = {p: set() for p in packages}
    for mod, deps in GRAPH.items():
        for dep in deps:
            a, b = _package(mod), _package(dep)
            if a != b and a in packages and b in packages:
                edges[a].add(b)

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            p = todo.pop()
            if p == goal:
                return True
            if p not in seen:
                seen.add(p)
                todo += edges[p]
        return False

    cycles = sorted(f"{a} ⇄ {b}" for a in packages for b in edges[a] if reaches(b, a))
    assert cycles == []
