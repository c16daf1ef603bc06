"""Speed benchmark: training-step time, images/s, FLOP utilisation and peak memory.

For each configuration a full training step (forward, backward, AdamW update) of the
self-supervised RayZer objective is timed on random images. FLOPs are counted by PyTorch's
flop counter (attention included, see :mod:`rayzer.bench.flops`) and compared with this
machine's fp32 matmul peak, measured in the same run. Each configuration runs in a fresh
subprocess so that its peak memory (max RSS on CPU, ``max_memory_allocated`` on CUDA) is its own.
Utilisation is given twice: from wall-clock time against the best wall-clock matmul, and from
CPU time (all threads of the process) against the best matmul in CPU time. On a shared, loaded
machine the CPU-time figures are the meaningful ones: other processes' work stretches the wall
clock but not this process's CPU seconds.

With ``--baseline REV`` every configuration is also timed with the package source of the git
revision REV (exported to a temporary folder), alternating before / after runs (A/B/A/B) so that
both see the same machine load; the report gives each side's median step time, utilisation and
the speed-up. Explicit models (3D Gaussians) also report the time of their rasterizer calls,
replayed forward and backward on the inputs captured in one step, as a share of the step.

With ``--compile`` the current code is also timed with ``torch.compile`` of the model, as
``rayzer train --compile`` runs it (a third side, ``compiled``, in every A/B round). The first
compiled step, which compiles, is not timed: its wall-clock and CPU seconds are reported as
``compile_s`` / ``compile_cpu_s``. Inductor keeps its compiled code in ``TORCHINDUCTOR_CACHE_DIR``
(default: under ``/tmp``); the first compiled row of a run with an empty cache shows the cold
compile, later rows the warm one. ``--compile-option KEY=VALUE`` passes inductor options to that
compile (as ``rayzer train --compile-option``).

Run ``rayzer bench speed --help`` for options.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import yaml
from omegaconf import OmegaConf

from rayzer.bench.flops import count_flops
from rayzer.config import as_hw, load_config, preset_path
from rayzer.models import build_model
from rayzer.utils.report import machine_info, markdown_table, write_report

#: Configurations the bench times by name: a preset plus overrides. ``paper-decoder-cpu`` is the
#: tiny CPU RayZer with the paper's decoder (d 128, 3 + 3 + 3 layers, 64 px, batch 8 × 8 views,
#: regression readout, latent scene tokens only, no sense head): the configuration at which
#: rayzer and the official RayZer code were compared side by side (issue 20).
DERIVED_CONFIGS: dict[str, tuple[str, tuple[str, ...]]] = {
    "paper-decoder-cpu": (
        "tiny-cpu",
        (
            "model.decoder.readout=regress",
            "model.scene.keep_input_tokens=false",
            "model.sense.enabled=false",
        ),
    ),
}


def config_file(name: str, folder: Path) -> str:
    """A preset name or YAML path as given, or a :data:`DERIVED_CONFIGS` entry written to
    ``folder/<name>.yaml`` (a plain file, so any version of rayzer can load it)."""
    if name not in DERIVED_CONFIGS:
        return name
    preset, overrides = DERIVED_CONFIGS[name]
    merged = OmegaConf.merge(
        OmegaConf.load(preset_path(preset)), OmegaConf.from_dotlist(list(overrides))
    )
    path = folder / f"{name}.yaml"
    OmegaConf.save(merged, path)
    return str(path)


def export_source(revision: str, folder: Path) -> Path:
    """The package source (``src/``) of git ``revision`` of the repository in the current
    directory, exported under ``folder``; returns the folder to put on ``PYTHONPATH``."""
    repo = Path.cwd()
    archive = subprocess.run(
        ["git", "-C", str(repo), "archive", revision, "--", "src"],
        capture_output=True,
        check=False,
    )
    if archive.returncode != 0:
        raise ValueError(
            f"--baseline {revision}: git archive failed in {repo}: "
            + archive.stderr.decode(errors="replace").strip()
        )
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder / "src"


@contextmanager
def captured_rasterizer_calls(calls: list[tuple[tuple, dict]]):
    """Record the arguments of every :func:`rayzer.render.rasterize.rasterize` call made inside
    the block (detached copies), for :func:`replay_rasterizer`. A no-op for models without it."""
    try:  # the module (the package re-exports a function of the same name)
        raster_module = importlib.import_module("rayzer.render.rasterize")
    except ImportError:  # a rayzer without a rasterizer
        yield
        return
    original = raster_module.rasterize

    def recording(*args, **kwargs):
        copy = lambda x: x.detach().clone() if torch.is_tensor(x) else x  # noqa: E731
        calls.append((tuple(copy(a) for a in args), {k: copy(v) for k, v in kwargs.items()}))
        return original(*args, **kwargs)

    raster_module.rasterize = recording
    try:
        yield
    finally:
        raster_module.rasterize = original


def replay_rasterizer(calls: list[tuple[tuple, dict]], repeats: int) -> float:
    """Median seconds of all ``calls`` to the rasterizer, forward and backward (every floating
    input that needed a gradient in the step gets one), replayed ``repeats`` times."""
    from rayzer.render.rasterize import rasterize

    def once() -> None:
        for args, kwargs in calls:
            leaf = lambda x: (  # noqa: E731
                x.clone().requires_grad_() if torch.is_tensor(x) and x.is_floating_point() else x
            )
            out = rasterize(*(leaf(a) for a in args), **{k: leaf(v) for k, v in kwargs.items()})
            (out.rgb.sum() + out.alpha.sum() + out.depth.sum()).backward()

    once()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        once()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure_matmul_peak(
    size: int = 2048, repeats: int = 10, device: str = "cpu"
) -> tuple[float, float]:
    """Best achieved fp32 GFLOP/s of a square matmul (the utilisation denominators): per
    wall-clock second and per CPU second of this process (all its threads; on CUDA the CPU
    figure is not meaningful and equals the wall-clock one)."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    best, best_cpu = float("inf"), float("inf")
    for _ in range(repeats + 2):
        if device == "cuda":
            torch.cuda.synchronize()
        t0, c0 = time.perf_counter(), time.process_time()
        a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    if device == "cuda":
        best_cpu = best
    flops = 2 * size**3
    return flops / best / 1e9, flops / max(best_cpu, 1e-9) / 1e9


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def random_batch(
    batch: int, views: int, size: int | tuple[int, int] | list[int], device: str
) -> dict[str, torch.Tensor]:
    """Random images (B, V, 3, H, W) (``size``: a side S, or ``(H, W)``) with cameras on a line
    (for models that read them); fx = fy = W, principal point at the centre."""
    h, w = as_hw(size)
    c2w = torch.eye(4, device=device).repeat(batch, views, 1, 1)
    c2w[..., 0, 3] = torch.linspace(-1.0, 1.0, views, device=device)
    K = torch.tensor([w, w, w / 2, h / 2], device=device).expand(batch, views, 4)
    return {"image": torch.rand(batch, views, 3, h, w, device=device), "c2w": c2w, "K": K}


