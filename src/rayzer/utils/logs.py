"""Console logging for the command-line tools."""

from __future__ import annotations

import logging
import sys


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
