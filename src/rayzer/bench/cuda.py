"""GPU readiness check (``rayzer bench cuda``): the CUDA paths, run once, in minutes.

Three parts, each in its own ``try`` (one failure is recorded as an error string and does not
hide the others) and each behind a global time guard (a part that would start after the budget
is recorded as ``"skipped: time"``):

1. ``train_steps``: one paper-scale training step of each registered model (its paper preset,
   random images at the preset's views and size, batch ``--batch``), in bf16 autocast: forward,
   the model's own loss (perceptual term included when the LPIPS weights are installed), backward,
   gradient clipping and the trainer's AdamW (fused on CUDA). Warm-up steps, then timed steps
   between ``torch.cuda.synchronize`` calls; peak memory (``torch.cuda.max_memory_allocated``);
   whether every loss, the gradient norm and the updated weights are finite; FLOPs per step;
   and which ``scaled_dot_product_attention`` kernels ran (counted in one extra step). A
   separate probe calls SDPA restricted to the flash kernel in bf16 and compares it with the
   math kernel.
2. ``rasterizer``: the torch and gsplat backends of :func:`rayzer.render.rasterize` on the same
   pixel-aligned Gaussians (:func:`rayzer.bench.render.pixel_aligned_scene`): image and alpha
   differences, relative differences of the gradients w.r.t. means, opacities and colours, and
   the time of each backend (:func:`rayzer.bench.render.time_backend`).
3. ``ddp``: a one-process NCCL process group (file store), a tiny model wrapped in
   ``DistributedDataParallel`` trained for 2 steps next to an unwrapped copy: their weights
   must agree.

Every part takes a ``device`` and a ``dtype``, so the tests run the same code on the CPU in fp32
at tiny scale (the rasterizer comparison against the dense ``reference`` backend, DDP with gloo).
The command itself needs CUDA and refuses to run without it. gsplat's PyPI wheel compiles its
kernels on first use (minutes): unless they are built (or ``--build-gsplat`` builds them first,
outside the budget), the comparison is skipped and the explicit models render with torch.
See docs/gpu-check.md.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import importlib.metadata
import importlib.util
import math
import os
import statistics
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from rayzer.utils.report import machine_info, markdown_table, write_report

#: The paper-scale preset of each registered model.
PAPER_PRESETS = ("rayzer-dl3dv", "lvsm-dl3dv", "erayzer-dl3dv", "nas3r-re10k")
#: Default total budget: the command must finish within 8 minutes on one GPU.
DEFAULT_BUDGET_S = 420.0
SKIPPED_TIME = "skipped: time"


# -- plumbing ----------------------------------------------------------------------------------


@dataclass
class Deadline:
    """A wall-clock budget shared by all parts."""

    budget_s: float
    start: float = field(default_factory=time.perf_counter)

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def expired(self) -> bool:
        return self.elapsed() >= self.budget_s


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def guarded(name: str, deadline: Deadline, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``fn()``'s result with ``status = "ok"``; ``"skipped: time"`` if the budget is spent
    before it starts; ``"error"`` with the error string (and the traceback's last lines) if it
    raises. Never raises, except on Ctrl-C."""
    if deadline.expired():
        return {"status": SKIPPED_TIME}
    t0 = time.perf_counter()
    try:
        result = fn()
    except Exception as err:  # record any failure and go on
        tail = traceback.format_exc().strip().splitlines()[-6:]
        return {
            "status": "error",
            "error": f"{type(err).__name__}: {err}",
            "traceback_tail": tail,
            "part_s": time.perf_counter() - t0,
        }
    return {"status": "ok", **result, "part_s": time.perf_counter() - t0}


def environment(device: torch.device) -> dict[str, Any]:
    """Versions and the device: what the numbers were measured with."""
    info: dict[str, Any] = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "device": str(device),
        "machine": machine_info(),
    }
    try:
        info["gsplat"] = importlib.metadata.version("gsplat")
    except importlib.metadata.PackageNotFoundError:
        info["gsplat"] = None
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info["device_name"] = props.name
        info["capability"] = f"{props.major}.{props.minor}"
        info["memory_gib"] = props.total_memory / 2**30
        try:
            info["nccl"] = str(torch.cuda.nccl.version())
        except Exception as err:  # only informative; the DDP part reports a real NCCL failure
            info["nccl"] = f"unknown ({type(err).__name__}: {err})"
    return info


