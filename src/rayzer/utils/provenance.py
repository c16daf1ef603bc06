"""Provenance of a result: the command line that produced it and the rayzer code that ran
(version, source folder, git commit and whether the checkout was dirty).

Read by :func:`rayzer.utils.report.machine_info`, so every benchmark JSON records both.
"""

from __future__ import annotations

import ast
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["code_info", "command_line"]


def command_line() -> str | None:
    """The command line that started this process, shell-quoted so that it can be run again
    (from the same working directory): a console script by its bare name when ``PATH`` finds
    that very file (``rayzer bench quality …``), a module run with ``-m`` as
    ``python -m MODULE …``, a script by the path it was given
    (``python experiments/issue20_speed/compile_levers.py …``); None when ``sys.argv`` names
    no program file (the interactive interpreter, ``python -c``, a program read from stdin)."""
    if not sys.argv or not sys.argv[0]:
        return None
    program, args = sys.argv[0], sys.argv[1:]
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    # With -m, sys.argv[0] is the module's file (its folder and name, not the command).
    if spec is not None and spec.name and program == getattr(main, "__file__", None):
        module = spec.name.removesuffix(".__main__")  # a package's __main__: the package
        return shlex.join(["python", "-m", module, *args])
    if program in ("-c", "-"):  # the program's text is not in sys.argv
        return None
    found = shutil.which(Path(program).name)
    if found is not None and Path(found).resolve() == Path(program).resolve():
        return shlex.join([Path(program).name, *args])
    return shlex.join(["python", program, *args])


#: Environment variables that point git at another repository than its working directory's.
_GIT_REPOSITORY_VARIABLES = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR")


#: The rayzer package folder (``…/rayzer``) this module belongs to.
_PACKAGE = Path(__file__).resolve().parents[1]


def _declared_version(init: Path) -> str | None:
    """``__version__`` as assigned in ``init`` (a package's ``__init__.py``), read rather than
    imported: utils imports no other rayzer module (DESIGN §4, tests/test_import_graph.py)."""
    try:
        tree = ast.parse(init.read_text())
    except (OSError, SyntaxError, ValueError):
        return None
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "__version__" for t in node.targets)
            and isinstance(node.value, ast.Constant)
        ):
            return str(node.value.value)
    return None


def code_info(source: Path | None = None) -> dict[str, Any]:
    """The rayzer code that ran: version, source folder and, when that folder is tracked in a git
    checkout, its commit and whether tracked files differ from it (``git_dirty``); the git
    fields are None for an installed wheel or an exported tree (``git archive``), where the
    source folder is what identifies it. ``source``: the package folder (default: this
    module's package, the code that is running)."""
    source = _PACKAGE if source is None else Path(source).resolve()
    info: dict[str, Any] = {
        "version": _declared_version(source / "__init__.py"),
        "source": str(source),
        "git_commit": None,
        "git_dirty": None,
    }

    # git follows GIT_DIR / GIT_WORK_TREE over its working directory (they are set inside git
    # hooks and `git rebase --exec`): the repository must be the one holding the source.
    env = {k: v for k, v in os.environ.items() if k not in _GIT_REPOSITORY_VARIABLES}

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args], cwd=source, env=env, capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    # Only if this very file is tracked: a site-packages folder inside some other repository
    # must not report that repository's commit.
    if git("ls-files", "--error-unmatch", "__init__.py") is None:
        return info
    info["git_commit"] = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no", ".")
    info["git_dirty"] = None if status is None else bool(status)
    return info
