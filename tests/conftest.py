"""Suite-wide fixtures."""

from __future__ import annotations

import logging

import pytest


@pytest.fixture(autouse=True)
def isolated_rayzer_logging():
    """Undo what an in-process CLI call did to the ``rayzer`` loggers (handlers, levels).

    Each command configures console logging once per process, as it should; in one pytest
    process that state would otherwise leak into later tests' captured stderr.
    """
    loggers = [logging.getLogger(name) for name in ("rayzer", "rayzer.infer", "rayzer.eval")]
    saved = [(lg, list(lg.handlers), lg.level) for lg in loggers]
    yield
    for lg, handlers, level in saved:
        lg.handlers[:] = handlers
        lg.setLevel(level)