# -- attention ---------------------------------------------------------------------------------


class SdpaCensus(contextlib.AbstractContextManager):
    """Counts ``F.scaled_dot_product_attention`` calls and the fused aten kernels they ran.

    A call that reached no fused kernel (flash, memory-efficient, cuDNN, or the CPU flash
    kernel) ran the unfused math path, whose pieces are ordinary matmuls and a softmax.
    """

    def __init__(self) -> None:
        self.calls = 0
        self.kernels: Counter[str] = Counter()
        census = self

        class _Calls(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                if func is F.scaled_dot_product_attention:
                    census.calls += 1
                return func(*args, **(kwargs or {}))

        class _Kernels(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                name = func.overloadpacket.__name__
                if "attention" in name:
                    census.kernels[name] = census.kernels.get(name, 0) + 1
                return func(*args, **(kwargs or {}))

        self._modes = (_Calls(), _Kernels())

    def __enter__(self) -> SdpaCensus:
        for mode in self._modes:
            mode.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        for mode in reversed(self._modes):
            mode.__exit__(*exc)

    def summary(self) -> dict[str, Any]:
        """``calls``, forward ``kernels`` by name, and ``math_calls`` (unfused)."""
        forward = {k: n for k, n in self.kernels.items() if not k.endswith("_backward")}
        fused = sum(forward.values())
        return {
            "calls": self.calls,
            "kernels": dict(sorted(self.kernels.items())),
            "math_calls": max(self.calls - fused, 0),
        }


def sdpa_probe(device: torch.device, dtype: torch.dtype, seq: int = 1024) -> dict[str, Any]:
    """Call SDPA restricted to the flash kernel (heads 12 × 64, ``seq`` tokens, ``dtype``) with
    a backward pass, and compare its output with the math kernel in fp32."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 12, seq, 64, generator=g).to(device, dtype) for _ in range(3))
    q.requires_grad_()
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
        out = F.scaled_dot_product_attention(q, k, v)
        out.float().square().sum().backward()
    with sdpa_kernel([SDPBackend.MATH]):
        ref = F.scaled_dot_product_attention(q.detach().float(), k.float(), v.float())
    info: dict[str, Any] = {
        "dtype": str(dtype).removeprefix("torch."),
        "flash_only_call": "ok",
        "max_abs_diff_vs_math_fp32": float((out.detach().float() - ref).abs().max()),
        "grad_finite": bool(torch.isfinite(q.grad).all()),
    }
    if device.type == "cuda":
        info["flash_sdp_enabled"] = torch.backends.cuda.flash_sdp_enabled()
        info["mem_efficient_sdp_enabled"] = torch.backends.cuda.mem_efficient_sdp_enabled()
        info["cudnn_sdp_enabled"] = torch.backends.cuda.cudnn_sdp_enabled()
        info["flash_attention_available"] = torch.backends.cuda.is_flash_attention_available()
    return info


# -- part 1: a training step of each model -----------------------------------------------------


@dataclass
class StepSpec:
    """One model's training-step measurement: a preset, overrides and the batch size."""

    preset: str
    overrides: Sequence[str] = ()
    batch: int = 2
    warmup: int = 2  # untimed steps (at least 1: the first one counts FLOPs and SDPA kernels)
    steps: int = 3
    render_backend: str | None = None  # explicit-3D models: rasterizer backend (None: preset's)


def _perceptual(cfg: Any, device: torch.device) -> tuple[nn.Module | None, str]:
    """The preset's perceptual loss when its weights are installed, else None (and why)."""
    if cfg.train.perceptual_weight <= 0:
        return None, "off (weight 0)"
    from rayzer.train.losses import build_perceptual_loss

    try:
        module = build_perceptual_loss(cfg.train.perceptual_net, cfg.train.perceptual_weight)
    except RuntimeError as err:
        return None, f"off ({err})"
    return module.to(device), f"LPIPS-{cfg.train.perceptual_net} x {cfg.train.perceptual_weight}"


def train_step_row(
    spec: StepSpec,
    device: torch.device,
    dtype: torch.dtype,
    deadline: Deadline | None = None,
) -> dict[str, Any]:
    """Build ``spec.preset``'s model on ``device`` and time its training step.

    Autocast to ``dtype`` unless it is fp32. ``max(spec.warmup, 1)`` untimed steps, then
    ``spec.steps`` timed ones. The model is told it is at the end of the LR
    warm-up (``on_train_step``), so schedules such as E-RayZer's frozen focal are past. Timed
    steps stop early (after at least one) when ``deadline`` expires.
    """
    from rayzer.bench.flops import count_flops
    from rayzer.bench.speed import random_batch
    from rayzer.config import load_config
    from rayzer.models import build_model
    from rayzer.render import resolve_backend
    from rayzer.train.optim import build_optimizer

    cfg = load_config(spec.preset, list(spec.overrides))
    if spec.render_backend is not None and hasattr(cfg.model, "render_backend"):
        cfg.model.render_backend = spec.render_backend
    v_in, v_tg = cfg.data.num_input_views, cfg.data.num_target_views
    size = cfg.data.image_size
    torch.manual_seed(0)
    with device:  # initialise the weights on the device (a 600 M model is slow on one CPU core)
        model = build_model(cfg.model)
    model = model.to(device).train()
    model.on_train_step(cfg.train.warmup_steps, cfg.train.steps)
    optimizer = build_optimizer(model, cfg.train)
    perceptual, perceptual_note = _perceptual(cfg, device)
    batch = random_batch(spec.batch, v_in + v_tg, size, str(device))
    perm = torch.randperm(v_in + v_tg, generator=torch.Generator().manual_seed(0))
    inp, tgt = perm[:v_in].sort().values.to(device), perm[v_in:].sort().values.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    losses: list[torch.Tensor] = []
    grad_norms: list[torch.Tensor] = []

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            loss = model.loss(model(batch, inp, tgt), batch, perceptual)["loss"]
        loss.backward()
        clip = cfg.train.grad_clip if cfg.train.grad_clip > 0 else math.inf
        grad_norms.append(torch.nn.utils.clip_grad_norm_(params, clip).detach())
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.detach().float())

    with SdpaCensus() as census:  # the first warm-up step also counts FLOPs and SDPA kernels
        flops = count_flops(step)
    for _ in range(spec.warmup - 1):
        step()
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times: list[float] = []
    for _ in range(spec.steps):
        sync(device)
        t0 = time.perf_counter()
        step()
        sync(device)
        times.append(time.perf_counter() - t0)
        if deadline is not None and deadline.expired():
            break
    step_s = statistics.median(times)
    loss_values = [float(x) for x in losses]
    return {
        "preset": spec.preset,
        "model": cfg.model.name,
        "dtype": "fp32" if dtype == torch.float32 else f"{dtype}-autocast".removeprefix("torch."),
        "params_M": sum(p.numel() for p in model.parameters()) / 1e6,
        "batch": spec.batch,
        "input_views": v_in,
        "target_views": v_tg,
        "image_size": size,
        "grad_checkpointing": bool(getattr(cfg.model, "grad_checkpointing", False)),
        "render_backend": _render_backend(cfg.model, device, resolve_backend),
        "perceptual": perceptual_note,
        "warmup_steps": max(spec.warmup, 1),
        "timed_steps": len(times),
        "step_s": step_s,
        "step_s_all": times,
        "images_per_s": spec.batch * (v_in + v_tg) / step_s,
        "tflop_per_step": flops / 1e12,
        "achieved_tflops": flops / step_s / 1e12,
        "peak_mem_gib": (
            torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
        ),
        "losses": loss_values,
        "loss_finite": all(math.isfinite(x) for x in loss_values),
        "grad_norm_finite": all(math.isfinite(float(g)) for g in grad_norms),
        "weights_finite": all(bool(torch.isfinite(p).all()) for p in params),
        "sdpa": census.summary(),
    }


def _render_backend(model_cfg: Any, device: torch.device, resolve: Callable) -> str | None:
    """The rasterizer backend an explicit-3D model renders with (None for the others)."""
    name = getattr(model_cfg, "render_backend", None)
    return None if name is None else resolve(name, device)


def train_steps_part(
    specs: Sequence[StepSpec],
    device: torch.device,
    dtype: torch.dtype,
    deadline: Deadline,
) -> dict[str, Any]:
    """One guarded :func:`train_step_row` per spec (:func:`_row_with_retry`); memory is freed
    between models."""
    rows = []
    for spec in specs:
        rows.append({"preset": spec.preset, **_row_with_retry(spec, device, dtype, deadline)})
        _free(device)
    return {"rows": rows}


def _row_with_retry(
    spec: StepSpec, device: torch.device, dtype: torch.dtype, deadline: Deadline
) -> dict[str, Any]:
    """:func:`train_step_row`, guarded; a CUDA out-of-memory error is retried once at batch 1
    (the row then records the first error under ``oom_at_batch``)."""
    row = guarded(spec.preset, deadline, lambda: train_step_row(spec, device, dtype, deadline))
    if row["status"] != "error" or "OutOfMemoryError" not in row["error"] or spec.batch == 1:
        return row
    _free(device)
    retry = dataclasses.replace(spec, batch=1)
    again = guarded(spec.preset, deadline, lambda: train_step_row(retry, device, dtype, deadline))
    return {**again, "oom_at_batch": {"batch": spec.batch, "error": row["error"]}}


def _free(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


# -- part 2: rasterizer backends ---------------------------------------------------------------

_GRAD_NAMES = ("means", "opacities", "colors")


def _render_with_grads(
    scene: dict[str, Any], backend: str, weights: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """rgb, alpha and the gradients of ``Σ weights · rgb`` w.r.t. means, opacities, colours."""
    from rayzer.render import rasterize

    leaves = {k: scene[k].detach().clone().requires_grad_() for k in _GRAD_NAMES}
    out = rasterize(**{**scene, **leaves}, backend=backend)
    (out.rgb * weights).sum().backward()
    grads = {k: v.grad for k, v in leaves.items()}
    return out.rgb.detach(), out.alpha.detach(), grads


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    """||a − b|| / ||b|| (0 when both are 0)."""
    den = float(b.norm())
    num = float((a - b).norm())
    return num / den if den > 0 else num


def rasterizer_part(
    device: torch.device,
    dtype: torch.dtype = torch.float32,
    size: int = 256,
    inputs: int = 4,
    targets: int = 4,
    repeats: int = 3,
    other: str = "gsplat",
) -> dict[str, Any]:
    """The torch backend against ``other`` on one pixel-aligned scene (``inputs · size²``
    Gaussians rendered into ``targets`` views): forward differences, gradient agreement and
    the time of each (:func:`rayzer.bench.render.time_backend`, median of ``repeats``)."""
    from rayzer.bench.render import pixel_aligned_scene, time_backend

    scene = pixel_aligned_scene(size, inputs, targets, dtype=dtype, device=device)
    g = torch.Generator().manual_seed(1)
    weights = torch.rand(1, targets, 3, size, size, generator=g).to(device, dtype)
    rgb_a, alpha_a, grads_a = _render_with_grads(scene, "torch", weights)
    rgb_b, alpha_b, grads_b = _render_with_grads(scene, other, weights)
    diff = (rgb_a - rgb_b).abs()
    result: dict[str, Any] = {
        "backends": ["torch", other],
        "size": size,
        "gaussians": int(scene["means"].shape[1]),
        "targets": targets,
        "rgb_max_abs_diff": float(diff.max()),
        "rgb_mean_abs_diff": float(diff.mean()),
        "alpha_max_abs_diff": float((alpha_a - alpha_b).abs().max()),
        "grad_rel_diff": {k: _relative(grads_a[k], grads_b[k]) for k in _GRAD_NAMES},
        "grad_finite": all(bool(torch.isfinite(grads_b[k]).all()) for k in _GRAD_NAMES),
    }
    for backend in ("torch", other):
        result[f"{backend}_time"] = time_backend(scene, backend, repeats, device.type)
    return result


# -- part 3: one-process DDP -------------------------------------------------------------------


def _tiny_regression(device: torch.device) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 64), nn.GELU(), nn.Linear(64, 4)).to(device)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 16, generator=g).to(device)
    y = torch.randn(32, 4, generator=g).to(device)
    return model, x, y