def time_training_step(
    preset: str,
    num_views: int | None,
    batch_size: int | None,
    steps: int,
    warmup: int,
    device: str,
    overrides: list[str],
    compile_backend: str | Callable | None = None,
    compile_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Time ``steps`` training steps (forward, the model's own loss, backward, AdamW) of the
    model ``preset`` configures, on random images; returns a result row.

    With ``compile_backend`` (a ``torch.compile`` backend: ``"inductor"``, ``"eager"``, or a
    callable), the model is compiled in place after the FLOP-counting step (which runs eagerly:
    the counter needs the eager ops), as ``rayzer train --compile`` does; the next step, which
    compiles, is timed on its own (``compile_s`` / ``compile_cpu_s``, this process only: not
    the compiler's worker processes) and is not one of the warm-up or timed steps. The
    rasterizer share is not measured for compiled models (``raster_s`` is None).
    ``compile_options`` are passed to that compile (``torch.compile(options=...)``; a callable
    backend receives them as its ``options`` keyword).
    """
    cfg = load_config(preset, overrides)
    b = batch_size or cfg.train.batch_size
    v = num_views or cfg.data.num_views
    v_in = max(1, round(v * cfg.data.num_input_views / cfg.data.num_views))
    v_in = min(v_in, v - 1)
    size = cfg.data.image_size
    torch.manual_seed(0)
    rss_before = _rss_mib()
    model = build_model(cfg.model).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), fused=device == "cuda")
    batch = random_batch(b, v, size, device)
    perm = torch.randperm(v)
    inp, tgt = perm[:v_in].sort().values, perm[v_in:].sort().values
    use_bf16 = device == "cuda"

    def step() -> None:
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=use_bf16):
            loss = model.loss(model(batch, inp, tgt), batch, None)["loss"]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    flops = count_flops(step)  # also the first warm-up step
    compile_s = compile_cpu_s = None
    if compile_backend is not None:
        # in place, as the training loop compiles it
        model.compile(backend=compile_backend, options=compile_options or None)
        sync()
        t0, c0 = time.perf_counter(), time.process_time()
        step()  # traces and compiles forward and backward
        sync()
        compile_s, compile_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    raster_calls: list[tuple[tuple, dict]] = []
    for i in range(max(warmup - 1, 1)):  # at least one more warm-up, to capture the rasterizer
        if i == 0 and compile_backend is None:  # patching a global under compile would retrace
            with captured_rasterizer_calls(raster_calls):
                step()
        else:
            step()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times, cpu_times = [], []
    for _ in range(steps):
        sync()
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        sync()
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)
    step_time = statistics.median(times)
    raster_s = replay_rasterizer(raster_calls, steps) if raster_calls else None
    peak_mib = (
        torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else _rss_mib() - rss_before
    )
    return {
        "config": Path(preset).name.removesuffix(".yaml"),
        "device": device,
        "dtype": "bf16-autocast" if use_bf16 else "fp32",
        "params_M": sum(p.numel() for p in model.parameters()) / 1e6,
        "batch": b,
        "views": v,
        "input_views": v_in,
        "target_views": v - v_in,
        "image_size": size,
        "grad_checkpointing": cfg.model.grad_checkpointing,
        "threads": torch.get_num_threads(),
        "compiled": compile_backend is not None,
        "compile_backend": (
            compile_backend if isinstance(compile_backend, str | None) else repr(compile_backend)
        ),
        "compile_options": compile_options or None,
        "compile_s": compile_s,
        "compile_cpu_s": compile_cpu_s,
        "step_s": step_time,
        "step_s_all": times,
        "step_cpu_s": statistics.median(cpu_times),
        "step_cpu_s_all": cpu_times,
        "raster_calls": len(raster_calls),
        "raster_s": raster_s,
        "raster_share": raster_s / step_time if raster_s is not None else None,
        "images_per_s": b * v / step_time,
        "gflop_per_step": flops / 1e9,
        "achieved_gflops": flops / step_time / 1e9,
        "peak_mem_mib": peak_mib,
        "model": asdict(cfg.model),
        "model_name": cfg.model.name,
    }


def _run_isolated(
    args: list[str], source: Path | None = None, threads: int | None = None
) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter so its peak memory is its own; with
    ``source``, that folder's rayzer package is the one measured, by this file's timing code
    (copied next to it, so both sides are timed the same way and report CPU time even where the
    old revision did not); ``threads`` sets the interpreter's intra-op threads (through
    OMP_NUM_THREADS, which any rayzer version obeys)."""
    cmd = [sys.executable, "-m", "rayzer.bench.speed", "--single", *args]
    if source is not None:
        harness = source.parent / "rayzer_speed_harness.py"
        harness.write_text(Path(__file__).read_text())
        cmd = [sys.executable, str(harness), "--single", *args]
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    if source is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(source), env.get("PYTHONPATH", "")]).rstrip(
            os.pathsep
        )
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if proc.returncode != 0:
        return {
            "error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed",
            "args": args,
        }
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _jobs(args: argparse.Namespace, device: str, folder: Path) -> list[tuple[str, list[str]]]:
    """(section, measurement arguments) of every row: the configs (the first at its own batch,
    the others at ``--paper-batch``), then the first config at each ``--scaling-views``."""
    common = ["--device", device, "--steps", str(args.steps), "--warmup", str(args.warmup)]
    paper = ["--device", device, "--steps", str(args.paper_steps), "--warmup", str(args.warmup)]
    if args.paper_batch:
        paper += ["--batch", str(args.paper_batch)]
    if args.paper_views:
        paper += ["--views", str(args.paper_views)]
    first = config_file(args.configs[0], folder)
    jobs = [("configs", ["--preset", first, *common])]
    jobs += [("configs", ["--preset", config_file(c, folder), *paper]) for c in args.configs[1:]]
    jobs += [
        ("view_scaling", ["--preset", first, "--views", str(v), *common])
        for v in args.scaling_views
    ]
    return jobs


#: The pairs of sides :func:`compare` summarises, (reference, compared): the baseline revision
#: against the current code eager and compiled, and the current code eager against compiled.
COMPARED_SIDES = (("before", "after"), ("before", "compiled"), ("after", "compiled"))


def compare(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Before / after summary per measured configuration and pair of sides in
    :data:`COMPARED_SIDES` that both ran (``codes``, e.g. ``"before→compiled"``): the median over
    the A/B runs of each side's median step time, its utilisation, and the speed-up (before /
    after). The ``*_before`` fields are the pair's reference side, ``*_after`` the other."""
    groups: dict[tuple, dict[str, list[dict[str, Any]]]] = {}
    for row in rows:
        if "step_s" in row:
            key = (row["section"], row["config"], row["batch"], row["views"])
            groups.setdefault(key, {}).setdefault(row["code"], []).append(row)
    out = []
    for (section, config, batch, views), by_code in groups.items():
        for reference, other in COMPARED_SIDES:
            if reference in by_code and other in by_code:
                sides = {"before": by_code[reference], "after": by_code[other]}
                entry = _summary(sides, f"{reference}→{other}")
                key_fields = {"section": section, "config": config, "batch": batch}
                out.append({**key_fields, "views": views, **entry})
    return out


def _summary(sides: dict[str, list[dict[str, Any]]], codes: str) -> dict[str, Any]:
    """The :func:`compare` fields of one pair of sides (``sides["before"]`` the reference)."""
    entry: dict[str, Any] = {"codes": codes}
    for side in ("before", "after"):
        entry[f"step_s_{side}"] = statistics.median(r["step_s"] for r in sides[side])
        entry[f"util_{side}"] = statistics.median(r["flop_utilisation"] for r in sides[side])
        entry[f"mem_mib_{side}"] = max(r["peak_mem_mib"] for r in sides[side])
        entry[f"runs_{side}"] = [round(r["step_s"], 3) for r in sides[side]]
        # the least disturbed step: on a shared machine the most robust figure
        entry[f"best_s_{side}"] = min(t for r in sides[side] for t in r["step_s_all"])
        if all("step_cpu_s" in r for r in sides[side]):  # CPU seconds: load-independent
            entry[f"step_cpu_s_{side}"] = statistics.median(r["step_cpu_s"] for r in sides[side])
            entry[f"util_cpu_{side}"] = statistics.median(
                r["flop_utilisation_cpu"] for r in sides[side]
            )
    entry["speedup"] = entry["step_s_before"] / entry["step_s_after"]
    entry["speedup_best"] = entry["best_s_before"] / entry["best_s_after"]
    if "step_cpu_s_before" in entry and "step_cpu_s_after" in entry:
        entry["speedup_cpu"] = entry["step_cpu_s_before"] / entry["step_cpu_s_after"]
    compile_s = [r["compile_s"] for r in sides["after"] if r.get("compile_s") is not None]
    if compile_s:  # the first compiled run of a session is the cold one, the rest warm
        entry["compile_s_runs"] = [round(t, 1) for t in compile_s]
    return entry


def _progress(row: dict[str, Any]) -> str:
    """One line of a finished row's figures (printed as the bench goes, so that an interrupted
    run still shows what it measured)."""
    if "error" in row:
        return f"failed: {row['error']}"
    text = f"step {row['step_s']:.3f} s ({row['step_cpu_s']:.3f} CPU-s)"
    if row.get("compile_s") is not None:
        text += f", compile {row['compile_s']:.1f} s ({row['compile_cpu_s']:.1f} CPU-s)"
    return text


def run(args: argparse.Namespace) -> dict[str, Any]:
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    options = parse_compile_options(args.compile_option)  # bad ones fail before any timing
    if options and not args.compile:
        raise ValueError("--compile-option needs --compile (the options of its compile)")
    if args.compile_backend == "inductor":  # names inductor does not know: a clear error now
        # imported here: this file is also the harness run against --baseline revisions, which
        # may predate the module (module level, it broke every baseline run)
        from rayzer.utils.compile_options import inductor_options

        options = inductor_options(options)
    load_start = os.getloadavg()
    if args.threads:
        torch.set_num_threads(args.threads)
    peak, peak_cpu = measure_matmul_peak(device=device)
    print(f"fp32 matmul peak: {peak:.1f} GFLOP/s ({peak_cpu:.1f} per CPU second)", file=sys.stderr)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="rayzer-speed-") as tmp:
        folder = Path(tmp)
        baseline = export_source(args.baseline, folder) if args.baseline else None
        for section, job in _jobs(args, device, folder):
            views = job[job.index("--views") + 1] if "--views" in job else "preset"
            # A/B/A/B: before and after alternate so that both see the same machine load.
            sides = [("before", baseline), ("after", None)] if baseline else [("after", None)]
            if baseline and section == "view_scaling" and int(views) > args.baseline_max_views:
                sides = [("after", None)]
            if args.compile:  # the current code once more, compiled (never the baseline)
                sides.append(("compiled", None))
            rounds = args.ab_rounds if baseline or args.compile else 1
            for _ in range(rounds):
                for side, source in sides:
                    name = Path(job[1]).name.removesuffix(".yaml")
                    print(f"timing {name} ({views} views, {side}) …", file=sys.stderr)
                    if side == "compiled":
                        side_job = [*job, "--compile", "--compile-backend", args.compile_backend]
                        if options:
                            side_job += ["--compile-options-json", json.dumps(options)]
                    else:
                        side_job = job
                    row = _run_isolated(side_job, source, args.threads)
                    rows.append({"section": section, "code": side, **row})
                    print(f"  {_progress(row)}", file=sys.stderr)
    for row in rows:
        if "achieved_gflops" in row:
            row["flop_utilisation"] = row["achieved_gflops"] / peak
        if "step_cpu_s" in row and "gflop_per_step" in row:
            row["flop_utilisation_cpu"] = row["gflop_per_step"] / row["step_cpu_s"] / peak_cpu
    return {
        "benchmark": "speed",
        "matmul_peak_gflops": peak,
        "matmul_peak_gflops_cpu": peak_cpu,
        "baseline": args.baseline,
        "compile_backend": args.compile_backend if args.compile else None,
        "compile_options": options if args.compile else None,
        "inductor_cache_dir": os.environ.get("TORCHINDUCTOR_CACHE_DIR"),
        "load_average_start": load_start,
        "load_average_end": os.getloadavg(),
        "machine": machine_info(),
        "rows": rows,
        "comparison": compare(rows),
    }


