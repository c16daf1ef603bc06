"""Terminal progress bars for ``rayzer infer --refine`` / ``--fit``.

Both report ``progress(done, total, stage)``: one count over all their optimisations (the
refinement or fit itself, then its leave-one-out check), ``done == total`` at the end, ``stage``
naming what runs now (:data:`rayzer.refine.report.ReportProgress`). :class:`StageBar` turns
those calls into one tqdm bar: count, elapsed time, ETA and rate, the stage as its label.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import TextIO

from tqdm import tqdm


class StageBar:
    """A ``progress(done, total, stage)`` callback drawing a tqdm bar with ETA.

    The bar closes (its last line kept) when ``done`` reaches ``total``; use it as a context
    manager so that it is closed also when the work stops short or fails::

        with StageBar("fit") as bar:
            run_inference(..., fit=100, fit_progress=bar)

    Args:
        name: what is counted, before the stage in the bar's label (``"fit: leave-one-out
            check of the fit"``).
        unit: the bar's unit.
        file: where the bar goes (default stderr).
    """

    def __init__(self, name: str, unit: str = "step", file: TextIO | None = None) -> None:
        self.name = name
        self.unit = unit
        self.file = file
        self._bar: tqdm | None = None
        self._stage: str | None = None
        self._finished = False

    def __call__(self, done: int, total: int, stage: str) -> None:
        if self._finished:  # e.g. a fit's repeated final report
            return
        if self._bar is None:  # created on the first report: the total is known only then
            self._stage = stage
            self._bar = tqdm(
                desc=f"{self.name}: {stage}",
                total=total,
                unit=self.unit,
                file=self.file if self.file is not None else sys.stderr,
                dynamic_ncols=True,
            )
        bar = self._bar
        if total != bar.total:
            bar.total = total
        if stage != self._stage:  # drawn at once: a stage is seen even when it ends quickly
            self._stage = stage
            bar.set_description(f"{self.name}: {stage}")
        bar.update(done - bar.n)  # the callers report counts, tqdm takes increments
        if done >= total:  # closed at once: its time stops, and the next bar takes its line
            self.close()

    def close(self) -> None:
        if self._bar is not None and not self._finished:
            self._bar.close()
        self._finished = True

    def __enter__(self) -> StageBar:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