def _train(
    net: nn.Module, params: Iterator[nn.Parameter], x: torch.Tensor, y: torch.Tensor, steps: int
) -> None:
    opt = torch.optim.AdamW(params, lr=1e-2)
    for _ in range(steps):
        F.mse_loss(net(x), y).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)


def ddp_part(device: torch.device, backend: str | None = None, steps: int = 2) -> dict[str, Any]:
    """Train a tiny model ``steps`` AdamW steps wrapped in DDP in a one-process group (``backend``:
    default NCCL on CUDA, gloo on CPU; file store) and unwrapped; compare the weights."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    if not dist.is_available():
        raise RuntimeError("torch.distributed is not available in this build")
    if dist.is_initialized():
        raise RuntimeError("a process group is already initialised in this process")
    backend = backend or ("nccl" if device.type == "cuda" else "gloo")
    ref, x, y = _tiny_regression(device)
    start = copy.deepcopy(ref.state_dict())
    wrapped = copy.deepcopy(ref)
    _train(ref, ref.parameters(), x, y, steps)
    with tempfile.TemporaryDirectory(prefix="rayzer-ddp-") as tmp:
        t0 = time.perf_counter()
        dist.init_process_group(
            backend, init_method=f"file://{Path(tmp) / 'store'}", rank=0, world_size=1
        )
        try:
            ids = [device.index or torch.cuda.current_device()] if device.type == "cuda" else None
            net = DistributedDataParallel(wrapped, device_ids=ids)
            _train(net, net.parameters(), x, y, steps)
            sync(device)
            elapsed = time.perf_counter() - t0
        finally:
            dist.destroy_process_group()
    pairs = zip(ref.parameters(), wrapped.parameters())
    diff = max(float((a.detach() - b.detach()).abs().max()) for a, b in pairs)
    change = max(float((p.detach() - start[k]).abs().max()) for k, p in ref.named_parameters())
    return {
        "backend": backend,
        "world_size": 1,
        "steps": steps,
        "max_abs_weight_diff": diff,
        "max_abs_weight_change": change,
        "equal": diff <= 1e-6,
        "ddp_s": elapsed,
        "group_destroyed": not dist.is_initialized(),
    }


# -- gsplat's kernels --------------------------------------------------------------------------


def gsplat_kernels() -> dict[str, Any]:
    """Whether gsplat's CUDA kernels can load without compiling (never imports gsplat).

    ``state``: ``"not installed"``; ``"prebuilt"`` (a wheel with compiled kernels); ``"jit
    cached"`` (compiled on this machine before); ``"needs JIT build"`` (the PyPI wheel: the
    first CUDA call compiles them, minutes with nvcc); ``"no CUDA toolkit"`` (it cannot build).
    """
    if importlib.util.find_spec("gsplat") is None:
        return {"state": "not installed"}
    if importlib.util.find_spec("gsplat.csrc") is not None:
        return {"state": "prebuilt"}
    from torch.utils import cpp_extension

    try:  # where torch's JIT loader (used by gsplat) keeps the build: a private helper
        build_dir = cpp_extension._get_build_directory("gsplat_cuda", verbose=False)
    except Exception:  # only informative
        build_dir = None
    if build_dir is not None and os.path.exists(os.path.join(build_dir, "gsplat_cuda.so")):
        return {"state": "jit cached", "build_dir": build_dir}
    if cpp_extension.CUDA_HOME is None:
        return {"state": "no CUDA toolkit", "build_dir": build_dir}
    return {"state": "needs JIT build", "build_dir": build_dir}


def build_gsplat() -> float:
    """Load (compiling on first use) gsplat's CUDA kernels; returns the seconds it took."""
    t0 = time.perf_counter()
    from gsplat.cuda._backend import _C

    if _C is None:
        raise RuntimeError("gsplat's CUDA kernels did not build (see the messages above)")
    return time.perf_counter() - t0


