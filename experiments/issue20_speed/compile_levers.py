"""torch.compile levers on the paper-decoder training step, each A/B against plain
``model.compile()`` (issue 20, part 3; run 6 of ``docs/benchmarks/speed``).

Usage (1 thread; one compile cache folder per side under ``--cache-root``):

    python experiments/issue20_speed/compile_levers.py --rounds 3 \
        --cache-root /some/folder --baseline 19a70e97f5e59ac5cdca3293c4b006a0e7e4d961 \
        --out docs/benchmarks/speed/run6-<hash>

Each side runs in a fresh interpreter (inductor's settings are process-global), in rounds
(every side once per round, in a fixed order), so all sides see the same machine load. A side:
- ``baseline``: the eager step of the package source of ``--baseline`` (exported with git);
- ``eager``: this tree, eager;
- ``plain``: this tree with ``model.compile()``, as ``rayzer train --compile`` does;
- one lever each, otherwise as ``plain`` (see :data:`LEVERS`).

The step is the one ``rayzer bench speed`` times (forward, the model's own loss, backward,
AdamW with betas (0.9, 0.95)), on the same random batch: one step first (eager; the bench counts
FLOPs there), then the step that compiles (``compile_s`` / ``compile_cpu_s``: this process;
``compile_tree_cpu_s``: with the compiler's worker processes), one warm-up, ``--steps`` timed steps
in CPU seconds of the process (median). The first round of a side with an empty cache folder
compiles cold, later rounds warm. Every step's loss is recorded: all sides start from the same
weights and batch, so their losses must agree (``loss_diff`` against ``plain``).
``peak_rss_mib`` is the process's maximum RSS, imports included (the bench reports the growth
during its run instead).

Prints one JSON object and writes ``levers.json`` / ``levers.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

#: side → how it differs from eager: ``compile`` (keyword arguments of ``model.compile``),
#: ``optimizer`` (also ``torch.compile`` the AdamW step), ``loss`` (compile forward and loss as
#: one function instead of the model alone), ``options`` (inductor options of those two).
LEVERS: dict[str, dict[str, Any]] = {
    "eager": {},
    "plain": {"compile": {}},
    # CPU: max_autotune (C++ GEMM templates with fused epilogues where they apply) and
    # coordinate_descent_tuning; the CUDA graphs of "max-autotune" do not exist on the CPU.
    "max-autotune": {"compile": {"mode": "max-autotune-no-cudagraphs"}},
    "cpp-wrapper": {"compile": {"options": {"cpp_wrapper": True}}},
    "aggressive-fusion": {"compile": {"options": {"aggressive_fusion": True}}},
    "optimizer": {"compile": {}, "optimizer": True},
    "loss": {"loss": True},
    "loss+optimizer": {"loss": True, "optimizer": True},
    "loss+optimizer+cpp-wrapper": {
        "loss": True,
        "optimizer": True,
        "options": {"cpp_wrapper": True},
    },
}

CONFIG = "paper-decoder-cpu"


def _tree_cpu_s() -> float:
    """CPU seconds of this process and its finished children (the compile workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def single(side: str, config: str, steps: int) -> dict[str, Any]:
    """Time one side in this process (see the module docstring)."""
    import torch

    from rayzer.config import load_config
    from rayzer.models import build_model

    lever = LEVERS.get(side, {})  # "baseline" is eager
    cfg = load_config(config)
    b, v = cfg.train.batch_size, cfg.data.num_views
    v_in, size = cfg.data.num_input_views, cfg.data.image_size
    torch.manual_seed(0)
    model = build_model(cfg.model).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95))
    # as rayzer.bench.speed.random_batch (written out: the baseline revision may lack it)
    c2w = torch.eye(4).repeat(b, v, 1, 1)
    c2w[..., 0, 3] = torch.linspace(-1.0, 1.0, v)
    K = torch.tensor([size, size, size / 2, size / 2]).expand(b, v, 4)
    batch = {"image": torch.rand(b, v, 3, size, size), "c2w": c2w, "K": K}
    perm = torch.randperm(v)
    inp, tgt = perm[:v_in].sort().values, perm[v_in:].sort().values

    def forward_loss() -> torch.Tensor:
        return model.loss(model(batch, inp, tgt), batch, None)["loss"]

    fwd, opt_step = forward_loss, opt.step
    losses: list[float] = []

    def step() -> None:
        loss = fwd()
        loss.backward()
        opt_step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())

    step()  # the bench's FLOP-counting step, eager
    compile_s = compile_cpu_s = compile_tree_cpu_s = None
    if lever:
        if "compile" in lever:
            model.compile(**lever["compile"])  # in place, as the training loop compiles it
        options = lever.get("options")
        if lever.get("loss"):
            fwd = torch.compile(forward_loss, options=options)
        if lever.get("optimizer"):
            opt_step = torch.compile(opt.step, options=options)
        t0, c0, k0 = time.perf_counter(), time.process_time(), _tree_cpu_s()
        step()
        compile_s, compile_cpu_s = time.perf_counter() - t0, time.process_time() - c0
        compile_tree_cpu_s = _tree_cpu_s() - k0
    step()  # warm-up
    wall, cpu = [], []
    for _ in range(steps):
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return {
        "side": side,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "compile_s": compile_s,
        "compile_cpu_s": compile_cpu_s,
        "compile_tree_cpu_s": compile_tree_cpu_s,
        "step_s": statistics.median(wall),
        "step_cpu_s": statistics.median(cpu),
        "step_cpu_s_all": cpu,
        "losses": losses,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _run_side(
    side: str, config: str, steps: int, cache: Path, source: Path | None, timeout_s: float
) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["TORCHINDUCTOR_CACHE_DIR"] = str(cache)
    if source is not None:
        env["PYTHONPATH"] = str(source)
    cmd = [sys.executable, __file__, "--single", side, "--config", config, "--steps", str(steps)]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, check=False, env=env, timeout=timeout_s
        )
    except subprocess.TimeoutExpired:
        return {"side": side, "error": f"no result within {timeout_s} s"}
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-3:] if proc.stderr else ["failed"]
        return {"side": side, "error": " | ".join(tail)}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _flops_and_peak(config: str) -> tuple[float, float]:
    """GFLOPs of one training step of this tree (rayzer's FLOP counter, eager) and the fp32
    matmul peak in GFLOP/s per CPU second, both at 1 thread."""
    import torch

    from rayzer.bench.flops import count_flops
    from rayzer.bench.speed import measure_matmul_peak, random_batch
    from rayzer.config import load_config
    from rayzer.models import build_model

    torch.set_num_threads(1)
    _, peak_cpu = measure_matmul_peak()
    cfg = load_config(config)
    torch.manual_seed(0)
    model = build_model(cfg.model).train()
    v = cfg.data.num_views
    batch = random_batch(cfg.train.batch_size, v, cfg.data.image_size, "cpu")
    inp, tgt = torch.arange(0, v, 2), torch.arange(1, v, 2)
    flops = count_flops(lambda: model.loss(model(batch, inp, tgt), batch, None)["loss"].backward())
    return flops / 1e9, peak_cpu


