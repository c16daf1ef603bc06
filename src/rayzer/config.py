"""One typed configuration tree for every command: ``model``, ``data`` and ``train`` sections.

Presets are YAML files (``configs/<name>.yaml`` in the repository, shipped inside the package
as ``rayzer/configs``) merged over the dataclass defaults, then dotted ``key=value`` overrides
from the command line. Unknown keys and ill-typed values are errors that name the key.

The ``model`` section is validated by the config class of the model its ``name`` selects
(:mod:`rayzer.model_config`; a registered model adds its own). A leaf module: it imports no
model code, so the data pipeline can read its settings without loading any network.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rayzer.model_config import RayZerConfig, config_class, migrate_model_section

#: ``data.view_sampler`` values (:mod:`rayzer.data.view_samplers`).
VIEW_SAMPLERS = ("span", "frame_gap", "overlap")


@dataclass
class DataConfig:
    """What one training sample looks like and where it comes from.

    Attributes:
        source: where clips come from: one entry, or several separated by commas to mix them.
            An entry is ``synthetic`` (the built-in scenes) or a path to
            - a scene folder (``images/`` + ``cameras.json`` or ``frames.json``) or a folder of
              scene folders (one or two levels deep);
            - a manifest: a text file listing scene folders (or folders of them), one path per
              line, relative to the manifest's folder; blank lines and ``#`` comments ignored;
            - RealEstate10K pixelSplat chunks: a ``.torch`` file, a folder of them, or a dataset
              root whose ``train/`` folder holds them.
            Scenes too short for ``span_min`` frames are skipped with one warning; unposed scenes
            (``frames.json``) are used by RayZer (their ``c2w`` / ``K`` are NaN and ``posed`` is
            False) and skipped for LVSM, which needs cameras. See :mod:`rayzer.data.clip_sources`.
        source_weights: sampling probability of each ``source`` entry (normalised; one positive
            number per entry), e.g. ``source: "synthetic,/data/re10k"`` with
            ``source_weights: [0.3, 0.7]``. Empty (default) = equal weights. Within an entry,
            scenes are drawn uniformly.
        family: synthetic family, ``"orbit"`` or ``"walk"``.
        image_size: the model input size: one int ``S`` (square, H = W = S) or ``[H, W]``
            (e.g. ``[192, 320]`` for 16:9-ish frames); both sides divisible by
            ``model.patch_size``. Synthetic scenes are rendered at H × W (square pixels, the
            horizontal FoV drawn as before, principal point at the centre); real images are
            resized to cover H × W with their aspect kept and centre-cropped to it (intrinsics
            updated). :attr:`image_hw` is ``(H, W)`` either way.
        num_input_views, num_target_views: views that build the scene / that are rendered.
        frames_per_clip: F, frames of each synthetic clip ("video") the views are drawn from
            (real scenes have their own frame counts).
        span_min, span_start_max, span_end_max, curriculum_steps: frame-span curriculum. A
            sample's V views lie in a window of ``span`` consecutive frames, ``span`` uniform in
            ``[span_min, span_max(step)]``, where ``span_max`` grows linearly from
            ``span_start_max`` at step 0 to ``span_end_max`` at step ``curriculum_steps`` (0 = at
            once); on a real scene of F' frames the span is capped at F'. Defaults (null):
            ``span_min = V``, ``span_start_max = span_min``, ``span_end_max = F``. Needs
            ``V <= span_min <= span_start_max <= span_end_max``, and ``span_end_max <= F`` when
            ``synthetic`` is a source.
        synth: extra :class:`rayzer.data.synthetic.SynthConfig` fields for the built-in scenes
            (e.g. ``{texture_scale: 2.0, orbit_step_deg: [4, 8]}``); family, frames and image size
            come from the fields above.
        num_workers: DataLoader worker processes per rank (0 = render in the training process).
        low_res_size, low_res_steps: progressive resolution. The samples of the first
            ``low_res_steps`` optimizer steps are loaded at ``low_res_size`` × ``low_res_size``
            (synthetic scenes rendered at that size, real images resized as above), the rest at
            ``image_size``. Both 0 (default) = off. Early steps then cost a fraction of a full
            one; the models are resolution-agnostic (rays and patch grids are computed per
            input), so the weights carry over. Needs ``8 <= low_res_size < min(H, W)``,
            ``low_res_size`` divisible by ``model.patch_size`` and ``low_res_steps <
            train.steps``. With a non-square ``image_size`` the low-resolution phase keeps its
            aspect: ``low_res_size`` is the short side and the long side is scaled by the same
            factor, rounded to the nearest multiple of ``model.patch_size``
            (:meth:`image_hw_at`; e.g. ``[24, 40]`` with 16 and patch 8 → ``(16, 24)``).
        view_sampler: how a sample's frames are chosen (:mod:`rayzer.data.view_samplers`):
            ``"span"`` (RayZer: the frame-span curriculum above, random input / target split),
            ``"frame_gap"`` (NAS3R: the context views span a gap that widens from ``gap_start``
            to ``[gap_end_min, gap_end_max]`` frames over ``curriculum_steps``; targets lie
            between the context frames) or ``"overlap"`` (E-RayZer: a target visual overlap
            uniform in ``[lo, 1]``, ``lo`` from ``overlap_lo_start`` to ``overlap_lo_end`` over
            ``curriculum_steps``, turned into a frame window by each clip's overlap statistics;
            clips that cannot reach it are skipped).
        gap_start, gap_end_min, gap_end_max: the ``frame_gap`` schedule, in frames.
        overlap_lo_start, overlap_lo_end: the ``overlap`` schedule.
        flip_augment: mirror each sample left–right with probability 1/2 (images, intrinsics
            and cameras consistently; NAS3R's augmentation).
        epipolar_matches: > 0: add label-free SIFT matches between the views of a sample, at
            most this many per pair, one padded slot per view pair but matched only for views
            at most 2 apart in capture order (``epipolar_*`` keys, :mod:`rayzer.data.matches`;
            for ``model.epipolar_loss_weight``; needs opencv); 0 (default): none.
        epipolar_match_scale: match on a render / load this many times larger than the sample
            (more keypoints at small sizes), coordinates scaled to the sample's size.
        clip_pool: > 0: draw clips only from the first this many clips of each source (a fixed
            pool, e.g. the clips a pose-teacher cache holds); 0 (default): every clip.
        pose_teacher: path of a pose-teacher cache (:mod:`rayzer.data.pose_teacher`: label-free
            classical cameras of whole clips); each sample then carries ``teacher_c2w`` /
            ``teacher_valid`` for ``model.pose_teacher_weight``; it must hold every clip the
            stream draws (set ``data.clip_pool`` to its clips) of a single ``data.source``;
            "" (default): none.
    """

    source: str = "synthetic"
    source_weights: list[float] = field(default_factory=list)
    family: str = "orbit"
    image_size: Any = 64  # int (square) or [H, W]; typed Any so a list is accepted, validated
    num_input_views: int = 4
    num_target_views: int = 4
    frames_per_clip: int = 24
    span_min: int | None = None
    span_start_max: int | None = None
    span_end_max: int | None = None
    curriculum_steps: int = 0
    synth: dict[str, Any] = field(default_factory=dict)
    num_workers: int = 0
    low_res_size: int = 0
    low_res_steps: int = 0
    view_sampler: str = "span"
    gap_start: int = 10
    gap_end_min: int = 25
    gap_end_max: int = 90
    overlap_lo_start: float = 1.0
    overlap_lo_end: float = 0.5
    flip_augment: bool = False
    epipolar_matches: int = 0
    epipolar_match_scale: int = 2
    clip_pool: int = 0
    pose_teacher: str = ""

    @property
    def num_views(self) -> int:
        return self.num_input_views + self.num_target_views

    def source_list(self) -> list[str]:
        """The ``source`` entries (split at commas, stripped)."""
        return [entry.strip() for entry in self.source.split(",")]

    def source_probabilities(self) -> list[float]:
        """Normalised sampling probability of each ``source`` entry."""
        n = len(self.source_list())
        weights = list(self.source_weights) or [1.0] * n
        total = sum(weights)
        return [w / total for w in weights]

    @property
    def image_hw(self) -> tuple[int, int]:
        """``(H, W)`` of the model input (``image_size`` as a pair)."""
        return as_hw(self.image_size)

    @property
    def short_side(self) -> int:
        """``min(H, W)`` of ``image_size``: the default short side at inference / evaluation."""
        return min(self.image_hw)

    def image_hw_at(self, step: int, multiple: int = 1) -> tuple[int, int]:
        """``(H, W)`` of the images of optimizer step ``step`` (progressive resolution).

        During the low-resolution phase the short side is ``low_res_size`` and the long side
        keeps the aspect of ``image_size``, rounded to the nearest multiple of ``multiple`` (the
        model's patch size; at least one patch). Square sizes give ``(low_res_size,) * 2``
        whatever ``multiple`` is.
        """
        h, w = self.image_hw
        low = self.low_res_size
        if step >= self.low_res_steps or not low:
            return h, w
        if h == w:
            return low, low
        short, long = min(h, w), max(h, w)
        low_long = max(multiple, round(long * low / short / multiple) * multiple)
        return (low, low_long) if h <= w else (low_long, low)

    def image_size_at(self, step: int) -> int:
        """Short side of the images of optimizer step ``step`` (the side, for a square
        ``image_size``); :meth:`image_hw_at` gives both sides."""
        return self.low_res_size if step < self.low_res_steps else self.short_side

    def span_range(self) -> tuple[int, int, int]:
        """Resolved ``(span_min, span_start_max, span_end_max)`` (nulls filled in)."""
        lo = self.num_views if self.span_min is None else self.span_min
        start = lo if self.span_start_max is None else self.span_start_max
        end = self.frames_per_clip if self.span_end_max is None else self.span_end_max
        return lo, start, end

    def __post_init__(self) -> None:
        if self.num_input_views < 1 or self.num_target_views < 1:
            raise ValueError(
                f"data.num_input_views and data.num_target_views must be >= 1, got "
                f"{self.num_input_views} and {self.num_target_views}"
            )
        sources = self.source_list()
        if not all(sources):
            raise ValueError(
                f"data.source={self.source!r} has an empty entry (entries are separated by commas)"
            )
        if self.source_weights:
            if len(self.source_weights) != len(sources):
                raise ValueError(
                    f"data.source_weights has {len(self.source_weights)} value(s) but data.source "
                    f"has {len(sources)} entr{'y' if len(sources) == 1 else 'ies'}: {sources}"
                )
            if not all(math.isfinite(w) and w > 0 for w in self.source_weights):
                raise ValueError(
                    f"data.source_weights must be finite and > 0, got {list(self.source_weights)}"
                )
        lo, start, end = self.span_range()
        chain = [
            ("num_views", self.num_views),
            ("span_min", lo),
            ("span_start_max", start),
            ("span_end_max", end),
        ]
        if "synthetic" in sources:  # real scenes cap the span at their own length instead
            chain.append(("frames_per_clip", self.frames_per_clip))
        for (lo_name, a), (hi_name, b) in itertools.pairwise(chain):
            if a > b:
                raise ValueError(
                    f"data: need num_views <= span_min <= span_start_max <= span_end_max (<= "
                    f"frames_per_clip with synthetic clips), but {lo_name}={a} > {hi_name}={b}"
                )
        self.image_size = _check_image_size(self.image_size)
        if self.curriculum_steps < 0 or self.num_workers < 0:
            raise ValueError("data.curriculum_steps and data.num_workers must be >= 0")
        if self.epipolar_matches < 0 or self.epipolar_match_scale < 1:
            raise ValueError(
                "data.epipolar_matches must be >= 0 and data.epipolar_match_scale >= 1, got "
                f"{self.epipolar_matches} and {self.epipolar_match_scale}"
            )
        if self.clip_pool < 0:
            raise ValueError(f"data.clip_pool must be >= 0 (0: every clip), got {self.clip_pool}")
        size, steps = self.low_res_size, self.low_res_steps
        if min(size, steps) < 0 or (size == 0) != (steps == 0):
            raise ValueError(
                "data.low_res_size and data.low_res_steps are both > 0 (progressive resolution) "
                f"or both 0, got {size} and {steps}"
            )
        if size and not 8 <= size < self.short_side:
            bound = "" if isinstance(self.image_size, int) else "short side of "
            raise ValueError(
                f"data.low_res_size must be in [8, {bound}data.image_size={self.image_size}), "
                f"got {size}"
            )
        if self.view_sampler not in VIEW_SAMPLERS:
            raise ValueError(
                f"data.view_sampler must be one of {VIEW_SAMPLERS}, got {self.view_sampler!r}"
            )
        if self.view_sampler == "frame_gap" and self.num_input_views < 2:
            raise ValueError("data.view_sampler=frame_gap needs data.num_input_views >= 2")
        if not (1 <= self.gap_start <= self.gap_end_max and self.gap_end_min <= self.gap_end_max):
            raise ValueError(
                "data: need 1 <= gap_start <= gap_end_max and gap_end_min <= gap_end_max, got "
                f"{self.gap_start}, {self.gap_end_min}, {self.gap_end_max}"
            )
        if not (0.0 <= self.overlap_lo_end <= 1.0 and 0.0 <= self.overlap_lo_start <= 1.0):
            raise ValueError(
                "data.overlap_lo_start and data.overlap_lo_end must lie in [0, 1], got "
                f"{self.overlap_lo_start}, {self.overlap_lo_end}"
            )


def as_hw(size: int | Sequence[int]) -> tuple[int, int]:
    """An image size as ``(H, W)``: an int is a square side, a pair ``[H, W]`` is itself
    (e.g. ``data.image_size``, already checked)."""
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


def _check_image_size(size: Any) -> int | list[int]:
    """``data.image_size`` validated: an int >= 8 stays an int (square, and saved configs stay
    as they were); a pair becomes ``[H, W]``, both ints >= 8. Raises ValueError naming the key."""
    if isinstance(size, str) and size.strip().isdigit():  # a quoted number, as an int field took
        size = int(size)
    if isinstance(size, int) and not isinstance(size, bool):
        if size < 8:
            raise ValueError(f"data.image_size must be >= 8, got {size}")
        return size
    pair = list(size) if isinstance(size, list | tuple) else None
    if (
        pair is None
        or len(pair) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair)
    ):
        raise ValueError(
            f"data.image_size must be an int (a square side) or [height, width] (two ints), "
            f"got {size!r}"
        )
    if min(pair) < 8:
        raise ValueError(f"data.image_size sides must be >= 8, got {pair} (as [height, width])")
    return pair


@dataclass
class TrainConfig:
    """Optimisation, precision, checkpointing and logging settings of ``rayzer train``.

    Attributes:
        steps: optimizer updates of the run.
        warmup_steps: linear warm-up of the learning rate, then cosine decay to
            ``lr * min_lr_ratio`` at ``steps``.
        lr, min_lr_ratio, weight_decay, betas: AdamW (no decay on norms, biases, embeddings and
            learned tokens).
        grad_clip: max global gradient norm (0 = no clipping).
        grad_spike_factor: skip (and log) an update whose gradient norm exceeds this factor times
            the running median of recent norms (0 disables; non-finite norms are always skipped).
        grad_skip_clip_factor, grad_skip_after: also skip an update whose gradient norm exceeds
            ``grad_skip_clip_factor`` × ``grad_clip`` from step ``grad_skip_after`` on (0 = off;
            E-RayZer's release: 2 after 200).
        grad_skip_element: also skip an update with a gradient element above this in absolute
            value (0 = off; NAS3R's release: 20).
        batch_size: GLOBAL samples per update = world size × micro-batch × ``grad_accum``.
        grad_accum: micro-batches accumulated per update.
        seed: the one seed every random choice (init, data, splits) flows from.
        precision: ``"auto"`` (bf16 autocast + TF32 on CUDA, fp32 on CPU), ``"fp32"`` or ``"bf16"``.
        device: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
        num_threads: intra-op CPU threads per process (0 = PyTorch's default). On a shared or
            busy CPU, 1 avoids OpenMP spin-wait contention (measured 7× faster on a loaded
            2-core machine).
        ckpt_every: checkpoint period in steps (0 = only on stop and at the end).
        keep_last: checkpoints kept (older ones are deleted; 0 = keep all).
        log_every: period of scalar logs and the progress line; image_every: of image grids (0 = off).
        perceptual_weight: λ of the perceptual term (0 = MSE only); perceptual_net: its backbone.
        out_dir: run directory (checkpoints/, metrics.jsonl, tb/, config.yaml).
        time_budget_minutes: stop (with a checkpoint) after this time; null = no limit.
        time_budget_clock: what the budget counts: ``"wall"`` (wall-clock time) or
            ``"process"`` (CPU time of this process, all threads: with ``num_threads=1`` a budget
            that other work on the machine does not eat into, so runs compare fairly; the CPU of
            ``data.num_workers`` loader processes is not counted, so compare runs with 0).
        compile: ``torch.compile`` the model (inductor) before training; off by default. On the
            tiny-cpu preset (1 thread, torch 2.13) the model's step was 1.10x faster and a
            whole training step 1.03x, after a first step that compiles: about a minute with a
            warm inductor cache (``TORCHINDUCTOR_CACHE_DIR``), many minutes cold
            (docs/benchmarks/speed/README.md).
        compile_options: inductor options of that compile (``torch.compile(options=...)``),
            e.g. ``{cpp_wrapper: true}``: the paper-decoder step 1.02-1.08x faster than the
            plain compile on the CPU, warm compile time unchanged (run 6 of
            docs/benchmarks/speed). Needs ``compile: true``.
    """

    steps: int = 2000
    warmup_steps: int = 100
    lr: float = 1e-3
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0
    grad_spike_factor: float = 10.0
    grad_skip_clip_factor: float = 0.0
    grad_skip_after: int = 0
    grad_skip_element: float = 0.0
    batch_size: int = 8
    grad_accum: int = 1
    seed: int = 0
    precision: str = "auto"
    device: str = "auto"
    num_threads: int = 0
    ckpt_every: int = 500
    keep_last: int = 3
    log_every: int = 10
    image_every: int = 200
    perceptual_weight: float = 0.0
    perceptual_net: str = "vgg"
    out_dir: str = "runs/default"
    time_budget_minutes: float | None = None
    time_budget_clock: str = "wall"
    compile: bool = False
    compile_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ValueError(
                f"train.precision must be 'auto', 'fp32' or 'bf16', got {self.precision!r}"
            )
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"train.device must be 'auto', 'cpu' or 'cuda', got {self.device!r}")
        for key in ("steps", "batch_size", "grad_accum"):
            if getattr(self, key) < 1:
                raise ValueError(f"train.{key} must be >= 1, got {getattr(self, key)}")
        for key in (
            "warmup_steps",
            "num_threads",
            "ckpt_every",
            "keep_last",
            "log_every",
            "image_every",
            "grad_skip_after",
            "lr",
            "weight_decay",
            "grad_clip",
            "grad_spike_factor",
            "grad_skip_clip_factor",
            "grad_skip_element",
            "perceptual_weight",
        ):
            if getattr(self, key) < 0:
                raise ValueError(f"train.{key} must be >= 0, got {getattr(self, key)}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"train.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"train.betas must be two numbers in [0, 1), got {self.betas}")
        if self.time_budget_clock not in ("wall", "process"):
            raise ValueError(
                f"train.time_budget_clock must be 'wall' or 'process', got {self.time_budget_clock!r}"
            )
        if self.compile_options and not self.compile:
            raise ValueError("train.compile_options needs train.compile=true")
        if self.grad_skip_clip_factor > 0 and self.grad_clip <= 0:
            raise ValueError("train.grad_skip_clip_factor needs train.grad_clip > 0")
        if self.time_budget_minutes is not None and self.time_budget_minutes <= 0:
            raise ValueError(
                f"train.time_budget_minutes must be > 0 or null, got {self.time_budget_minutes}"
            )


@dataclass
class Config:
    """The whole tree. ``model`` is an instance of the config class of ``model.name``
    (:func:`rayzer.model_config.config_class`)."""

    model: Any = field(default_factory=RayZerConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        """Checks that span sections: image sizes vs the patch size, the low-res phase vs the
        number of steps, the epipolar loss vs the matches it needs."""
        p = getattr(self.model, "patch_size", 1)
        for key in ("image_size", "low_res_size"):
            size = getattr(self.data, key)
            if any(side % p for side in as_hw(size)):
                raise ValueError(f"data.{key}={size} is not divisible by model.patch_size={p}")
        if self.data.low_res_steps >= self.train.steps:
            raise ValueError(
                f"data.low_res_steps={self.data.low_res_steps} leaves no full-size step of "
                f"train.steps={self.train.steps}: the model would never train at "
                f"data.image_size={self.data.image_size}"
            )
        teacher = getattr(self.model, "pose_teacher_weight", 0.0)  # E-RayZer, NAS3R
        if teacher > 0 and not self.data.pose_teacher:
            raise ValueError(
                f"model.pose_teacher_weight={teacher} needs a pose-teacher cache: set "
                "data.pose_teacher (rayzer.data.pose_teacher), or model.pose_teacher_weight=0"
            )
        epipolar = getattr(self.model, "epipolar_loss_weight", 0.0)  # E-RayZer, NAS3R
        if epipolar > 0 and self.data.epipolar_matches <= 0:
            # refused here, before any work, not at the first loss of a started training
            raise ValueError(
                f"model.epipolar_loss_weight={epipolar} needs the stream's matches: set "
                f"data.epipolar_matches > 0 (it is {self.data.epipolar_matches}; needs OpenCV: "
                "pip install 'rayzer[undistort]'), or model.epipolar_loss_weight=0"
            )


#: Named methods: ``<model>-<preset>`` → (YAML preset, overrides on top). The bare YAML names
#: (``tiny-cpu``, ``re10k``, …) stay valid: they are the RayZer methods.
_METHODS: dict[str, tuple[str, tuple[str, ...]]] = {}


def register_method(name: str, preset: str, overrides: list[str] | tuple[str, ...] = ()) -> None:
    """Name a method: a YAML preset plus overrides (e.g. ``lvsm-tiny-cpu`` = ``tiny-cpu`` with
    ``model.name=lvsm``), usable wherever a preset name is."""
    _METHODS[name] = (preset, tuple(overrides))


def list_methods() -> dict[str, str]:
    """Method name → a one-line description (the YAML preset and overrides it stands for)."""
    return {
        name: preset + "".join(f" {o}" for o in overrides)
        for name, (preset, overrides) in sorted(_METHODS.items())
    }


def preset_path(name_or_path: str | Path) -> Path:
    """Resolve ``tiny-cpu`` / ``tiny-cpu.yaml`` / a file path to an existing YAML file."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    stem = path.name.removesuffix(".yaml")
    packaged = resources.files("rayzer") / "configs" / f"{stem}.yaml"
    if packaged.is_file():
        return Path(str(packaged))
    names = ", ".join([*list_presets(), *_METHODS])
    raise FileNotFoundError(
        f"config {str(name_or_path)!r} is neither a file, a preset nor a method; known: {names}"
    )


def list_presets() -> list[str]:
    """Names of the YAML presets shipped with the package."""
    folder = resources.files("rayzer") / "configs"
    return sorted(
        p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml")
    )


for _preset in ("tiny-cpu", "re10k", "dl3dv", "objaverse", "bundled"):
    register_method(f"rayzer-{_preset}", _preset, ["model.name=rayzer"])
    register_method(f"lvsm-{_preset}", _preset, ["model.name=lvsm"])


def _failing_override(cls: type, base: dict[str, Any], overrides: list[str]) -> str | None:
    """The first override that OmegaConf rejects on its own (its tuple-length errors, for one,
    do not name their key). A ``ValueError`` of our own validation is not OmegaConf's error and
    is skipped: it names its key itself."""
    for item in overrides:
        key, value = item.split("=", 1)
        one = OmegaConf.to_container(OmegaConf.from_dotlist([f"{key.split('.', 1)[1]}={value}"]))
        try:
            OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(cls), base, one))
        except OmegaConfBaseException:
            return item
        except ValueError:
            continue
    return None


def _typed(
    cls: type, base: dict[str, Any], values: dict[str, Any], section: str, overrides: list[str]
) -> Any:
    """Validate one section: ``values`` (= preset ``base`` + ``overrides``) against ``cls``."""
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(cls), values))
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None)
        where = f"{section}.{key}" if key else None
        mine = [o for o in overrides if o.split("=", 1)[0].startswith(f"{section}.")]
        culprit = None if key else _failing_override(cls, base, mine)
        if culprit is not None:
            where = f"{culprit.split('=', 1)[0]} (override {culprit!r})"
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"invalid config{f' at {where}' if where else ''}: {msg}") from err


