"""Console logging for the command-line tools."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable


class StderrHandler(logging.StreamHandler):
    """A StreamHandler that writes to whatever ``sys.stderr`` is *now*.

    ``logging.StreamHandler(sys.stderr)`` keeps the stream object it was created with. When the
    CLI runs in-process more than once (tests, notebooks) and ``sys.stderr`` has been replaced
    and closed in between, such a handler fails with "--- Logging error ---" on every record.
    """

    def __init__(self, fmt: str, datefmt: str | None = None) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter(fmt, datefmt))

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:  # StreamHandler.__init__ assigns it; always use sys.stderr
        pass


def command_logging(logger: logging.Logger, quiet: bool) -> Callable[[], None]:
    """Show ``logger``'s records on stderr as ``rayzer: LEVEL: message`` while one command runs
    (INFO and above, WARNING and above when ``quiet``). Returns the function that restores the
    logger (call it in a ``finally``)."""
    handler = StderrHandler("rayzer: %(levelname)s: %(message)s")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)

    def restore() -> None:
        logger.removeHandler(handler)
        logger.setLevel(old_level)

    return restore


def set_threads(threads: int | None) -> None:
    """``--threads N``: PyTorch's intra-op CPU threads (None: leave its default)."""
    if threads is None:
        return
    if threads < 1:
        raise ValueError(f"--threads must be >= 1, got {threads}")
    import torch

    torch.set_num_threads(threads)