def summarise(rows: list[dict[str, Any]], gflop: float, peak_cpu: float) -> list[dict[str, Any]]:
    """Per side: the median over rounds of each run's median CPU-s step, the speed-up against
    ``plain`` / ``eager`` / ``baseline``, utilisation, compile times (first run cold) and the
    largest loss difference against ``plain``'s run of the same round."""
    ok = [r for r in rows if "step_cpu_s" in r]
    by_side: dict[str, list[dict[str, Any]]] = {}
    for r in ok:
        by_side.setdefault(r["side"], []).append(r)
    med = {s: statistics.median(r["step_cpu_s"] for r in rs) for s, rs in by_side.items()}
    plain_losses = [r["losses"] for r in by_side.get("plain", [])]
    out = []
    for side, runs in by_side.items():
        entry: dict[str, Any] = {
            "side": side,
            "step_cpu_s": round(med[side], 3),
            "runs_cpu_s": [round(r["step_cpu_s"], 3) for r in runs],
            "util_cpu": round(gflop / med[side] / peak_cpu, 3),
        }
        for ref in ("plain", "eager", "baseline"):
            if ref in med:
                entry[f"x_vs_{ref}"] = round(med[ref] / med[side], 3)
        if runs[0].get("compile_s") is not None:
            entry["compile_s_runs"] = [round(r["compile_s"], 1) for r in runs]
            entry["compile_cpu_s_runs"] = [round(r["compile_cpu_s"], 1) for r in runs]
            entry["compile_tree_cpu_s_runs"] = [round(r["compile_tree_cpu_s"], 1) for r in runs]
        if plain_losses and side != "plain":
            # eager runs take one step fewer (no compiling step): compare the common steps
            diffs = [
                max(abs(a - b) for a, b in zip(r["losses"], p, strict=False))
                for r, p in zip(runs, plain_losses, strict=False)
            ]
            entry["loss_diff_vs_plain"] = f"{max(diffs):.1e}"
        entry["peak_rss_mib"] = round(max(r["peak_rss_mib"] for r in runs))
        out.append(entry)
    return out