def _migrate_train(train: dict[str, Any], model: dict[str, Any]) -> None:
    """Old ``train`` keys, in place: ``sense_weight`` moved to the model (RayZer's
    ``model.sense.weight``); the rotation-first ``translation_warmup`` was removed (off in
    every preset, no measured effect) and is accepted only as ``[0, 0]``."""
    if "sense_weight" in train:
        model.setdefault("sense_weight", train.pop("sense_weight"))
    if "translation_warmup" in train:
        warmup = list(train.pop("translation_warmup") or [0, 0])
        if warmup != [0, 0]:
            raise ValueError(
                f"train.translation_warmup={warmup}: the translation warm-up was removed (it "
                "made no measurable difference; see docs/decisions.md)"
            )


def _one_line(err: Exception) -> str:
    """A one-line reason for a config-file error: PyYAML's multi-line messages start with the
    context ("while parsing a flow sequence"); the problem and its position are what help."""
    problem = getattr(err, "problem", None)
    mark = getattr(err, "problem_mark", None)
    if isinstance(err, yaml.YAMLError) and problem and mark is not None:
        return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def load_config(preset: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Defaults ← preset YAML ← ``key=value`` overrides, validated against :class:`Config`.

    ``preset`` is a YAML file, a preset name or a method name (:func:`list_methods`). The
    ``model`` section is validated by the config class of its ``name`` (after migrating an old
    flat section, :func:`rayzer.model_config.migrate_model_section`).

    Raises:
        ValueError: an unknown key or model, a value of the wrong type, or a malformed override.
    """
    overrides = list(overrides or [])
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not of the form key=value")
    if preset is not None and str(preset) in _METHODS:
        preset, extra = _METHODS[str(preset)]
        overrides = [*extra, *overrides]
    source = preset_path(preset) if preset is not None else "defaults"
    try:
        base = OmegaConf.load(source) if preset is not None else OmegaConf.create()
        preset_raw = OmegaConf.to_container(base)
        over_raw = OmegaConf.to_container(OmegaConf.from_dotlist(overrides))
    # A user's file can fail in the YAML parser (syntax, a forbidden tag), in decoding (not
    # text) or in OmegaConf; the first line of the error says where, the file says which.
    except (OmegaConfBaseException, yaml.YAMLError, UnicodeDecodeError) as err:
        raise ValueError(f"invalid config {source}: {_one_line(err)}") from err
    if not isinstance(preset_raw, dict):
        raise ValueError(f"invalid config {source}: not a mapping of sections")
    unknown = (set(preset_raw) | set(over_raw)) - {"model", "data", "train"}
    if unknown:
        raise ValueError(f"invalid config {source}: unknown section(s) {sorted(unknown)}")
    for raw, where in ((preset_raw, source), (over_raw, "overrides")):
        for key, section in raw.items():
            if section is not None and not isinstance(section, dict):
                raise ValueError(
                    f"invalid config {where}: section {key!r} must be a mapping of keys, "
                    f"got {type(section).__name__}"
                )
    try:
        return _validated(preset_raw, over_raw, overrides)
    except ValueError as err:  # say which file (the key is in the message already)
        if preset is None:
            raise
        shown = source if Path(preset).is_file() else f"preset {preset}"
        raise ValueError(f"{shown}{' with overrides' if overrides else ''}: {err}") from err


def _validated(
    preset_raw: dict[str, Any], over_raw: dict[str, Any], overrides: list[str]
) -> Config:
    """The typed :class:`Config` of a parsed preset and overrides (see :func:`load_config`)."""
    # The preset and the overrides are migrated each on its own (an old flat override such as
    # model.cam_layers=2 must win over the preset's nested camera.layers), both for the model
    # the overrides select.
    name = (over_raw.get("model") or {}).get("name") or (preset_raw.get("model") or {}).get("name")
    parts = []
    for raw in (preset_raw, over_raw):
        part = {k: dict(raw.get(k) or {}) for k in ("model", "data", "train")}  # type: ignore[union-attr]
        _migrate_train(part["train"], part["model"])
        part["model"] = migrate_model_section({**part["model"], "name": name or "rayzer"})
        parts.append(part)
    bases = parts[0]
    sections = {
        k: OmegaConf.to_container(OmegaConf.merge(parts[0][k], parts[1][k])) for k in parts[0]
    }
    model_cls = config_class(sections["model"]["name"])
    typed = {
        key: _typed(cls, bases[key], sections[key], key, overrides)
        for key, cls in (("model", model_cls), ("data", DataConfig), ("train", TrainConfig))
    }
    return Config(**typed)


def config_to_yaml(cfg: Config) -> str:
    """Serialise a config (e.g. next to a checkpoint) so that the run can be reproduced."""
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))