def gsplat_plan(build: bool) -> tuple[dict[str, Any], str | None]:
    """gsplat's kernel state (:func:`gsplat_kernels`) and why its comparison is skipped (None:
    it runs). With ``build``, kernels that need a JIT build are compiled now (the time is
    recorded as ``build_s``; a failed build is recorded and skips gsplat)."""
    kernels = gsplat_kernels()
    if kernels["state"] == "needs JIT build" and build:
        try:
            kernels["build_s"] = build_gsplat()
            kernels["state"] = "jit built now"
        except Exception as err:  # recorded; the rest of the check still runs
            kernels["build_error"] = f"{type(err).__name__}: {err}"
    if kernels["state"] in ("prebuilt", "jit cached", "jit built now"):
        return kernels, None
    skip = f"gsplat kernels: {kernels['state']}"
    if kernels["state"] == "needs JIT build" and not build:
        skip += " (pass --build-gsplat to compile them first: minutes, outside the budget)"
    return kernels, skip


# -- the command -------------------------------------------------------------------------------


def run_all(
    device: torch.device,
    dtype: torch.dtype,
    specs: Sequence[StepSpec],
    budget_s: float = DEFAULT_BUDGET_S,
    *,
    render_size: int = 256,
    render_repeats: int = 3,
    render_other: str = "gsplat",
    render_skip: str | None = None,
) -> dict[str, Any]:
    """All parts on ``device``: the result dict the command prints. The rasterizer comparison
    is recorded as ``"skipped: <render_skip>"`` when ``render_skip`` is given (tests compare with
    the dense ``reference`` backend instead of gsplat)."""
    deadline = Deadline(budget_s)
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high")  # as the trainer: TF32 matmuls
        torch.backends.cudnn.allow_tf32 = True
    result: dict[str, Any] = {
        "benchmark": "cuda",
        "dtype": str(dtype).removeprefix("torch."),
        "budget_s": budget_s,
        **environment(device),
    }
    result["sdpa_probe"] = guarded("sdpa", deadline, lambda: sdpa_probe(device, dtype))
    result["train_steps"] = guarded(
        "train_steps", deadline, lambda: train_steps_part(specs, device, dtype, deadline)
    )
    if render_skip is not None:
        result["rasterizer"] = {"status": f"skipped: {render_skip}"}
    else:
        result["rasterizer"] = guarded(
            "rasterizer",
            deadline,
            lambda: rasterizer_part(
                device, size=render_size, repeats=render_repeats, other=render_other
            ),
        )
    result["ddp"] = guarded("ddp", deadline, lambda: ddp_part(device))
    result["elapsed_s"] = deadline.elapsed()
    result["failures"] = failures(result)
    return result


