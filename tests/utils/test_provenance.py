"""Every benchmark's JSON says which code and which command produced it
(rayzer.utils.provenance, read by rayzer.utils.report.machine_info)."""

import os
import subprocess
import sys
import types
from importlib.machinery import ModuleSpec
from pathlib import Path

import pytest

import rayzer
from rayzer.utils.provenance import code_info, command_line
from rayzer.utils.report import machine_info


def test_machine_info_names_the_command_and_the_code(monkeypatch, tmp_path):
    """A console script that PATH finds is named bare; shell-quoted, so it can run again."""
    script = tmp_path / "bin" / "rayzer"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setattr(sys, "argv", [str(script), "bench", "quality", "--runs", "a b=/x"])
    info = machine_info()
    assert info["command"] == "rayzer bench quality --runs 'a b=/x'"
    assert info["rayzer"]["version"] == rayzer.__version__
    assert info["rayzer"]["source"] == str(Path(rayzer.__file__).resolve().parent)


def test_a_script_keeps_its_path_and_a_module_its_name(monkeypatch, tmp_path):
    """``python experiments/x/bench.py`` must not shrink to ``bench.py`` (which script?), nor
    ``python -m rayzer.bench.quality`` to its file's name ``quality.py``."""
    monkeypatch.setattr(sys, "argv", ["experiments/issue20_speed/compile_levers.py", "--n", "1"])
    assert command_line() == "python experiments/issue20_speed/compile_levers.py --n 1"
    # a console script's name that PATH finds elsewhere (another install) keeps its path
    monkeypatch.setenv("PATH", str(tmp_path))
    (tmp_path / "rayzer").write_text("")
    (tmp_path / "rayzer").chmod(0o755)
    monkeypatch.setattr(sys, "argv", ["/opt/other/bin/rayzer", "eval"])
    assert command_line() == "python /opt/other/bin/rayzer eval"
    # -m: sys.argv[0] is the module's file
    main = types.ModuleType("__main__")
    main.__file__ = "/src/rayzer/bench/quality.py"
    main.__spec__ = ModuleSpec("rayzer.bench.quality", None, origin=main.__file__)
    monkeypatch.setitem(sys.modules, "__main__", main)
    monkeypatch.setattr(sys, "argv", [main.__file__, "--out", "o"])
    assert command_line() == "python -m rayzer.bench.quality --out o"
    main.__spec__ = ModuleSpec("rayzer.__main__", None, origin="/src/rayzer/__main__.py")
    main.__file__ = "/src/rayzer/__main__.py"
    monkeypatch.setattr(sys, "argv", [main.__file__, "eval"])
    assert command_line() == "python -m rayzer eval"


@pytest.mark.parametrize("argv", [[], [""], ["-c", "x"], ["-"]])
def test_no_command_when_argv_names_no_program_file(monkeypatch, argv):
    monkeypatch.setattr(sys, "argv", argv)
    assert command_line() is None


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
    info = code_info(pkg)
    assert (info["git_commit"], info["git_dirty"], info["version"]) == (commit, False, "9")
    (pkg / "__init__.py").write_text('__version__ = "10"\n')
    assert code_info(pkg)["git_dirty"] is True

    # GIT_DIR (set in git hooks) names another repository: still this checkout's commit
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "elsewhere" / ".git"))
    assert code_info(pkg)["git_commit"] == commit
    monkeypatch.delenv("GIT_DIR")

    exported = tmp_path / "export" / "rayzer"
    exported.mkdir(parents=True)
    (exported / "__init__.py").write_text("")
    info = code_info(exported)
    assert info["git_commit"] is None and info["git_dirty"] is None
    assert info["source"] == str(exported.resolve())