def to_markdown(result: dict[str, Any]) -> str:
    cols = [
        "section",
        "code",
        "config",
        "params_M",
        "batch",
        "views",
        "image_size",
        "step_s",
        "step_cpu_s",
        "compile_s",
        "compile_cpu_s",
        "images_per_s",
        "gflop_per_step",
        "achieved_gflops",
        "flop_utilisation",
        "flop_utilisation_cpu",
        "peak_mem_mib",
        "raster_share",
    ]
    load = "/".join(f"{x:.1f}" for x in result.get("load_average_start", ()))
    peak_cpu = result.get("matmul_peak_gflops_cpu")
    head = (
        f"fp32 matmul peak measured in this run: {result['matmul_peak_gflops']:.1f} GFLOP/s"
        + (f" ({peak_cpu:.1f} per CPU second)" if peak_cpu else "")
        + "; "
        f"{result['machine']['cpu_threads']} threads; load average (1/5/15 min) at the start: "
        f"{load}\n\n"
    )
    text = head + markdown_table(result["rows"], cols)
    if result.get("comparison"):
        text += (
            "\n\n"
            + (f"Before (git {result['baseline']}) / after" if result["baseline"] else "After")
            + " (this tree; compiled: with torch.compile): median over the A/B runs of each "
            "run's median step, and the fastest single step of each side (best); codes names "
            "the two sides compared:\n\n"
            + markdown_table(
                result["comparison"],
                [
                    "section",
                    "codes",
                    "config",
                    "batch",
                    "views",
                    "step_s_before",
                    "step_s_after",
                    "speedup",
                    "best_s_before",
                    "best_s_after",
                    "speedup_best",
                    "util_before",
                    "util_after",
                    "step_cpu_s_before",
                    "step_cpu_s_after",
                    "speedup_cpu",
                    "util_cpu_before",
                    "util_cpu_after",
                    "mem_mib_before",
                    "mem_mib_after",
                    "compile_s_runs",
                ],
            )
        )
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--configs",
        nargs="+",
        default=["tiny-cpu", "dl3dv"],
        help="presets, YAML files or derived configs ("
        + ", ".join(DERIVED_CONFIGS)
        + "); the first one is also used for the view-scaling sweep",
    )
    parser.add_argument("--scaling-views", nargs="*", type=int, default=[4, 8, 16, 32])
    parser.add_argument(
        "--paper-views",
        type=int,
        default=None,
        help="views for the non-first configs (default: preset)",
    )
    parser.add_argument("--steps", type=int, default=3, help="timed steps per row (median)")
    parser.add_argument(
        "--paper-steps", type=int, default=1, help="timed steps of the non-first configs"
    )
    parser.add_argument(
        "--paper-batch",
        type=int,
        default=1,
        help="batch of the non-first configs (paper-scale presets; 0 = the preset's)",
    )
    parser.add_argument(
        "--warmup", type=int, default=2, help="untimed steps before the timed ones (>= 2)"
    )
    parser.add_argument(
        "--baseline",
        default=None,
        metavar="REV",
        help="also time the package source of this git revision, alternating with this one",
    )
    parser.add_argument(
        "--ab-rounds",
        type=int,
        default=2,
        help="before/after alternations with --baseline or --compile",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="also time this tree with torch.compile of the model (as `rayzer train --compile`), "
        "a third side 'compiled' in every A/B round; the compiling step is not timed but "
        "reported (compile_s); set TORCHINDUCTOR_CACHE_DIR to keep the compiled code between "
        "runs",
    )
    parser.add_argument(
        "--compile-backend",
        default="inductor",
        help="torch.compile backend of --compile (default inductor; 'eager' or 'aot_eager' "
        "check the wiring without generating code)",
    )
    parser.add_argument(
        "--compile-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an inductor option of --compile's compile (repeatable), as `rayzer train "
        "--compile-option`; e.g. cpp_wrapper=true (paper-decoder-cpu: 1.02-1.08x over the plain "
        "compile, docs/benchmarks/speed run 6)",
    )
    parser.add_argument(
        "--baseline-max-views",
        type=int,
        default=16,
        help="view-scaling rows above this many views run only the current code",
    )
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads of the matmul peak and of every timed run (default: torch's); on a "
        "loaded machine 1 thread keeps idle threads from spinning at barriers",
    )
    parser.add_argument("--out", type=Path, default=None, help="folder for speed.json / speed.md")


def parse_compile_options(items: list[str]) -> dict[str, Any]:
    """``["KEY=VALUE", ...]`` → ``{KEY: VALUE}``, each value read as YAML (``true`` → True,
    ``3`` → 3, other text stays a string)."""
    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--compile-option {item!r}: expected KEY=VALUE")
        options[key] = yaml.safe_load(value)
    return options


def command(args: argparse.Namespace) -> None:
    """``rayzer bench speed``: run the benchmark and write ``speed.json`` / ``speed.md``."""
    result = run(args)
    write_report(args.out, "speed", result, to_markdown(result))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument("--single", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--preset", help=argparse.SUPPRESS)
    parser.add_argument("--views", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--compile-options-json", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.single:
        device = args.device if args.device != "auto" else "cpu"
        backend = args.compile_backend if args.compile else None
        options = json.loads(args.compile_options_json) if args.compile_options_json else None
        row = time_training_step(
            args.preset,
            args.views,
            args.batch,
            args.steps,
            args.warmup,
            device,
            [],
            backend,
            options,
        )
        print(json.dumps(row))
        return
    result = run(args)
    write_report(args.out, "speed", result, to_markdown(result))


if __name__ == "__main__":
    main()
