"""Suite-wide fixtures."""

from __future__ import annotations

import logging

import pytest


@pytest.fixture
def one_thread():
    """One intra-op torch thread for the test, the caller's count restored after: the tests'
    tensors are small, and on a loaded 2-core machine OpenMP threads only contend (measured: an
    overfit test 6 s → 50 s with two threads, training tests up to 7× slower).

    Use it per module (``pytestmark = pytest.mark.usefixtures("one_thread")``) or from a
    folder's autouse fixture; tests that set the thread count themselves need neither."""
    import torch  # here, not at the top: this conftest is loaded for every test

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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