def failures(result: dict[str, Any]) -> list[str]:
    """Names of the parts (and models) that raised, or were skipped for time."""
    bad = []
    for part in ("sdpa_probe", "train_steps", "rasterizer", "ddp"):
        status = result.get(part, {}).get("status", "missing")
        if status == "error" or status == SKIPPED_TIME or status == "missing":
            bad.append(f"{part}: {status}")
    for row in result.get("train_steps", {}).get("rows", []):
        if row["status"] != "ok":
            bad.append(f"train_steps/{row['preset']}: {row['status']}")
        elif not (row["loss_finite"] and row["grad_norm_finite"] and row["weights_finite"]):
            bad.append(f"train_steps/{row['preset']}: non-finite loss, gradient or weights")
    ddp = result.get("ddp", {})
    if ddp.get("status") == "ok" and not ddp["equal"]:
        bad.append(f"ddp: weights differ by {ddp['max_abs_weight_diff']:.3g}")
    return bad


def to_markdown(result: dict[str, Any]) -> str:
    """A table of the training steps, then one line each for the other parts."""
    rows = []
    for row in result["train_steps"].get("rows", []):
        sdpa = row.get("sdpa", {})
        kernels = ", ".join(f"{k} {n}" for k, n in sdpa.get("kernels", {}).items())
        rows.append({**row, "sdpa_kernels": kernels, "sdpa_math_calls": sdpa.get("math_calls")})
    cols = ["preset", "status", "batch", "input_views", "target_views", "image_size", "step_s",
            "images_per_s", "achieved_tflops", "peak_mem_gib", "loss_finite", "render_backend",
            "sdpa_kernels", "sdpa_math_calls", "error"]  # fmt: skip
    name = result.get("device_name", result["device"])
    lines = [f"`rayzer bench cuda` on {name}: torch {result['torch']}, CUDA {result['cuda']}, "
             f"{result['elapsed_s']:.0f} s", "", markdown_table(rows, cols), ""]  # fmt: skip
    train = result["train_steps"]
    if train["status"] != "ok":
        lines.append(f"- training steps: {train['status']} {train.get('error', '')}")
    for part in ("sdpa_probe", "rasterizer", "ddp"):
        lines.append(f"- {part}: {_part_line(result[part])}")
    if result["failures"]:
        lines.append(f"- failures: {'; '.join(result['failures'])}")
    return "\n".join(lines)


