"""One training per run folder: an advisory lock on ``<out_dir>/train.lock``.

Two trainings writing into one folder (a second ``rayzer train --out same``, or workers of a
killed torchrun launcher still running) overwrite each other's checkpoints and duplicate every
metrics line. The lock is ``fcntl.flock`` on a file in the run folder: the kernel releases it
when its holder exits, however it exits, so a crash never leaves a stale lock behind. Only the
main process (rank 0) of a distributed run takes it; the other ranks write nothing.

POSIX only (``fcntl``); where it is missing (Windows) runs are not locked. ``flock`` on some
network file systems is local to one machine; multi-node runs still get one writer per node 0.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = "train.lock"


class RunFolderBusy(ValueError):
    """Another process is training into the run folder (a ValueError: a clean CLI error)."""


def _holder(path: Path) -> str:
    """The holder's process id as written in the lock file, for the message ('' if unknown)."""
    try:
        pid = path.read_text().strip()
    except OSError:
        return ""
    return f" (process {pid})" if pid.isdigit() else ""


@contextlib.contextmanager
def run_folder_lock(out_dir: str | os.PathLike, enabled: bool = True) -> Iterator[None]:
    """Hold the run folder's lock for the block (creates ``out_dir``).

    Args:
        out_dir: the run folder.
        enabled: False on the non-main ranks of a distributed run (no lock taken).
    Raises:
        RunFolderBusy: another live process holds the lock; the message names the folder and,
            when known, that process.
    """
    if not enabled or fcntl is None:
        yield
        return
    folder = Path(out_dir)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    # Opened without truncating: the holder's pid must stay readable for the message.
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunFolderBusy(
                f"run folder {folder} is in use by another training{_holder(path)}; wait for it "
                "to finish, stop it, or choose another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        try:
            yield
        finally:
            # A run that failed before writing anything leaves no folder (as without the lock).
            if created and [p.name for p in folder.iterdir()] == [LOCK_FILE]:
                path.unlink()
                folder.rmdir()
    finally:
        os.close(fd)  # closing the descriptor releases the lock
