"""Reliability benchmark (``rayzer bench reliability``): rayzer under faults, as figures.

Every trial runs the real command line in a subprocess and counts as a failure unless the
outcome is the right one. Sections (``--sections``, all by default):

- ``kill``: SIGKILL of a tiny ``rayzer train --resume auto`` at seeded random moments (a third
  of them right after a checkpoint's temporary folder appears, i.e. inside a checkpoint write),
  then resumed to the end. Failures: a checkpoint left that does not load, or a chain whose
  final weights are not bit-identical to an uninterrupted run's.
- ``signals``: SIGTERM / SIGINT mid-run: exit 0 with a checkpoint of the step that was running,
  then a resume ends bit-identical to the uninterrupted run.
- ``disk``: a full disk (``RLIMIT_FSIZE`` in the child) at a checkpoint write: exit 2 with one
  message naming the folder, the last good checkpoint intact and loadable, no temporary left.
- ``lock``: a second training on a run folder in use is refused and writes nothing.
- ``corrupt``: damaged checkpoint files (truncated / garbage / empty weights, state, config,
  meta; NaN weights; another model's checkpoint; a code-executing pickle in place of the state
  file and a code-executing YAML config, each of which would leave a marker file) given to
  ``train --resume``, ``infer`` and ``eval``.
- ``bad_input``: bad images, scene files, videos, configs and paths given to ``infer``,
  ``eval``, ``data convert``, ``train`` and ``serve``.
- ``serve``: ``rayzer serve`` on 127.0.0.1: uploads over the limit, non-images, path-traversal
  file names, requests for files outside its folder, 3 concurrent users, cleanup at exit.
- ``ddp``: 2-process DDP (gloo, torchrun) and gradient accumulation vs 1 process on the same
  global batch: largest weight difference after training.

Writes ``reliability.json`` (every trial) and ``reliability.md`` (check, trials, failures,
detail) into ``--out``. ``--quick`` runs 1-2 trials per check (a smoke test of the bench).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from rayzer.bench.reliability_tools import Check
from rayzer.utils.report import machine_info, markdown_table, write_report

DESCRIPTION = __doc__
SECTIONS = ("kill", "signals", "disk", "lock", "corrupt", "bad_input", "serve", "ddp")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, help="folder for reliability.json / .md")
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"comma-separated subset of {','.join(SECTIONS)} (default: all)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    parser.add_argument("--kills", type=int, default=24, help="SIGKILLs in all (default 24)")
    parser.add_argument(
        "--jobs", type=int, default=2, help="child processes run side by side (default 2)"
    )
    parser.add_argument("--quick", action="store_true", help="1-2 trials per check")
    parser.add_argument(
        "--work",
        type=Path,
        help="keep the scratch files in a new subfolder of this folder "
        "(default: a temporary folder, removed at the end)",
    )


def _sections(text: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    unknown = sorted(set(names) - set(SECTIONS))
    if unknown or not names:
        raise ValueError(f"--sections: unknown {unknown}; choose from {', '.join(SECTIONS)}")
    return names


def run(
    sections: list[str], work: Path, *, seed: int = 0, kills: int = 24, jobs: int = 2,
    quick: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """Run the ``sections`` in scratch folder ``work``; the report (rows + every trial)."""
    from rayzer.bench import reliability_training as training

    checks: list[Check] = []
    times: dict[str, float] = {}
    reference: training.Reference | None = None
    for name in sections:
        start = time.monotonic()
        folder = work / name
        folder.mkdir(parents=True, exist_ok=True)
        if name in ("kill", "signals") and reference is None:
            reference = training.reference_run(work / "reference", quick=quick)
        if name == "kill":
            checks += training.kill_check(reference, folder, seed, 2 if quick else kills, jobs)
        elif name == "signals":
            checks.append(training.signal_check(reference, folder, repeats=1 if quick else 2))
        elif name == "disk":
            checks.append(training.disk_check(folder, quick=quick))
        elif name == "lock":
            checks.append(training.lock_check(folder))
        elif name in ("corrupt", "bad_input"):
            from rayzer.bench import reliability_inputs as inputs

            section = inputs.corrupt_checks if name == "corrupt" else inputs.bad_input_checks
            checks += section(folder, jobs, quick=quick)
        elif name == "serve":
            from rayzer.bench.reliability_serve import serve_check

            checks.append(serve_check(folder, quick=quick))
        elif name == "ddp":
            checks.append(training.ddp_check(folder, quick=quick))
        times[name] = round(time.monotonic() - start, 1)
    return {
        "rows": [c.row() for c in checks],
        # each run once: a subset row re-counts runs of another row
        "trials": sum(c.trials for c in checks if not c.subset),
        "failures": sum(c.failures for c in checks if not c.subset),
        "seconds": times,
        "checks": [{**c.row(), "figures": c.figures, "cases": c.cases} for c in checks],
        "settings": {"sections": sections, "seed": seed, "kills": kills, "quick": quick},
        "machine": machine_info(),
    }


def main(args: argparse.Namespace) -> None:
    sections = _sections(args.sections)
    if args.jobs < 1 or args.kills < 1:
        raise ValueError("--jobs and --kills must be >= 1")
    with tempfile.TemporaryDirectory(prefix="rayzer-reliability-") as tmp:
        work = Path(tmp)
        if args.work is not None:
            # A new subfolder: the sections delete and recreate their own folders, and nothing
            # the user already keeps in --work may be among them.
            args.work.mkdir(parents=True, exist_ok=True)
            work = Path(tempfile.mkdtemp(prefix="reliability-", dir=args.work))
        result = run(
            sections, work, seed=args.seed, kills=args.kills, jobs=args.jobs, quick=args.quick
        )
    columns = ["check", "trials", "failures", "detail"]
    total = {"check": "**all**", "trials": result["trials"], "failures": result["failures"]}
    table = markdown_table([*result["rows"], total], columns)
    markdown = "# rayzer bench reliability\n\n" + table
    write_report(args.out, "reliability", result, markdown)
