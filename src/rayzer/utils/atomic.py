"""Atomic file and folder writes: build the result in a hidden temporary sibling, then rename it
into place, so readers (and a crash or Ctrl-C half-way) never see a half-written file or folder.

Written by hand rather than with a library: the standard library has the pieces (``tempfile``,
``os.replace``) but no "stage a folder, then swap it in" helper, and the maintained third-party
options (e.g. ``atomicwrites`` is archived) cover single files only.

Renames are atomic only within one file system, hence the temporaries live next to the target.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from rayzer.utils.paths import OUTPUT_MARKER, check_rayzer_output, check_replaceable

# mkstemp creates files readable by the owner only; the results are ordinary shared files.
FILE_MODE = 0o644


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path (an existing empty file ``.<name>.*.tmp`` next to ``path``) to write
    to by name, e.g. for libraries that only accept a filename; when the block completes it is
    renamed to ``path`` (mode ``0o644``), when the block raises it is deleted and an existing
    ``path`` keeps its old content. Creates missing parent folders.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # no-op after a successful replace


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_path`); default text encoding."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


@contextlib.contextmanager
def staged_dir(
    out: str | os.PathLike,
    overwrite: bool = False,
    *,
    exists_error: str = "{out} already exists (pass overwrite=True to replace it)",
    appeared_error: str | None = None,
) -> Iterator[Path]:
    """Stage a folder in a hidden temporary sibling ``.<name>.tmp-XXXXXXXX`` of ``out``.

    The yielded path does not exist yet (the first writer creates it; it is created empty if the
    block never does). When the block completes the folder is renamed to ``out``; with
    ``overwrite`` an existing ``out`` is first moved aside to ``.<name>.old-XXXXXXXX`` and then
    deleted. When the block raises (any exception, also KeyboardInterrupt) the temporary folder is
    deleted and an existing ``out`` is left untouched.

    Args:
        out: the folder to create (its parent is created if missing).
        overwrite: replace an existing ``out`` instead of raising.
        exists_error: FileExistsError message (``{out}`` is substituted) when ``out`` exists on
            entry, or when it appeared while the block ran, and ``overwrite`` is False.
        appeared_error: a different message for the second case (default: ``exists_error``).
    Raises:
        FileExistsError: as above; checked on entry and again before the final rename.
        ValueError: ``overwrite`` of a folder that must never be replaced (a file-system root,
            the home folder, a folder holding the working directory; see
            :func:`rayzer.utils.paths.check_replaceable`).
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(exists_error.format(out=out))
    if overwrite:
        check_replaceable(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        yield tmp
        tmp.mkdir(exist_ok=True)
        if out.exists():
            if not overwrite:
                raise FileExistsError((appeared_error or exists_error).format(out=out))
            # Two renames, not one: os.replace cannot replace a non-empty folder.
            trash = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
            os.rename(out, trash)
            os.rename(tmp, out)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def staged_output(out: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Reserve a hidden temporary sibling of ``out``; move it into place when the block
    completes, delete it when the block raises (so a failed run leaves nothing that looks like
    output). The yielded path does not exist yet: the first writer creates it.
    (:func:`rayzer.utils.atomic.staged_dir` with the CLI's error messages.) The finished folder
    holds :data:`~rayzer.utils.paths.OUTPUT_MARKER`, and ``overwrite`` replaces only such a
    folder (or an empty one): never a folder of the user's own files.

    Raises:
        FileExistsError: ``out`` exists and ``overwrite`` is False (checked before and after).
        ValueError: ``overwrite`` of a folder rayzer did not write
            (:func:`rayzer.utils.paths.check_rayzer_output`) or must never replace.
    """
    if overwrite:
        check_rayzer_output(out)
    with staged_dir(
        out,
        overwrite,
        exists_error="output folder {out} already exists (pass --overwrite to replace it)",
        appeared_error="output folder {out} appeared while running",
    ) as tmp:
        yield tmp
        mark_output(tmp)


def mark_output(folder: Path) -> None:
    """Write :data:`~rayzer.utils.paths.OUTPUT_MARKER` into ``folder`` (created if missing)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / OUTPUT_MARKER).write_text("written by rayzer; --overwrite may replace this folder\n")
