"""Outside ``rayzer.models`` nothing branches on which model it holds (issue 16): no
``isinstance`` against a registered model class and no comparison of a ``.name`` with a
registered model name. Consumers use the interface and its capability flags instead.

Read from the source with ``ast``, so a new check anywhere in ``src/rayzer`` is caught.
"""

from __future__ import annotations

import ast
from pathlib import Path

import rayzer
from rayzer.models import available_models, model_class

SRC = Path(rayzer.__file__).parent
MODEL_NAMES = set(available_models())
MODEL_CLASSES = {model_class(name).__name__ for name in MODEL_NAMES}

#: Deliberate exceptions, each with its reason. ``rayzer bench quality --lvsm-run`` reuses an
#: existing run of the LVSM oracle by name (the option is named after that model).
ALLOWED = {("bench/quality.py", "cfg_l.model.name != 'lvsm'")}


def _names(node: ast.AST) -> set[str]:
    """Class names in an ``isinstance`` second argument (a name, an attribute or a tuple)."""
    if isinstance(node, ast.Tuple):
        return set().union(*(_names(e) for e in node.elts))
    if isinstance(node, ast.Name):
        return {node.id}
    if isinstance(node, ast.Attribute):
        return {node.attr}
    return set()


def _is_name_attribute(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "name") or (
        isinstance(node, ast.Name) and node.id in ("name", "model_name")
    )


def _model_literals(node: ast.AST) -> set[str]:
    """Registered model names among string constants (also inside a tuple / list / set)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value} & MODEL_NAMES
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return set().union(*(_model_literals(e) for e in node.elts))
    return set()


def dispatch_sites(tree: ast.AST) -> list[str]:
    """Source snippets of the model-identity checks in ``tree``."""
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("isinstance", "issubclass")
            and len(node.args) == 2
            and _names(node.args[1]) & MODEL_CLASSES
        ):
            found.append(ast.unparse(node))
        elif isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(_is_name_attribute(s) for s in sides) and any(_model_literals(s) for s in sides):
                found.append(ast.unparse(node))
    return found


def test_the_scanner_finds_both_kinds_of_check():
    tree = ast.parse(
        "if isinstance(m, (RayZer, Other)): pass\n"
        "if cfg.model.name == 'lvsm': pass\n"
        "if model.name in ('nas3r', 'x'): pass\n"
        "if isinstance(m, RayModel) and model.name == 'mine': pass\n"
    )
    assert dispatch_sites(tree) == [
        "isinstance(m, (RayZer, Other))",
        "cfg.model.name == 'lvsm'",
        "model.name in ('nas3r', 'x')",
    ]


def test_no_model_dispatch_outside_models():
    sites = set()
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if not rel.startswith("models/"):
            tree = ast.parse(path.read_text(), filename=str(path))
            sites |= {(rel, site) for site in dispatch_sites(tree)}
    hits = sorted(sites - ALLOWED)
    assert not hits, "model identity checked outside rayzer.models:\n" + "\n".join(
        f"{rel}: {site}" for rel, site in hits
    )
    assert sites >= ALLOWED, f"stale exceptions: {sorted(ALLOWED - sites)}"
