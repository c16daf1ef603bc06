"""``experiments/issue19_refinement/matches_precision``'s scripts leave the repository as it
was: what they write (rows, pycolmap's cameras and work folders) goes to ``probe.out_dir()``,
outside the repository, whatever the working directory they run from."""

from __future__ import annotations

import ast
import json
import tempfile
from pathlib import Path

import pytest

from _scripts import ROOT, load_script

FOLDER = ROOT / "experiments/issue19_refinement/matches_precision"
#: Calls that write to (or make) the file or folder named by their first argument.
WRITERS = {"open", "save", "write_text", "write_bytes", "mkdtemp", "TemporaryDirectory", "mkdir"}


def _fixed_path(node: ast.AST) -> bool:
    """Whether ``node`` names a path by a literal alone (a string, an f-string, or ``Path`` of
    one), i.e. relative to the working directory unless it is absolute."""
    if isinstance(node, ast.Constant | ast.JoinedStr):
        return True
    return (
        isinstance(node, ast.Call)
        and getattr(node.func, "id", None) == "Path"
        and bool(node.args)
        and _fixed_path(node.args[0])
    )


def _fixed_writes(source: str) -> list[str]:
    """The writing calls of ``source`` whose target is a literal path (see ``_fixed_path``)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
        if name not in WRITERS:
            continue
        if name == "open":  # reading is fine
            mode = node.args[1] if len(node.args) > 1 else None
            mode = next((k.value for k in node.keywords if k.arg == "mode"), mode)
            if not (isinstance(mode, ast.Constant) and set(str(mode.value)) & set("wax+")):
                continue
        targets = [k.value for k in node.keywords if k.arg == "dir"]
        if name in ("write_text", "write_bytes", "mkdir"):
            targets.append(node.func.value)  # the receiver: Path("x").write_text(...)
        elif name == "save":  # torch.save(obj, f), numpy.save(f, arr): either argument
            targets += node.args[:2]
        elif node.args and name not in ("mkdtemp", "TemporaryDirectory"):
            targets.append(node.args[0])
        if any(_fixed_path(t) for t in targets):
            found.append(f"line {node.lineno}: {ast.unparse(node)[:80]}")
    return found


def test_the_checker_finds_writes_to_a_literal_path():
    """The checker below catches the forms these scripts used (fails open otherwise)."""
    src = (
        "open('rows.jsonl', 'a')\ntorch.save(x, f'pyc_{w}.pt')\ntempfile.mkdtemp(dir='.')\n"
        "Path('a.json').write_text(s)\nopen('cfg.json')\nopen(out_dir() / 'r.jsonl', 'a')\n"
        "Path(log).write_text(s)\ntempfile.TemporaryDirectory(dir=out_dir())\n"
    )
    assert [f.split(":")[0] for f in _fixed_writes(src)] == ["line 1", "line 2", "line 3", "line 4"]


@pytest.mark.parametrize("script", sorted(p.name for p in FOLDER.glob("*.py")))
def test_no_script_writes_to_a_path_relative_to_where_it_runs(script):
    """pyc.py made its pycolmap folder with ``mkdtemp(dir=".")`` (never removed) and saved
    ``pyc_*.pt`` there; probe.py / solve_probe.py / guided_probe.py appended their rows to
    ``results.jsonl`` / ``guided.jsonl`` of the working directory, which is this folder of the
    repository when run as the README says."""
    assert _fixed_writes((FOLDER / script).read_text()) == []


def test_rows_go_to_the_output_folder_outside_the_repository(tmp_path, monkeypatch):
    """``out_dir()``: ``$MATCHES_PRECISION_OUT``, else a folder of the temporary directory;
    probe.py loads from any working directory (it read ``pyc_views.json`` from the working
    directory)."""
    monkeypatch.chdir(tmp_path)
    probe = load_script(str((FOLDER / "probe.py").relative_to(ROOT)))
    monkeypatch.delenv("MATCHES_PRECISION_OUT", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    assert probe.out_dir() == tmp_path / "tmp" / "matches_precision"
    assert not probe.out_dir().resolve().is_relative_to(ROOT.resolve())
    monkeypatch.setenv("MATCHES_PRECISION_OUT", str(tmp_path / "rows"))
    probe.append_row("results.jsonl", {"window": "fox:20", "all": [0.155, 0.263]})
    probe.append_row("results.jsonl", {"window": "fox:39"})
    lines = (tmp_path / "rows" / "results.jsonl").read_text().splitlines()
    assert [json.loads(x)["window"] for x in lines] == ["fox:20", "fox:39"]
    assert sorted(p.name for p in Path(tmp_path).iterdir()) == ["rows", "tmp"]
