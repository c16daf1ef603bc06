"""Every benchmark's JSON says which code and which command produced it (machine_info)."""

import subprocess
import sys
from pathlib import Path

import rayzer
from rayzer.utils.report import code_info, machine_info


def test_machine_info_names_the_command_and_the_code(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["/usr/bin/rayzer", "bench", "quality", "--runs", "a b=/x"])
    info = machine_info()
    assert info["command"] == "rayzer bench quality --runs 'a b=/x'"  # shell-quoted, re-runnable
    assert info["rayzer"]["version"] == rayzer.__version__
    assert info["rayzer"]["source"] == str(Path(rayzer.__file__).resolve().parent)


def test_git_fields_follow_the_checkout_of_the_source(monkeypatch, tmp_path):
    """A tracked source folder reports its commit and dirtiness; an exported copy (not in any
    checkout) reports None rather than a guess."""
    pkg = tmp_path / "repo" / "rayzer"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text('__version__ = "9"\n')

    def git(*args):
        subprocess.run(["git", *args], cwd=pkg.parent, check=True, capture_output=True)

    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x")
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=pkg.parent, capture_output=True, text=True, check=True
    ).stdout.strip()
    monkeypatch.setattr(rayzer, "__file__", str(pkg / "__init__.py"))
    assert code_info()["git_commit"] == commit
    assert code_info()["git_dirty"] is False
    (pkg / "__init__.py").write_text('__version__ = "10"\n')
    assert code_info()["git_dirty"] is True

    exported = tmp_path / "export" / "rayzer"
    exported.mkdir(parents=True)
    (exported / "__init__.py").write_text("")
    monkeypatch.setattr(rayzer, "__file__", str(exported / "__init__.py"))
    info = code_info()
    assert info["git_commit"] is None and info["git_dirty"] is None
    assert info["source"] == str(exported.resolve())
