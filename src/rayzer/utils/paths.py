"""Path rules shared by the commands that write outputs or read user-named files.

Kept in one place so that every command (``infer``, ``eval``, ``data convert``, …) refuses the
same dangerous requests with the same words.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def check_output_apart(
    out: str | os.PathLike, inputs: Mapping[str, str | os.PathLike | None]
) -> None:
    """Refuse an output folder that is, contains or lies inside one of ``inputs``.

    Why: outputs are staged and then swapped in, and ``--overwrite`` deletes the old ``out``
    first. If ``out`` is an input or one of its parent folders, that deletes the user's data;
    if ``out`` lies inside an input, the output becomes part of the input on the next run.
    Checked on resolved paths (symlinks followed), before anything is read or written.

    Args:
        out: the output folder (need not exist).
        inputs: input paths by the option that named them (e.g. ``{"--images": path}``);
            ``None`` values (options not given) are ignored.
    Raises:
        ValueError: naming the output and the input it collides with.
    """
    out_abs = Path(out).resolve()
    for option, path in inputs.items():
        if path is None:
            continue
        src_abs = Path(path).resolve()
        if out_abs == src_abs:
            relation = "is"
        elif out_abs in src_abs.parents:
            relation = "contains"
        elif src_abs in out_abs.parents:
            relation = "lies inside"
        else:
            continue
        raise ValueError(
            f"output folder {out} {relation} the input {option} {path}: choose an output "
            "folder apart from the inputs (--overwrite would delete them)"
        )


def path_inside(root: str | os.PathLike, relative: str) -> Path:
    """``root / relative``, refused unless ``relative`` names a place inside ``root``.

    Why: file names read from a data file (e.g. ``cameras.json``) are untrusted; an entry like
    ``../../etc/hostname`` or an absolute path must not make a reader open files elsewhere.
    The test is on the written name (absolute, or ``..`` climbing above ``root``), not on
    resolved symlinks: a symlink placed inside the folder is the folder owner's choice (datasets
    often link their images from shared storage) and keeps working.

    Raises:
        ValueError: naming the offending entry and the folder it must stay in.
    """
    norm = os.path.normpath(relative)
    if os.path.isabs(relative) or norm == os.pardir or norm.startswith(os.pardir + os.sep):
        raise ValueError(f"file {relative!r} points outside the folder {root}")
    return Path(root) / relative


def check_replaceable(out: str | os.PathLike) -> None:
    """Refuse to replace (``--overwrite``) a folder whose loss could never be intended.

    Why: replacing ``out`` deletes it with everything below it; a file-system root, the home
    folder or a folder holding the current working directory are never a command's output,
    only a typo (``--out /``, ``--out ~``, ``--out ..``); and an existing file is the user's
    data, not an earlier output folder (``--out notes.txt`` replaced the file by a folder).

    Raises:
        ValueError: naming ``out`` and why it cannot be replaced.
    """
    out_abs = Path(out).resolve()
    cwd = Path.cwd().resolve()
    if out_abs.exists() and not out_abs.is_dir():
        raise ValueError(f"refusing to replace {out}: it is a file, not a folder")
    if out_abs == out_abs.parent:
        reason = "is a file-system root"
    elif out_abs == Path.home().resolve():
        reason = "is the home folder"
    elif out_abs == cwd or out_abs in cwd.parents:
        reason = f"contains the current folder {cwd}"
    else:
        return
    raise ValueError(f"refusing to replace the output folder {out}: it {reason}")


#: Written into every output folder of ``infer`` / ``eval`` / ``demo`` / ``data convert``, so that
#: ``--overwrite`` can tell an earlier output (replaceable) from a folder of the user's own files.
OUTPUT_MARKER = ".rayzer-output"


def check_rayzer_output(out: str | os.PathLike) -> None:
    """Refuse to replace (``--overwrite``) a non-empty folder that rayzer did not write.

    Why: replacing deletes the folder with everything in it; ``--out ~/Documents --overwrite``
    (a typo, or a misunderstanding of ``--out``) must not cost the user their files. An empty
    folder, a missing one and a folder holding :data:`OUTPUT_MARKER` are replaceable.

    Raises:
        ValueError: naming ``out`` and what to do instead.
    """
    folder = Path(out)
    if not folder.is_dir() or (folder / OUTPUT_MARKER).is_file() or not any(folder.iterdir()):
        return
    raise ValueError(
        f"refusing to replace {out}: it holds files that rayzer did not write (no "
        f"{OUTPUT_MARKER} marker inside); remove it yourself or choose another --out"
    )


def check_output_folder(
    out: str | os.PathLike, inputs: Mapping[str, str | os.PathLike | None], overwrite: bool
) -> None:
    """Every check of a command's output folder, before any work: apart from the ``inputs``
    (:func:`check_output_apart`), replaceable when ``overwrite`` (:func:`check_replaceable`,
    :func:`check_rayzer_output`), and otherwise not there yet.

    Raises:
        ValueError: ``out`` collides with an input or cannot be replaced;
        FileExistsError: ``out`` exists and ``overwrite`` is False.
    """
    check_output_apart(out, inputs)
    if overwrite:
        check_replaceable(out)
        check_rayzer_output(out)
    if Path(out).exists() and not overwrite:
        raise FileExistsError(
            f"output folder {out} already exists (pass --overwrite to replace it)"
        )