def _part_line(part: dict[str, Any]) -> str:
    if part["status"] != "ok":
        return f"{part['status']} {part.get('error', '')}".strip()
    keys = ("max_abs_diff_vs_math_fp32", "rgb_max_abs_diff", "rgb_mean_abs_diff",
            "grad_rel_diff", "max_abs_weight_diff", "backend")  # fmt: skip
    shown = {k: part[k] for k in keys if k in part}
    for name in ("torch_time", "gsplat_time", "reference_time"):
        if name in part:
            shown[name] = {k: round(v, 4) for k, v in part[name].items()}
    return "ok " + ", ".join(f"{k} {v}" for k, v in shown.items())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--presets",
        nargs="+",
        default=list(PAPER_PRESETS),
        help="default: each model's paper preset",
    )
    parser.add_argument("--batch", type=int, default=2, help="batch size (OOM: retried at 1)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per model (>= 1)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per model (median)")
    parser.add_argument("--render-size", type=int, default=256, help="rasterizer scene size (px)")
    parser.add_argument(
        "--budget", type=float, default=DEFAULT_BUDGET_S, help="seconds; later parts are skipped"
    )
    parser.add_argument(
        "--build-gsplat",
        action="store_true",
        help="compile gsplat's CUDA kernels first when they are not built (minutes; not counted "
        "in --budget); without it an unbuilt gsplat is skipped and the models render with torch",
    )
    parser.add_argument("--out", type=Path, default=None, help="folder for cuda.json / cuda.md")


def main(args: argparse.Namespace) -> None:
    """``rayzer bench cuda``: needs CUDA; exits ≠ 0 when a part failed (after writing)."""
    for name in ("batch", "warmup", "steps", "render_size"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if not torch.cuda.is_available():
        raise ValueError(
            "rayzer bench cuda needs a CUDA GPU (torch.cuda.is_available() is False; "
            f"torch {torch.__version__}, built with CUDA {torch.version.cuda})"
        )
    kernels, skip = gsplat_plan(args.build_gsplat)
    backend = "auto" if skip is None else "torch"  # the explicit models' renderer
    specs = [StepSpec(p, (), args.batch, args.warmup, args.steps, backend) for p in args.presets]
    result = run_all(
        torch.device("cuda"),
        torch.bfloat16,
        specs,
        args.budget,
        render_size=args.render_size,
        render_skip=skip,
    )
    result["gsplat_kernels"] = kernels
    if skip is not None:  # on a GPU the comparison is part of the check: incomplete = failed
        result["failures"].append(f"rasterizer: skipped: {skip}")
    write_report(args.out, "cuda", result, to_markdown(result))
    if result["failures"]:
        raise ValueError("GPU check failed: " + "; ".join(result["failures"]))
