"""The training loop: one :class:`Trainer` for every registered model.

Per optimizer step (``train.batch_size`` global samples):

1. ``grad_accum`` micro-batches per rank from the reproducible stream
   (:mod:`rayzer.data.stream`); under DDP the gradient all-reduce is suppressed with
   ``no_sync()`` on every micro-batch **except the last**, whose backward averages the
   accumulated gradients over ranks. Each micro-batch loss is divided by ``grad_accum``, so the
   update equals that of one large batch.
2. Loss: ``model(batch, input_index, target_index)`` then ``model.loss(...)``, the model's own
   named terms (:class:`rayzer.models.base.RayModel`); their sum ``"loss"`` is back-propagated
   and every term is logged. The trainer knows a model only through that interface and its
   capability flags (a model that ``needs_gt_cameras`` trains on posed scenes only).
3. Global gradient norm (per ``clip`` set of the model's parameter groups) → clip to
   ``grad_clip`` → skip the update (logged) if it is non-finite, spikes above
   ``grad_spike_factor`` × the running median, or breaks the releases' fixed bounds
   (``grad_skip_clip_factor`` × the clip after ``grad_skip_after`` steps; an element above
   ``grad_skip_element``) → AdamW → LR schedule.

Precision: ``auto`` = bf16 autocast + TF32 matmuls on CUDA, fp32 on CPU (bf16 is ~30× slower on
these CPUs). Multi-process: launch with ``torchrun``; the ``RANK`` / ``WORLD_SIZE`` /
``LOCAL_RANK`` variables select DDP over gloo (CPU) or NCCL (CUDA).

Stopping: SIGTERM / SIGINT request a stop; all ranks agree on it at the next step boundary,
write a checkpoint and return normally, so ``rayzer train`` exits 0 (a second signal aborts at
once, exit 130). Under torchrun the launcher forwards SIGTERM to the workers, which checkpoint
and exit 0; torchrun itself then reports the signal and exits 1. The optional
``train.time_budget_minutes`` stops the same way (the budget counts from the start of
:meth:`Trainer.train` of this invocation, in wall-clock or process CPU time:
``train.time_budget_clock``). Every logged record also holds ``cpu_s``, the process CPU
seconds since that start (all threads of this process), so a run's CPU cost is known whichever
clock its budget counted. Checkpoints also every ``ckpt_every`` steps and at the
end; ``resume`` continues bit-for-bit (same losses) because model, optimizer, scheduler,
spike-guard and RNG states are restored and the data stream is a function of the step.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from rayzer.config import Config, DataConfig, config_to_yaml, load_config
from rayzer.data.stream import BatchLayout, TrainStream, make_loader
from rayzer.models import RayModel, build_model
from rayzer.models.views import gather_views
from rayzer.train.checkpoint import (
    CHECKPOINT_DIR,
    STATE_FILE,
    SUPERSEDED_DIR,
    latest_intact_checkpoint,
    load_checkpoint,
    resolve_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
    supersede_later_checkpoints,
)
from rayzer.train.checkpoint import latest_checkpoint as find_latest
from rayzer.train.logger import RunLogger, image_grid
from rayzer.train.losses import build_perceptual_loss
from rayzer.train.optim import GradSpikeGuard, WarmupCosine, build_optimizer, build_scheduler
from rayzer.train.run_lock import run_folder_lock
from rayzer.utils.compile_options import inductor_options
from rayzer.utils.logs import StderrHandler

log = logging.getLogger("rayzer.train")
#: What a training state must hold to continue a run (see :meth:`Trainer._restore`).
_RESUME_KEYS = ("optimizer", "scheduler", "spike_guard", "rng", "data")

# -- distributed setup -------------------------------------------------------------------------


@dataclass
class DistContext:
    """This process's place in the (possibly single-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup_distributed(device: str = "auto") -> DistContext:
    """Read torchrun's environment, pick the device and join the process group if needed.

    Args:
        device: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    if use_cuda and not torch.cuda.is_available():
        raise ValueError("train.device='cuda' but CUDA is not available")
    if use_cuda:
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    else:
        dev = torch.device("cpu")
    owns = False
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        owns = True
    if world > 1:
        rank, world = dist.get_rank(), dist.get_world_size()
    return DistContext(rank, world, local, dev, owns)


# -- results -------------------------------------------------------------------------------------


@dataclass
class StepStats:
    """Outcome of one optimizer step: the model's loss terms averaged over ranks and
    micro-batches (``terms``, always with ``"loss"``), the gradient norm of the main clip set,
    the learning rate, whether the update was skipped and the wall time."""

    step: int
    terms: dict[str, float]
    grad_norm: float
    lr: float
    skipped: bool
    step_time: float

    @property
    def loss(self) -> float:
        return self.terms["loss"]

    @property
    def psnr(self) -> float:
        return self.terms.get("psnr", math.nan)

    @property
    def mse(self) -> float:
        return self.terms.get("mse", math.nan)


@dataclass
class TrainSummary:
    """What :meth:`Trainer.train` did."""

    step: int
    stopped_by: str | None
    history: list[StepStats]
    checkpoint: Path | None
    out_dir: Path
    rank: int = 0


# -- trainer ------------------------------------------------------------------------------------


class Trainer:
    """Builds model, optimizer, data and logging from a :class:`Config` and trains.

    Args:
        cfg: full config; ``cfg.model.name`` selects the registered model.
        out_dir: run directory (default ``cfg.train.out_dir``).
        resume: ``None`` (fresh run; an out_dir that already holds checkpoints is an error),
            ``"auto"`` (latest checkpoint of out_dir if any, else fresh) or a checkpoint / run path.
    """

    def __init__(
        self, cfg: Config, out_dir: str | Path | None = None, resume: str | Path | None = None
    ) -> None:
        self.cfg = cfg
        tc = cfg.train
        self.out_dir = Path(out_dir if out_dir is not None else tc.out_dir)
        ckpt = self._find_resume_checkpoint(resume)
        # checked before any work: an unknown name is a clear error, not torch's RuntimeError
        compile_options = inductor_options(tc.compile_options, "train.compile_options")

        if tc.num_threads > 0:
            torch.set_num_threads(tc.num_threads)
        self.ctx = setup_distributed(tc.device)
        self.device = self.ctx.device
        self.layout = BatchLayout(tc.batch_size, self.ctx.world_size, tc.grad_accum)
        use_cuda = self.device.type == "cuda"
        self.use_bf16 = tc.precision == "bf16" or (tc.precision == "auto" and use_cuda)
        if self.use_bf16 and not use_cuda:
            log.warning("bf16 autocast on CPU is very slow on most CPUs; precision=fp32 is faster")
        if use_cuda:
            torch.set_float32_matmul_precision("high")  # TF32 matmuls
            torch.backends.cudnn.allow_tf32 = True

        # Same seed on every rank: identical initial weights (DDP also broadcasts rank 0's).
        random.seed(tc.seed)
        np.random.seed(tc.seed % 2**32)
        torch.manual_seed(tc.seed)
        self.model: RayModel = build_model(cfg.model).to(self.device)
        if tc.compile:  # in place: parameter names and checkpoints stay those of the model
            self.model.compile(options=compile_options or None)
        self.net: nn.Module = self.model
        if self.ctx.distributed:
            self.net = DistributedDataParallel(
                self.model, device_ids=[self.ctx.local_rank] if use_cuda else None
            )
        self.optimizer = build_optimizer(self.model, tc)
        self.scheduler = build_scheduler(self.optimizer, tc)
        # The median test starts after the LR warm-up: while the model leaves its initialisation
        # the gradient norm rises tenfold and more for real, and skipping those updates (seen:
        # 15 of the first 80 steps of tiny-cpu) only delays training. Clipping stays on.
        self.guard = GradSpikeGuard(
            tc.grad_spike_factor,
            min_history=max(20, tc.warmup_steps),
            norm_bound=tc.grad_skip_clip_factor * tc.grad_clip or math.inf,
            norm_bound_after=tc.grad_skip_after,
            element_bound=tc.grad_skip_element or math.inf,
        )
        self.perceptual = None
        if tc.perceptual_weight > 0:
            self.perceptual = build_perceptual_loss(tc.perceptual_net, tc.perceptual_weight)
            self.perceptual = self.perceptual.to(self.device)

        self.step = 0
        self.resumed_from: Path | None = None
        if ckpt is not None:
            self._restore(ckpt)

        # Opened before anything is written: a bad data.source fails without leaving a run folder
        # (or moving a resumed run's checkpoints).
        self.stream = TrainStream(
            cfg.data,
            tc.seed,
            self.layout,
            rank=self.ctx.rank,
            start=self.step * self.layout.grad_accum,
            require_poses=self.model.capabilities.needs_gt_cameras,
            patch_size=getattr(cfg.model, "patch_size", 1),
        )
        superseded: list[Path] = []
        if ckpt is not None and self.ctx.is_main and self._in_out_dir(ckpt):
            superseded = supersede_later_checkpoints(self.out_dir, self.step)
            if superseded:
                log.warning(
                    f"resumed from step {self.step} of a run that went further: its "
                    f"{len(superseded)} later checkpoint(s) moved to {superseded[0].parent}"
                )
        # On resume, TensorBoard drops what an earlier branch logged after this step.
        self.logger = RunLogger(
            self.out_dir,
            enabled=self.ctx.is_main,
            purge_step=self.step + 1 if ckpt is not None else None,
        )
        if ckpt is not None:  # readers drop the logged steps after this one (an abandoned branch)
            self.logger.event(
                self.step, "resume", checkpoint=str(ckpt), superseded=[str(p) for p in superseded]
            )
        if self.ctx.is_main:
            (self.out_dir / "config.yaml").write_text(config_to_yaml(cfg))
        self._stop_signal: str | None = None
        self._image_size: tuple[int, int] | None = None  # last logged (H, W) (progressive res.)
        self._last_images: tuple[Tensor, Tensor] | None = None
        self._last_saved: int | None = self.step if ckpt is not None else None

    # -- resume -----------------------------------------------------------------------------

    def _find_resume_checkpoint(self, resume: str | Path | None) -> Path | None:
        if resume is None:
            if find_latest(self.out_dir) is not None:
                raise ValueError(
                    f"{self.out_dir} already holds checkpoints; pass --resume auto to continue "
                    "that run or choose another --out"
                )
            return None
        if str(resume) == "auto":  # the newest checkpoint that loads (damaged ones: warned)
            return latest_intact_checkpoint(self.out_dir)
        ckpt = resolve_checkpoint(resume)
        if not self._in_out_dir(ckpt) and find_latest(self.out_dir) is not None:
            root = (self.out_dir / CHECKPOINT_DIR / SUPERSEDED_DIR).resolve()
            whose = (
                "a superseded checkpoint of this run"
                if ckpt.resolve().is_relative_to(root)
                else "a checkpoint of another run"
            )
            raise ValueError(
                f"{self.out_dir} already holds checkpoints and {ckpt} is {whose}; resume it into "
                "its own run directory or into an empty --out"
            )
        return ckpt

    def _in_out_dir(self, ckpt: Path) -> bool:
        """True if checkpoint ``ckpt`` (symlinks resolved) is one of this run's checkpoints."""
        real = ckpt.resolve()
        return real.parent == (self.out_dir / CHECKPOINT_DIR).resolve()

    def _restore(self, path: Path) -> None:
        loaded = load_checkpoint(path, self.model)
        state = loaded.state
        missing = [k for k in _RESUME_KEYS if k not in state]
        if missing:  # e.g. saved through the Python API with an empty state
            raise ValueError(
                f"{loaded.path / STATE_FILE} holds no training state to resume (missing "
                f"{missing}): it cannot continue a run"
            )
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self._apply_config_hparams()
        self.guard.load_state_dict(state["spike_guard"])
        rngs = state["rng"]
        if len(rngs) != self.ctx.world_size:
            log.warning(
                f"checkpoint was written by {len(rngs)} process(es), this run has "
                f"{self.ctx.world_size}; restoring rank 0's RNG state everywhere"
            )
        set_rng_state(rngs[self.ctx.rank] if len(rngs) == self.ctx.world_size else rngs[0])
        saved_layout = state["data"]["layout"]
        if int(saved_layout["global_batch"]) != self.layout.global_batch:
            log.warning(
                "train.batch_size differs from the checkpoint's: the data stream restarts at "
                "sample step × new batch size; the run is no longer an exact continuation"
            )
        self.step = loaded.step
        self.resumed_from = loaded.path
        if self.ctx.is_main:
            log.info(f"resumed from {loaded.path} at step {self.step}")

    def _apply_config_hparams(self) -> None:
        """After loading optimizer / scheduler state, make the *current* config's lr, schedule,
        betas and weight decay win (so ``--resume train.steps=…`` extends the cosine). With an
        unchanged config this reproduces the saved values exactly."""
        tc = self.cfg.train
        schedule = WarmupCosine(tc.warmup_steps, tc.steps, tc.min_lr_ratio)
        self.scheduler.lr_lambdas = [schedule] * len(self.optimizer.param_groups)
        self.scheduler.base_lrs = [tc.lr] * len(self.optimizer.param_groups)
        for group in self.optimizer.param_groups:
            group["initial_lr"] = tc.lr
            group["lr"] = tc.lr * schedule(self.scheduler.last_epoch)
            group["betas"] = tuple(tc.betas)
            group["weight_decay"] = tc.weight_decay if group.get("group") == "decay" else 0.0
        self.scheduler._last_lr = [g["lr"] for g in self.optimizer.param_groups]

    def training_state(self) -> dict[str, Any]:
        """Optimizer, scheduler, guard, per-rank RNG and data-stream state (collective under DDP)."""
        rng = rng_state()
        if self.ctx.distributed:
            gathered: list[Any] = [None] * self.ctx.world_size
            dist.all_gather_object(gathered, rng)
            rngs = gathered
        else:
            rngs = [rng]
        return {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "spike_guard": self.guard.state_dict(),
            "rng": rngs,
            "data": {
                "micro_batches_per_rank": self.step * self.layout.grad_accum,
                "samples": self.step * self.layout.global_batch,
                "layout": {
                    "global_batch": self.layout.global_batch,
                    "world_size": self.layout.world_size,
                    "grad_accum": self.layout.grad_accum,
                },
            },
        }

    def save(self) -> Path | None:
        """Checkpoint the current step (all ranks must call it; rank 0 writes)."""
        state = self.training_state()
        path = None
        if self.ctx.is_main:
            path = save_checkpoint(
                self.out_dir,
                self.step,
                self.model,
                state,
                self.cfg,
                keep_last=self.cfg.train.keep_last,
                meta={"world_size": self.ctx.world_size},
            )
            self.logger.event(self.step, "checkpoint", path=str(path))
        if self.ctx.distributed:
            dist.barrier()
        self._last_saved = self.step
        return path

    # -- one step ---------------------------------------------------------------------------

    def autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast(
            device_type=self.device.type, dtype=torch.bfloat16, enabled=self.use_bf16
        )

    def compute_loss(self, batch: dict[str, Tensor]) -> tuple[dict[str, Tensor], Tensor]:
        """The model's loss terms and its target renders (B, Vt, 3, H, W) of one micro-batch."""
        output = self.net(batch, batch["input_index"], batch["target_index"])
        return self.model.loss(output, batch, self.perceptual), output.rendered.rgb

    def _clip_sets(self) -> dict[str, list[Tensor]]:
        """Parameters with a gradient by clip set (``"clip"`` key of the optimizer's groups;
        ``"model"`` by default): each set is clipped on its own."""
        sets: dict[str, list[Tensor]] = {"model": []}
        for group in self.optimizer.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            sets.setdefault(group.get("clip", "model"), []).extend(params)
        return sets

    def train_step(self, batches: Any) -> StepStats:
        """One optimizer step from ``grad_accum`` micro-batches drawn from iterator ``batches``."""
        t0 = time.perf_counter()
        self.net.train()
        self.model.on_train_step(self.step, self.cfg.train.steps)
        size = self.cfg.data.image_hw_at(self.step, self.stream.patch_size)
        if self.cfg.data.low_res_steps and size != self._image_size and self.ctx.is_main:
            shown = f"{size[0]} px" if size[0] == size[1] else f"{size[0]}×{size[1]} (H×W)"
            log.info(f"step {self.step + 1}: training on {shown} images (progressive resolution)")
        self._image_size = size
        means = self._accumulate_gradients(batches)
        grad_norm, lr, skipped = self._update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.step += 1
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return StepStats(
            step=self.step,
            terms=means,
            grad_norm=grad_norm,
            lr=lr,
            skipped=skipped,
            step_time=time.perf_counter() - t0,
        )

    def _accumulate_gradients(self, batches: Any) -> dict[str, float]:
        """Forward and backward of ``grad_accum`` micro-batches; the loss terms' means over
        them and over the ranks (keeps the last targets and renders when images are due)."""
        accum = self.layout.grad_accum
        # Metric sums stay on the device (one host sync per step, not per micro-batch); the
        # names are the first micro-batch's terms (a model returns the same ones every time).
        sums: Tensor | None = None
        names: list[str] = []
        every = self.cfg.train.image_every
        want_images = self.ctx.is_main and every > 0 and (self.step + 1) % every == 0
        self._last_images = None
        for a in range(accum):
            batch = {k: v.to(self.device, non_blocking=True) for k, v in next(batches).items()}
            # Only the last micro-batch synchronises gradients across ranks.
            sync = (
                self.net.no_sync()
                if self.ctx.distributed and a < accum - 1
                else contextlib.nullcontext()
            )
            with sync:
                with self.autocast():
                    terms, render = self.compute_loss(batch)
                (terms["loss"] / accum).backward()
            if sums is None:
                names = sorted(terms)
                sums = torch.zeros(len(names), dtype=torch.float64, device=self.device)
            sums += torch.stack([terms[k].detach().double().reshape(()) for k in names])
            if want_images and a == accum - 1:
                tgt = gather_views(batch["image"], batch["target_index"])
                self._last_images = (tgt[0].detach().cpu(), render[0].detach().float().cpu())
        assert sums is not None
        if self.ctx.distributed:
            dist.all_reduce(sums)
        return dict(zip(names, (sums / (accum * self.ctx.world_size)).tolist(), strict=True))

    def _update(self) -> tuple[float, float, bool]:
        """Clip each clip set, then step the optimizer unless the spike guard skips the update
        (logged). Returns the model's gradient norm, the learning rate and whether it skipped."""
        # Each clip set on its own: e.g. an auxiliary head's objective must not shrink the
        # photometric updates of the rest of the model (or trip the spike guard's median).
        max_norm = self.cfg.train.grad_clip if self.cfg.train.grad_clip > 0 else math.inf
        # Before clipping, which rescales every element.
        max_element = self._max_grad_element() if self.cfg.train.grad_skip_element > 0 else None
        norms = {
            name: float(torch.nn.utils.clip_grad_norm_(params, max_norm)) if params else 0.0
            for name, params in self._clip_sets().items()
        }
        grad_norm = norms.pop("model")
        lr = float(self.optimizer.param_groups[0]["lr"])
        threshold = self.guard.threshold(self.step)
        # A non-finite gradient of another set skips the whole update too (NaN weights).
        finite = all(math.isfinite(n) for n in norms.values())
        skipped = self.guard.check(grad_norm if finite else math.nan, self.step, max_element)
        if skipped:
            if self.ctx.is_main:
                others = "".join(f", {k} {v:.4g}" for k, v in norms.items())
                element = "" if max_element is None else f", max element {max_element:.4g}"
                log.warning(
                    f"step {self.step + 1}: skipped update, grad norm {grad_norm:.4g}{others}"
                    f"{element} (threshold {threshold:.4g}); {self.guard.skipped} skipped so far"
                )
            self.logger.event(
                self.step + 1,
                "skipped_update",
                grad_norm=grad_norm,
                **({} if max_element is None else {"max_grad_element": max_element}),
                **{f"{k}_grad_norm": v for k, v in norms.items()},
                threshold=threshold,
            )
        else:
            self.optimizer.step()
        return grad_norm, lr, skipped

    def _max_grad_element(self) -> float:
        """Largest absolute gradient element over all parameters (one host sync)."""
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        if not grads:
            return 0.0
        return float(torch.stack([g.detach().abs().amax().float() for g in grads]).amax())

    def _clock(self) -> float:
        """Seconds on the clock ``train.time_budget_clock`` counts (its origin is arbitrary)."""
        if self.cfg.train.time_budget_clock == "process":
            return time.process_time()
        return time.monotonic()

    # -- loop --------------------------------------------------------------------------------

    def _on_signal(self, signum: int, _frame: Any) -> None:
        name = signal.Signals(signum).name
        if self._stop_signal is not None:  # second signal: stop now
            raise KeyboardInterrupt(f"second {name}")
        self._stop_signal = name
        log.warning(f"{name} received: checkpointing at the end of this step, then stopping")

    def _agreed_stop(self, t_start: float) -> str | None:
        """Stop reason agreed by all ranks: a signal on any rank, or the time budget."""
        budget = self.cfg.train.time_budget_minutes
        over = budget is not None and (self._clock() - t_start) >= 60.0 * budget
        flags = torch.tensor(
            [self._stop_signal is not None, over], dtype=torch.float64, device=self.device
        )  # on the device: NCCL reduces CUDA tensors only
        if self.ctx.distributed:
            dist.all_reduce(flags)
        if flags[0] > 0:
            return self._stop_signal or "signal"
        if flags[1] > 0:
            return "time_budget"
        return None

    def _log(
        self, stats: StepStats, window: list[StepStats], elapsed_s: float, cpu_s: float
    ) -> None:
        """One metrics record and a progress line; ``elapsed_s`` is on the budget's clock,
        ``cpu_s`` the process CPU seconds since :meth:`train` started."""
        views = self.cfg.data.num_views
        sec = sum(s.step_time for s in window) / max(len(window), 1)
        values = {
            **stats.terms,
            "lr": stats.lr,
            "grad_norm": stats.grad_norm,
            "skipped_steps": self.guard.skipped,
            "step_time": sec,
            "images_per_s": self.layout.global_batch * views / sec if sec > 0 else 0.0,
            "cpu_s": round(cpu_s, 3),
        }
        self.logger.scalars(stats.step, values)
        budget = self.cfg.train.time_budget_minutes
        self.logger.progress(
            stats.step,
            self.cfg.train.steps,
            {"loss": stats.loss}
            | ({"psnr": stats.psnr} if "psnr" in stats.terms else {})
            | {"lr": stats.lr},
            sec,
            remaining_seconds(
                self.cfg.data,
                stats.step,
                self.cfg.train.steps,
                sec,
                None if budget is None else 60.0 * budget - elapsed_s,
                multiple=self.stream.patch_size,
            ),
        )

    def train(self) -> TrainSummary:
        """Train to ``train.steps`` (or until a stop signal / the time budget) and checkpoint."""
        tc = self.cfg.train
        history: list[StepStats] = []
        stopped_by: str | None = None
        last_path: Path | None = self.resumed_from
        previous = {}
        with contextlib.suppress(ValueError):  # not the main thread: no handlers
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, self._on_signal)
        self.stream.start = self.step * self.layout.grad_accum  # a repeated train() continues
        loader = make_loader(
            self.stream, self.cfg.data.num_workers, pin_memory=self.device.type == "cuda"
        )
        batches = iter(loader)
        if self.ctx.is_main:
            log.info(
                f"training {self.cfg.model.name} from step {self.step} to {tc.steps} on "
                f"{self.ctx.world_size} × {self.device} (micro-batch {self.layout.micro_batch} × "
                f"accum {self.layout.grad_accum}), out_dir {self.out_dir}"
            )
        t_start = self._clock()
        cpu_start = time.process_time()  # logged as cpu_s whatever the budget's clock
        window: list[StepStats] = []
        try:
            while self.step < tc.steps:
                stats = self.train_step(batches)
                history.append(stats)
                window.append(stats)
                if tc.log_every and (stats.step % tc.log_every == 0 or stats.step == tc.steps):
                    self._log(
                        stats, window, self._clock() - t_start, time.process_time() - cpu_start
                    )
                    window = []
                if (
                    tc.image_every
                    and stats.step % tc.image_every == 0
                    and self._last_images is not None
                ):
                    self.logger.images(
                        stats.step, "train/target_vs_render", image_grid(*self._last_images)
                    )
                if tc.ckpt_every and stats.step % tc.ckpt_every == 0:
                    last_path = self.save() or last_path
                stopped_by = self._agreed_stop(t_start)
                if stopped_by is not None:
                    if self.ctx.is_main:
                        log.warning(f"stopping at step {self.step} ({stopped_by})")
                    self.logger.event(self.step, "stop", reason=stopped_by)
                    break
            if self._last_saved != self.step:
                last_path = self.save() or last_path
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            del batches
            self.logger.flush()
        if self.ctx.is_main:
            log.info(f"finished at step {self.step}; checkpoint {last_path}")
        return TrainSummary(self.step, stopped_by, history, last_path, self.out_dir, self.ctx.rank)

    def close(self) -> None:
        """Close the logs and leave the process group if this trainer created it."""
        self.logger.close()
        if self.ctx.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def remaining_seconds(
    data: DataConfig,
    step: int,
    total: int,
    sec_per_step: float,
    budget_left_s: float | None,
    multiple: int = 1,
) -> float:
    """Estimated seconds to the end of training after ``step`` (the progress line's ETA).

    During the low-resolution phase of progressive resolution the measured step time is that of
    small images; the full-size steps still to come are scaled by the pixel ratio
    ``(H·W) / (h·w)`` of the full and the low-resolution sizes (the token count; measured on
    tiny-cpu: 4.2-4.6× for 32 → 64 px, so this is slightly optimistic); ``multiple``: the
    model's patch size, to which a non-square low-resolution long side is rounded
    (:meth:`DataConfig.image_hw_at`). A time budget caps the estimate.
    """
    left = max(total - step, 0)
    switch = data.low_res_steps if data.low_res_size else 0
    if step <= switch:  # the steps just measured were low-resolution ones
        full = total - switch
        h, w = data.image_hw
        low_h, low_w = data.image_hw_at(0, multiple)
        scale = (h * w) / (low_h * low_w)
        eta = sec_per_step * (left - full + full * scale)
    else:
        eta = sec_per_step * left
    if budget_left_s is not None:
        eta = min(eta, max(budget_left_s, 0.0))
    return eta


