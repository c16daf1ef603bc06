"""End-to-end ``rayzer infer`` time and memory (``rayzer bench infer``).

Runs ``rayzer infer`` on the first ``--views`` photos of ``--images`` (natural sort order) for
each ``--ckpt LABEL=PATH``, each run a fresh subprocess with ``--threads``, the default
novel-view video and no refinement, exactly as a user would. Reported per run: wall-clock
seconds of the whole command (Python start-up and imports included), CPU seconds (user + system
of that child: ``RUSAGE_CHILDREN`` before and after), its peak RSS (``summary.json``), the stage timings of its ``summary.json``
(``render_inputs``, ``render_novel``, ``total``) and the load average before and after (the
machine may be shared: a loaded machine stretches the wall time, the CPU time less so).

``--src LABEL=DIR`` (repeatable) runs the same commands with another source tree's ``src/``
first on ``PYTHONPATH`` (e.g. ``git archive`` of an older commit), for a before/after in one
run; the rayzer file each run imported is recorded. Runs alternate between trees, repeat by
repeat, so a change in machine load hits both alike.

Target (issue 19, 2-core CPU): 8 views without refinement <= 10 s end to end, peak memory
<= 2 GiB.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rayzer.utils.report import machine_info, markdown_table, write_report

TARGET_S = 10.0
TARGET_PEAK_MIB = 2048.0
_STAGES = ("render_inputs", "render_novel", "total")


def _pairs(values: list[str], flag: str) -> dict[str, str]:
    """``["LABEL=VALUE", ...]`` -> ``{LABEL: VALUE}``; a bad item is a clear error."""
    out: dict[str, str] = {}
    for item in values:
        label, sep, value = item.partition("=")
        if not sep or not label or not value:
            raise ValueError(f"{flag} expects LABEL=VALUE, got {item!r}")
        out[label] = value
    return out


def _first_views(images: Path, views: int, into: Path) -> list[str]:
    """Link (or copy) the first ``views`` photos of ``images`` into ``into``; their names."""
    from rayzer.data.images import find_image_files

    files = find_image_files(images)[:views]
    if len(files) < views:
        raise ValueError(f"--images {images}: {len(files)} photos, --views asks for {views}")
    into.mkdir(parents=True)
    for f in files:
        try:
            (into / f.name).symlink_to(f.resolve())
        except OSError:
            shutil.copy2(f, into / f.name)
    return [f.name for f in files]


def run_once(ckpt: str, images: Path, out: Path, threads: int, src: str | None) -> dict[str, Any]:
    """One ``rayzer infer`` subprocess: wall / CPU seconds, peak RSS and its summary's timings."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(Path(src) / "src") + os.pathsep + env.get("PYTHONPATH", "")
    code = (
        "import sys, rayzer, rayzer.cli; print('RAYZER_FILE', rayzer.__file__, file=sys.stderr); "
        "sys.exit(rayzer.cli.main(sys.argv[1:]))"
    )
    cmd = [sys.executable, "-c", code, "infer", "--images", str(images), "--ckpt", ckpt]
    cmd += ["--out", str(out), "--threads", str(threads), "--quiet"]
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t0
    return_code = proc.returncode
    text = stderr.decode(errors="replace")
    if return_code != 0:
        raise RuntimeError(f"rayzer infer --ckpt {ckpt} failed ({return_code}): {text[-2000:]}")
    summary = json.loads((out / "summary.json").read_text())
    imported = next(
        (line.split(" ", 1)[1] for line in text.splitlines() if line.startswith("RAYZER_FILE ")),
        None,
    )
    return {
        "wall_s": round(wall, 3),
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
        "stages_s": {k: summary["timings_s"].get(k) for k in _STAGES},
        "summary_peak_rss_mb": summary["peak_memory_mb"]["cpu_rss"],
        "torch_threads": summary.get("torch_threads"),
        "rayzer_file": imported,
        "stdout_tail": stdout.decode(errors="replace")[-300:],
    }


def _cpu_seconds(fn, *args) -> tuple[dict[str, Any], float]:
    """``fn(*args)`` and the CPU seconds (user + system) of the children it started and reaped."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = fn(*args)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return result, round(cpu, 3)


def run(args: argparse.Namespace) -> dict[str, Any]:
    ckpts = _pairs(args.ckpt, "--ckpt")
    trees: dict[str, str | None] = {"this": None, **_pairs(args.src, "--src")}
    if not ckpts:
        raise ValueError("give at least one --ckpt LABEL=PATH")
    if args.views < 2 or args.repeats < 1 or args.threads < 1:
        raise ValueError("--views must be >= 2, --repeats and --threads >= 1")
    samples: dict[tuple[str, str], list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="rayzer-bench-infer-") as tmp:
        images = Path(tmp) / "images"
        names = _first_views(Path(args.images), args.views, images)
        for rep in range(args.repeats):
            for label, ckpt in ckpts.items():
                for tree, src in trees.items():
                    out = Path(tmp) / f"out-{label}-{tree}-{rep}"
                    res, res["cpu_s"] = _cpu_seconds(run_once, ckpt, images, out, args.threads, src)
                    samples.setdefault((label, tree), []).append(res)
                    shutil.rmtree(out, ignore_errors=True)
    rows = []
    for (label, tree), runs in samples.items():
        med = statistics.median
        wall = med(r["wall_s"] for r in runs)
        rss = max(r["summary_peak_rss_mb"] for r in runs)
        rows.append(
            {
                "model": label,
                "tree": tree,
                "threads": args.threads,
                "wall_s": wall,
                "cpu_s": med(r["cpu_s"] for r in runs),
                "render_s": med(
                    r["stages_s"]["render_inputs"] + r["stages_s"]["render_novel"] for r in runs
                ),
                "peak_rss_mib": rss,
                "load": f"{min(r['load_before'] for r in runs):.1f}-"
                f"{max(r['load_after'] for r in runs):.1f}",
                "meets_target": wall <= TARGET_S and rss <= TARGET_PEAK_MIB,
                "runs": runs,
            }
        )
    return {
        "benchmark": "infer",
        "images": str(args.images),
        "views": names,
        "threads": args.threads,
        "repeats": args.repeats,
        "target": {"wall_s": TARGET_S, "peak_rss_mib": TARGET_PEAK_MIB},
        "ckpts": ckpts,
        "trees": {k: v for k, v in trees.items()},
        "machine": machine_info(),
        "rows": rows,
    }


def to_markdown(result: dict[str, Any]) -> str:
    cols = ["model", "tree", "threads", "wall_s", "cpu_s", "render_s", "peak_rss_mib", "load"]
    cols.append("meets_target")
    return (
        f"`rayzer infer` of {len(result['views'])} views, default video, no refinement "
        f"(median of {result['repeats']}; target <= {TARGET_S:g} s and "
        f"<= {TARGET_PEAK_MIB / 1024:g} GiB)\n\n" + markdown_table(result["rows"], cols)
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", type=Path, required=True, help="folder of photos")
    parser.add_argument("--views", type=int, default=8, help="use its first N photos")
    parser.add_argument(
        "--ckpt", action="append", default=[], metavar="LABEL=PATH", help="model (repeatable)"
    )
    parser.add_argument(
        "--src",
        action="append",
        default=[],
        metavar="LABEL=DIR",
        help="also run another source tree (its src/ first on PYTHONPATH); repeatable",
    )
    parser.add_argument("--threads", type=int, default=1, help="rayzer infer --threads")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="folder for infer.json / infer.md")


def main(args: argparse.Namespace) -> None:
    result = run(args)
    write_report(args.out, "infer", result, to_markdown(result))