COLUMNS = [
    "side",
    "step_cpu_s",
    "runs_cpu_s",
    "x_vs_plain",
    "x_vs_eager",
    "x_vs_baseline",
    "util_cpu",
    "compile_s_runs",
    "compile_cpu_s_runs",
    "compile_tree_cpu_s_runs",
    "loss_diff_vs_plain",
    "peak_rss_mib",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--single", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--config", default=None, help=argparse.SUPPRESS)
    parser.add_argument(
        "--sides", nargs="+", default=list(LEVERS), help=f"of {', '.join(LEVERS)} (+ baseline)"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per run (median)")
    parser.add_argument("--baseline", default=None, metavar="REV", help="git revision, eager")
    parser.add_argument("--cache-root", type=Path, required=False, help="one cache per side")
    parser.add_argument("--keep-caches", action="store_true", help="do not empty them first")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per run")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.single:
        print(json.dumps(single(args.single, args.config, args.steps)))
        return
    if args.cache_root is None:
        parser.error("--cache-root is required")
    from rayzer.bench.speed import config_file, export_source
    from rayzer.utils.report import machine_info, markdown_table

    load_start = os.getloadavg()
    rows: list[dict[str, Any]] = []
    sides = (["baseline"] if args.baseline else []) + args.sides
    for side in args.sides:
        if side not in LEVERS:
            parser.error(f"unknown side {side!r}: one of {', '.join(LEVERS)}")
    with tempfile.TemporaryDirectory(prefix="compile-levers-") as tmp:
        config = config_file(CONFIG, Path(tmp))
        source = export_source(args.baseline, Path(tmp)) if args.baseline else None
        gflop, peak_cpu = _flops_and_peak(config)
        print(f"{gflop:.1f} GFLOP per step; peak {peak_cpu:.1f} GFLOP/CPU-s", file=sys.stderr)
        for side in sides:
            cache = args.cache_root / side
            if not args.keep_caches and cache.exists():
                shutil.rmtree(cache)
            cache.mkdir(parents=True, exist_ok=True)
        for rnd in range(args.rounds):
            for side in sides:
                k0 = _tree_cpu_s()
                row = _run_side(
                    side,
                    config,
                    args.steps,
                    args.cache_root / side,
                    source if side == "baseline" else None,
                    args.timeout,
                )
                row.update(round=rnd, process_tree_cpu_s=round(_tree_cpu_s() - k0, 1))
                rows.append(row)
                if args.out:  # as it goes, so an interrupted run keeps what it measured
                    args.out.mkdir(parents=True, exist_ok=True)
                    with (args.out / "rows.jsonl").open("a") as f:
                        f.write(json.dumps(row) + "\n")
                text = row.get("error") or (
                    f"{row['step_cpu_s']:.3f} CPU-s/step"
                    + (f", compile {row['compile_s']:.1f} s" if row["compile_s"] else "")
                )
                print(f"round {rnd} {side}: {text}", file=sys.stderr, flush=True)
    summary = summarise(rows, gflop, peak_cpu)
    result = {
        "benchmark": "compile-levers",
        "config": CONFIG,
        "baseline": args.baseline,
        "rounds": args.rounds,
        "steps": args.steps,
        "threads": 1,
        "gflop_per_step": gflop,
        "matmul_peak_gflops_cpu": peak_cpu,
        "load_average_start": load_start,
        "load_average_end": os.getloadavg(),
        "machine": machine_info(),
        "rows": rows,
        "summary": summary,
    }
    load = "/".join(f"{x:.1f}" for x in load_start)
    load_end = "/".join(f"{x:.1f}" for x in result["load_average_end"])
    md = (
        f"{CONFIG}, 1 thread, {args.rounds} rounds × {args.steps} timed steps; CPU seconds per "
        f"step (median over rounds of each run's median); {gflop:.2f} GFLOP per step, fp32 "
        f"matmul peak {peak_cpu:.1f} GFLOP per CPU second; load average {load} at the start, "
        f"{load_end} at the end. compile_*_runs: the first run compiled "
        + ("with the caches of an earlier run" if args.keep_caches else "with an empty cache")
        + ".\n\n"
        + markdown_table(summary, COLUMNS)
        + "\n"
    )
    print(json.dumps(result))
    print(md, file=sys.stderr)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "levers.json").write_text(json.dumps(result, indent=1) + "\n")
        (args.out / "levers.md").write_text(md)


if __name__ == "__main__":
    main()