def run_training(
    config: str | Path | None,
    overrides: list[str] | None = None,
    resume: str | None = None,
    out: str | Path | None = None,
) -> TrainSummary:
    """Back-end of ``rayzer train``: resolve config / resume / out_dir, train, clean up.

    Args:
        config: preset name or YAML path; may be omitted when resuming from a checkpoint path
            (its ``config.yaml`` is used), overrides apply on top in both cases.
        resume: None, ``"auto"`` or a checkpoint / run directory.
        out: run directory (default: ``train.out_dir``, or the resumed run's directory).
    """
    if not logging.getLogger("rayzer").handlers:
        handler = StderrHandler("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
        logging.getLogger("rayzer").addHandler(handler)
        logging.getLogger("rayzer").setLevel(logging.INFO)
    ckpt = None
    if resume is not None and resume != "auto":
        ckpt = resolve_checkpoint(resume)
    if config is None:
        if ckpt is None:
            raise ValueError("--config is required unless --resume points at a checkpoint")
        config = ckpt / "config.yaml"
    cfg = load_config(config, overrides)
    if out is None and ckpt is not None and ckpt.parent.name == CHECKPOINT_DIR:
        out = ckpt.parent.parent
    if out is not None:
        cfg.train.out_dir = str(out)
    # One training per run folder (rank 0 holds the lock; RANK is torchrun's, read before the
    # process group exists so a refused run never joins it).
    main_rank = int(os.environ.get("RANK", "0")) == 0
    with run_folder_lock(cfg.train.out_dir, enabled=main_rank):
        trainer = Trainer(cfg, cfg.train.out_dir, resume=str(ckpt) if ckpt is not None else resume)
        try:
            return trainer.train()
        finally:
            trainer.close()
