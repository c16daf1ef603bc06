"""Quality benchmark (``rayzer bench quality``): any list of registered models side by side with
copy-nearest and the mean of the inputs on one fixed set of held-out scenes.

1. Trains the ``--models`` (default ``rayzer lvsm``: RayZer and the LVSM oracle; e.g.
   ``--models rayzer lvsm erayzer=erayzer-tiny-cpu nas3r=nas3r-tiny-cpu``), one after the other,
   everything else equal: overrides, seed, synthetic stream, and the same budget each
   (``train.time_budget_minutes``; every checkpoint is kept so learning curves can be
   evaluated) on one clock, ``--clock`` (``train.time_budget_clock`` of every run; without it
   the config's, ``wall`` by default): ``wall`` or ``process`` (process CPU time, which a busy
   machine does not shorten: runs trained side by side or at different loads get the same
   compute; data loader workers, ``data.num_workers`` > 0, are other processes and not
   counted). A bare model name trains ``--config`` with ``model.name=NAME``; ``LABEL=PRESET``
   trains a preset or YAML file. The runs must share their data settings (:data:`DATA_KEYS`).
   ``--runs LABEL=RUN …`` evaluates existing runs instead (a run directory, a checkpoint, or
   ``bundled``: the RayZer checkpoint shipped in the package); ``--skip-train RAYZER_RUN
   LVSM_RUN`` is ``--runs rayzer=RAYZER_RUN lvsm=LVSM_RUN``. ``--lvsm-run LVSM_RUN`` trains the
   other models only and compares them with an existing LVSM oracle run (same data, same time
   budget and clock), so a change costs one budget, not two. ``--lvsm-set KEY=VALUE`` changes
   a setting of the LVSM run only (same data), e.g. a longer schedule: an LVSM step is cheaper, so with
   equal ``train.steps`` it would finish early and leave part of its budget unused.
2. Builds a FIXED test set (:mod:`rayzer.eval.synthetic_test_set`): the first N seeds of
   ``TEST_SEEDS`` of the family, the training run's clip config, V = the config's views over a
   window of ``span`` frames (default: the widest training span), ``even`` and ``random`` target
   protocols. It must be a test of pose learning: the median ground-truth relative rotation
   between the views of a sample must be at least ``--min-gt-rotation`` (default 15° for
   ``orbit``; the ``walk`` family barely rotates, so there it is reported, not enforced).
   This is checked before any training starts.
3. Evaluates the final checkpoints with the paper protocol (:mod:`rayzer.eval.novel_view`),
   every method on the same samples: PSNR / SSIM / LPIPS; for models that predict cameras the
   pose report (rotation / translation-direction medians, RPA@5/15/30, AUC@5/10/20/30, focal
   error) beside the identity-pose baseline and collapse diagnostics beside the ground truth;
   for models with depth, AbsRel and δ<1.25 of their input views' z-depth against the exact
   synthetic depth after per-image median scaling; training facts (steps, step time); and
   learning curves (training loss / PSNR from ``metrics.jsonl``; test PSNR, rotation error and
   AbsRel of the saved checkpoints on the first ``--curve-scenes`` scenes of ``even``). A number
   a method cannot output is null in the JSON and "—" in the tables, never 0.
4. Checks the quality targets of every camera-predicting model (≥ max(copy, mean) + 2 dB;
   ≥ the oracle − 1 dB where an oracle runs; median rotation error ≤ 10°) and writes
   ``quality.json``, ``quality.md`` (one row per method) and ``quality.png`` atomically into
   ``--out``.

Budgets, the training table and the learning curves say which clock their minutes are on. A run's
budget clock is its config's ``train.time_budget_clock`` (for ``--runs``: the clock the run was
trained with); its curves' minutes are on that clock: wall-clock minutes since the run's first
step from the ``metrics.jsonl`` timestamps, or process-CPU minutes from its ``cpu_s`` records
(:func:`rayzer.bench.run_history.minutes_at`). The training table gives both.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from rayzer.bench.quality_report import GRID_SCENES, to_markdown, write_figure
from rayzer.bench.run_history import (
    minutes_at,
    pick_checkpoints,
    read_metrics,
    run_dir_of,
    run_summary,
    train_curve,
)
from rayzer.checkpoints import (
    CONFIG_FILE,
    list_checkpoints,
    load_trained_model,
    resolve_checkpoint,
)
from rayzer.config import Config, DataConfig, config_to_yaml, load_config
from rayzer.data.clip_sources import synth_config
from rayzer.data.protocols import PROTOCOLS
from rayzer.eval.camera_metrics import POSE_DEFINITIONS
from rayzer.eval.depth_metrics import DEPTH_DEFINITIONS
from rayzer.eval.novel_view import (
    CopyNearestMethod,
    EvalResult,
    EvalSample,
    MeanOfInputsMethod,
    ModelMethod,
    evaluate,
    load_lpips,
)
from rayzer.eval.poses import pose_report
from rayzer.eval.synthetic_test_set import gt_rotation_stats, synthetic_test_sets
from rayzer.eval.turns import turn_report
from rayzer.models import RayModel, available_models
from rayzer.utils.jsonsafe import json_safe
from rayzer.utils.report import machine_info, write_text_atomic

DEFAULT_CONFIG = "tiny-cpu"
#: The runs trained when --models is not given (the original two-model benchmark).
DEFAULT_MODELS = ("rayzer", "lvsm")
#: Minimum median GT relative rotation of the test set per family; walk is a
#: translation-dominated family (≈ 5° at the widest span), so there it is only reported.
MIN_GT_ROTATION_DEG = {"orbit": 15.0, "walk": 0.0}
#: The quality targets of a camera-predicting model (:func:`check_targets`).
TARGET_MARGIN_DB = 2.0
TARGET_LVSM_GAP_DB = 1.0
TARGET_ROT_DEG = 10.0


def log(msg: str) -> None:
    print(f"[bench quality] {msg}", file=sys.stderr, flush=True)


# -- configuration --------------------------------------------------------------------------------


def training_overrides(args: argparse.Namespace) -> list[str]:
    """The overrides of every training run (user overrides + benchmark settings)."""
    over = list(args.overrides)
    if args.family is not None:
        over.append(f"data.family={args.family}")
    if args.seed is not None:
        over.append(f"train.seed={args.seed}")
    if args.ckpt_every is not None:
        over.append(f"train.ckpt_every={args.ckpt_every}")
    # Keep every checkpoint: they are the points of the test learning curves.
    over.append(f"train.time_budget_minutes={args.minutes}")
    if getattr(args, "clock", None) is not None:  # else the config's (default wall)
        over.append(f"train.time_budget_clock={args.clock}")
    over.append("train.keep_last=0")
    return over


#: Data settings that define what a model learns from and is tested on.
DATA_KEYS = (
    "family",
    "image_size",
    "num_input_views",
    "num_target_views",
    "frames_per_clip",
    "synth",
)


def check_same_data(
    a: DataConfig, b: DataConfig, names: tuple[str, str] = ("RayZer", "LVSM")
) -> None:
    """Two runs must have been trained (and be tested) on the same data."""
    diff = [k for k in DATA_KEYS if getattr(a, k) != getattr(b, k)]
    if diff:
        detail = ", ".join(f"{k}: {getattr(a, k)!r} vs {getattr(b, k)!r}" for k in diff)
        raise ValueError(f"the {names[0]} and {names[1]} runs use different data ({detail})")


def check_all_same_data(cfgs: dict[str, Config]) -> None:
    """Every run shares the first run's data settings (:data:`DATA_KEYS`), so one held-out test
    set is a fair test of all of them."""
    (first, cfg0), *rest = cfgs.items()
    for name, cfg in rest:
        check_same_data(cfg0.data, cfg.data, (first, name))


_LABEL = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
#: The names of the baselines' rows (no run may take them).
BASELINE_NAMES = ("copy_nearest", "mean_of_inputs")


def parse_labelled(items: list[str], option: str, need_value: bool) -> dict[str, str | None]:
    """``LABEL=VALUE`` (or ``LABEL`` where ``need_value`` is False) items → ``{label: value}``,
    labels unique, starting with a letter, not a baseline's name."""
    out: dict[str, str | None] = {}
    for item in items:
        label, sep, value = item.partition("=")
        label = label.strip()
        if need_value and (not sep or not value.strip()):
            raise ValueError(f"{option} expects LABEL=PATH, got {item!r}")
        if not _LABEL.match(label):
            raise ValueError(
                f"{option}: bad label {label!r} in {item!r} (letters, digits, _ and -, a letter "
                "first; key=value overrides go before {option})"
            )
        if label in BASELINE_NAMES:
            raise ValueError(f"{option}: {label!r} is the name of a baseline row")
        if label in out:
            raise ValueError(f"{option}: label {label!r} given twice")
        out[label] = value.strip() if sep else None
    if not out:
        raise ValueError(f"{option}: give at least one run")
    return out


def resolve_run_path(path: str) -> Path:
    """A checkpoint from a run directory, a checkpoint, its weights file, or ``bundled`` (the
    RayZer checkpoint shipped in the package)."""
    if path == "bundled":
        from rayzer.bundled import bundled_checkpoint

        return bundled_checkpoint()
    return resolve_checkpoint(path)


def load_run_configs(
    runs: dict[str, str], option: str
) -> tuple[dict[str, Path], dict[str, Config]]:
    """Checkpoints and configs of existing runs ``{label: path}``. A label that is a registered
    model name must hold that model (``rayzer=…`` cannot be an LVSM run)."""
    ckpts: dict[str, Path] = {}
    cfgs: dict[str, Config] = {}
    for label, path in runs.items():
        ckpt = resolve_run_path(path)
        if not (ckpt / CONFIG_FILE).is_file():
            raise FileNotFoundError(f"{option}: checkpoint {ckpt} has no {CONFIG_FILE}")
        cfg = load_config(ckpt / CONFIG_FILE)
        if label in available_models() and cfg.model.name != label:
            raise ValueError(
                f"{option}: {path} holds a {cfg.model.name!r} model, expected {label!r}"
                + (" (order: RAYZER_RUN LVSM_RUN)" if option == "--skip-train" else "")
            )
        ckpts[label], cfgs[label] = ckpt, cfg
    return ckpts, cfgs


def training_plan(
    models: dict[str, str | None], config: str, overrides: list[str]
) -> dict[str, tuple[str, list[str]]]:
    """``{label: (config, overrides)}`` of the runs to train: ``NAME`` trains registered model
    NAME with ``config`` (``model.name=NAME``), ``LABEL=PRESET`` trains a preset or YAML file as
    it is. The benchmark's overrides apply to all."""
    plan: dict[str, tuple[str, list[str]]] = {}
    for label, preset in models.items():
        if preset is None:
            if label not in available_models():
                raise ValueError(
                    f"--models: {label!r} is not a registered model ({', '.join(available_models())}); "
                    "give LABEL=PRESET for a preset"
                )
            plan[label] = (config, [*overrides, f"model.name={label}"])
        else:
            plan[label] = (preset, list(overrides))
    return plan


def build_test_sets(
    data: DataConfig, args: argparse.Namespace
) -> tuple[dict[str, list[EvalSample]], dict[str, Any]]:
    """The fixed test sets of both protocols and their description; fails when the set is not a
    test of pose learning (median GT relative rotation below the minimum)."""
    synth = synth_config(data)
    span = args.span if args.span is not None else data.span_range()[2]
    sets = synthetic_test_sets(
        synth,
        args.test_scenes,
        data.num_input_views,
        data.num_target_views,
        span=span,
        protocols=PROTOCOLS,
        seed=args.protocol_seed,
    )
    minimum = (
        args.min_gt_rotation
        if args.min_gt_rotation is not None
        else MIN_GT_ROTATION_DEG.get(data.family, 0.0)
    )
    info: dict[str, Any] = {
        "family": data.family,
        "num_scenes": args.test_scenes,
        "scenes": [s.name for s in sets["even"]],
        "num_input_views": data.num_input_views,
        "num_target_views": data.num_target_views,
        "image_size": data.image_size,
        "frames_per_clip": data.frames_per_clip,
        "span": span,
        "synth": dict(data.synth),
        "protocol_seed": args.protocol_seed,
        "min_gt_rotation_deg": minimum,
        "protocols": {},
    }
    for protocol, samples in sets.items():
        stats = gt_rotation_stats(samples)
        info["protocols"][protocol] = {
            "gt_rel_rot_deg_median": stats["median_deg"],
            "gt_rel_rot_deg_min_sample_median": stats["min_sample_median_deg"],
            "frames": [s.frame_index.tolist() for s in samples],
            "input_index": [s.input_index.tolist() for s in samples],
            "target_index": [s.target_index.tolist() for s in samples],
        }
        log(
            f"test set {protocol}: {len(samples)} {data.family} scenes, median GT relative "
            f"rotation {stats['median_deg']:.1f}° (minimum {minimum:g}°)"
        )
        if stats["median_deg"] < minimum:
            raise ValueError(
                f"the {protocol} test set is not a test of pose learning: median ground-truth "
                f"relative rotation {stats['median_deg']:.1f}° < {minimum:g}° (family "
                f"{data.family}, span {span} of {data.frames_per_clip} frames); widen --span / "
                "data.frames_per_clip or the orbit step, do not shrink the test"
            )
    return sets, info


def checkpoint_curve(
    run_dir: Path,
    samples: list[EvalSample],
    points: int,
    device: torch.device,
    batch_size: int,
    clock: str = "wall",
) -> list[dict[str, Any]]:
    """Test PSNR / SSIM (and RayZer's median rotation error) of the saved checkpoints, at their
    minutes on ``clock``."""
    scalars, _ = read_metrics(run_dir)
    chosen = pick_checkpoints(list_checkpoints(run_dir), points)
    rows = []
    for ckpt in chosen:
        trained = load_trained_model(ckpt, device)
        res = evaluate(trained.model, samples, batch_size=batch_size, device=device)
        pose, depth = res.summary.get("pose"), res.summary.get("depth")
        rows.append(
            {
                "step": trained.step,
                "minutes": minutes_at(scalars, [trained.step], clock)[0],
                "psnr": res.summary["psnr"],
                "ssim": res.summary["ssim"],
                "rot_err_deg_median": pose["rot_err_deg_median"] if pose else None,
                "depth_abs_rel": depth["abs_rel"] if depth else None,
                "checkpoint": str(ckpt),
            }
        )
    return rows


# -- evaluation -----------------------------------------------------------------------------------


def identity_pose_baseline(samples: list[EvalSample]) -> dict[str, Any]:
    """Pose report of predicting the identity pose for every view (no motion at all).

    Its translation-direction errors are undefined (zero translation), so they are left out;
    ``by_turn`` (rotation only) where the samples' cameras turn one way
    (:mod:`rayzer.eval.turns`)."""
    gt = torch.stack([s.c2w for s in samples]).double()
    ident = torch.eye(4, dtype=gt.dtype).expand_as(gt).clone()
    rep = pose_report(ident, gt)
    out: dict[str, Any] = {
        "rot_err_deg_median": rep["rot_err_deg_median"],
        "rot_acc": rep["rot_acc"],
        # AUC uses max(rot, trans); with the undefined trans error set to 0 it is rotation-only.
        "auc_rotation_only": rep["auc"],
    }
    split = turn_report(ident, gt, rotation_only=True)
    if split is not None:
        out["by_turn"] = split
    return out


def evaluate_protocol(
    models: dict[str, RayModel],
    samples: list[EvalSample],
    lpips: torch.nn.Module | None,
    lpips_note: str | None,
    device: torch.device,
    batch_size: int,
) -> tuple[dict[str, Any], dict[str, EvalResult]]:
    """Every model (by its label, in the given order) and both baselines on one protocol's
    samples → (JSON-ready results, raw results).

    The results hold, per metric, ``{method: value}`` over all methods: ``psnr``, ``ssim``,
    ``lpips``, ``pose`` (:func:`rayzer.eval.poses.pose_report`, None for a method that
    predicts no cameras), ``depth`` (:mod:`rayzer.eval.depth_metrics`, None for a method
    without depth), ``collapse``; and ``identity_pose``, the pose report of predicting no
    motion."""
    methods: list[Any] = [*(ModelMethod(m, label) for label, m in models.items())]
    methods += [CopyNearestMethod(), MeanOfInputsMethod()]
    raw: dict[str, EvalResult] = {}
    for m in methods:
        res = evaluate(
            m,
            samples,
            batch_size=batch_size,
            device=device,
            lpips=lpips,
            lpips_note=lpips_note,
            keep_renders=GRID_SCENES,
            progress=None,
        )
        raw[res.method] = res
    out: dict[str, Any] = {
        metric: {name: r.summary.get(metric) for name, r in raw.items()}
        for metric in ("psnr", "ssim", "lpips", "pose", "depth", "collapse")
    }
    out["lpips_note"] = next(iter(raw.values())).summary["lpips_note"]
    out["depth_note"] = {
        n: r.summary.get("depth_note") for n, r in raw.items() if r.summary.get("depth_note")
    }
    out["identity_pose"] = identity_pose_baseline(samples)
    return out, raw


def check_targets(res: dict[str, Any], kinds: dict[str, str]) -> list[dict[str, Any]]:
    """The issue-3 targets on one protocol's results, for every learned method that predicts
    cameras (``kinds[label] == "self"``; ``"oracle"`` marks a model given the true cameras):
    PSNR ≥ the best baseline + 2 dB, PSNR ≥ the best oracle − 1 dB (when there is one), median
    rotation error ≤ 10°. Each check has its numbers and pass / fail."""
    best = max(res["psnr"]["copy_nearest"], res["psnr"]["mean_of_inputs"])
    oracles = {n: res["psnr"][n] for n, k in kinds.items() if k == "oracle"}
    ident = res["identity_pose"]["rot_err_deg_median"]
    checks: list[dict[str, Any]] = []
    for name, kind in kinds.items():
        if kind != "self":
            continue
        r = res["psnr"][name]
        pose = (res.get("pose") or {}).get(name)
        rot = pose["rot_err_deg_median"] if pose else math.nan
        checks.append(
            {
                "name": "psnr_vs_baselines",
                "method": name,
                "rule": f"{name} PSNR >= max(copy-nearest, mean of inputs) + {TARGET_MARGIN_DB:g} dB",
                "value": r,
                "threshold": best + TARGET_MARGIN_DB,
                "pass": bool(r >= best + TARGET_MARGIN_DB),
                "detail": f"{name} {r:.2f} dB vs best baseline {best:.2f} dB (margin {r - best:+.2f} dB)",
            }
        )
        if oracles:
            oracle, lv = max(oracles.items(), key=lambda kv: kv[1])
            checks.append(
                {
                    "name": "psnr_vs_oracle",
                    "method": name,
                    "rule": f"{name} PSNR >= {oracle} (oracle) − {TARGET_LVSM_GAP_DB:g} dB",
                    "value": r - lv,
                    "threshold": -TARGET_LVSM_GAP_DB,
                    "pass": bool(r >= lv - TARGET_LVSM_GAP_DB),
                    "detail": f"{name} {r:.2f} dB vs {oracle} {lv:.2f} dB (difference {r - lv:+.2f} dB)",
                }
            )
        checks.append(
            {
                "name": "rotation_error",
                "method": name,
                "rule": f"{name} median relative rotation error <= {TARGET_ROT_DEG:g}°",
                "value": rot,
                "threshold": TARGET_ROT_DEG,
                "pass": bool(rot <= TARGET_ROT_DEG),
                "detail": f"{rot:.2f}° vs identity-pose baseline {ident:.2f}°"
                + (
                    " (the identity baseline passes too: not informative)"
                    if ident <= TARGET_ROT_DEG
                    else ""
                ),
            }
        )
    return checks


def model_kind(model: RayModel) -> str:
    """``"self"`` (predicts its cameras), ``"oracle"`` (given the true cameras) or ``"other"``."""
    caps = model.capabilities
    if caps.needs_gt_cameras:
        return "oracle"
    return "self" if caps.predicts_cameras else "other"


# -- main -------------------------------------------------------------------------------------------


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda but CUDA is not available")
    return torch.device(name)


def _train(config: str, overrides: list[str], out: Path, name: str, minutes: float) -> None:
    from rayzer.train import run_training

    log(f"training {name} for {minutes:g} min → {out}")
    summary = run_training(config, overrides, out=out)
    if summary.stopped_by not in (None, "time_budget"):
        raise KeyboardInterrupt(
            f"training of {name} stopped by {summary.stopped_by} at step {summary.step}; "
            f"evaluate what exists with --skip-train"
        )


def _full_resolution_start(cfg: Config, run_dir: Path) -> dict[str, Any] | None:
    """Step and minute (on the run's budget clock) at which a progressive-resolution run switched to full size (None if it
    trained at one size or stopped before the switch); its training-batch PSNR curve jumps
    there."""
    step = cfg.data.low_res_steps
    scalars, _ = read_metrics(run_dir)
    if step <= 0 or not scalars or scalars[-1]["step"] <= step:  # no switch, or not reached
        return None
    return {
        "step": step,
        "minutes": minutes_at(scalars, [step], cfg.train.time_budget_clock)[0],
        "sizes": [cfg.data.low_res_size, cfg.data.image_size],
    }


#: Config keys that do not change what a run learns (ignored when comparing a reused run).
_BOOKKEEPING = {"out_dir", "ckpt_every", "keep_last", "log_every", "image_every"}


def _reusable_lvsm_config(ckpt: Path, cfg_r: Config) -> Config:
    """The config of an existing LVSM run that may stand in for training one beside ``cfg_r``.

    It must hold the final checkpoint of an LVSM run that finished (its steps or its time
    budget) on the same data with the same time budget: the benchmark compares the two models
    at equal cost (same budget on the same clock). Other differences (seed, schedule, threads) are allowed and
    reported (:func:`_config_differences`).
    """
    if not (ckpt / CONFIG_FILE).is_file():
        raise FileNotFoundError(f"--lvsm-run: checkpoint {ckpt} has no {CONFIG_FILE}")
    cfg_l = load_config(ckpt / CONFIG_FILE)
    if cfg_l.model.name != "lvsm":
        raise ValueError(f"--lvsm-run: {ckpt} holds a {cfg_l.model.name!r} model, expected 'lvsm'")
    check_same_data(cfg_r.data, cfg_l.data)
    budgets = (cfg_r.train.time_budget_minutes, cfg_l.train.time_budget_minutes)
    if budgets[0] != budgets[1]:
        raise ValueError(
            f"--lvsm-run: {ckpt} was trained with a {budgets[1]} min budget, this RayZer run "
            f"gets {budgets[0]} min; the benchmark compares equal budgets"
        )
    clocks = (cfg_r.train.time_budget_clock, cfg_l.train.time_budget_clock)
    if clocks[0] != clocks[1]:
        raise ValueError(
            f"--lvsm-run: {ckpt} was trained with a {clocks[1]}-clock budget, this run gets a "
            f"{clocks[0]}-clock one (--clock); the benchmark compares equal budgets"
        )
    run_dir = run_dir_of(ckpt)
    latest = list_checkpoints(run_dir)[-1]
    if ckpt.resolve() != latest.resolve():
        raise ValueError(
            f"--lvsm-run: {ckpt} is not the last checkpoint of its run ({latest.name}); the "
            "benchmark compares the final models"
        )
    stopped_by = run_summary(run_dir, ckpt, 0)["stopped_by"]
    if stopped_by not in (None, "time_budget"):
        raise ValueError(f"--lvsm-run: {run_dir} was stopped by {stopped_by}, not finished")
    return cfg_l


#: Settings ``--lvsm-set`` may not change: the model is LVSM, the budget is ``--minutes``.
#: ``train.keep_last`` stays 0: every checkpoint is a point of the learning curves.
_LVSM_SET_FORBIDDEN = {
    "model.name",
    "train.time_budget_minutes",
    "train.time_budget_clock",
    "train.keep_last",
}


def lvsm_only_overrides(items: list[str]) -> list[str]:
    """Validated ``--lvsm-set`` overrides: ``key=value`` settings of the LVSM run only (e.g. a
    longer schedule that fills the same budget, since an LVSM step is cheaper than a
    RayZer step). The data must stay the same (checked on the loaded configs)."""
    for item in items:
        key = item.split("=", 1)[0].strip()
        if "=" not in item or not key:
            raise ValueError(f"--lvsm-set expects KEY=VALUE, got {item!r}")
        if key in _LVSM_SET_FORBIDDEN:
            raise ValueError(
                f"--lvsm-set {key} is not allowed: the benchmark sets it for both models"
                + {"train.time_budget_minutes": " (use --minutes)"}.get(key, "")
                + {"train.time_budget_clock": " (use --clock)"}.get(key, "")
            )
    return list(items)


def _config_differences(reused: Config, expected: Config) -> list[str]:
    """``section.key: reused vs expected`` for every setting in which a reused run differs
    from the one the benchmark would have trained (bookkeeping keys ignored)."""
    a, b = (yaml.safe_load(config_to_yaml(c)) for c in (reused, expected))
    return [
        f"{section}.{key}: {a[section].get(key)!r} vs {value!r}"
        for section, values in b.items()
        for key, value in values.items()
        if key not in _BOOKKEEPING and a[section].get(key) != value
    ]


def _check_args(args: argparse.Namespace) -> None:
    for key in ("test_scenes", "eval_batch"):
        if getattr(args, key) < 1:
            raise ValueError(f"--{key.replace('_', '-')} must be >= 1, got {getattr(args, key)}")
    if args.curve_points < 0 or args.curve_scenes < 1:
        raise ValueError("--curve-points must be >= 0 and --curve-scenes >= 1")
    if args.skip_train and args.runs:
        raise ValueError("give the existing runs either with --skip-train or with --runs")
    if (args.skip_train or args.runs) and args.models:
        raise ValueError("--models trains runs; --runs / --skip-train evaluate existing ones")
    if (args.skip_train or args.runs) and args.lvsm_run is not None:
        raise ValueError(
            "--lvsm-run trains RayZer only; with --skip-train / --runs give all runs there"
        )
    if args.lvsm_set and (args.skip_train or args.runs or args.lvsm_run is not None):
        raise ValueError(
            "--lvsm-set applies to the LVSM run this benchmark trains; it cannot be combined "
            "with --skip-train, --runs or --lvsm-run"
        )


def existing_runs(
    args: argparse.Namespace,
) -> tuple[dict[str, Path], dict[str, Config]]:
    """Checkpoints and configs of ``--runs`` / ``--skip-train``, checked: no training
    settings, one family, the same data."""
    if (
        args.overrides
        or args.config is not None
        or args.seed is not None
        or getattr(args, "clock", None) is not None
    ):
        raise ValueError(
            "--runs / --skip-train evaluate the runs with their own configs: --config, --seed, "
            "--clock and key=value overrides are not allowed with them (each run reports the "
            "clock it was trained with)"
        )
    if args.skip_train:
        option, items = (
            "--skip-train",
            [f"rayzer={args.skip_train[0]}", f"lvsm={args.skip_train[1]}"],
        )
    else:
        option, items = "--runs", list(args.runs)
    runs = parse_labelled(items, option, need_value=True)
    ckpts, cfgs = load_run_configs(runs, option)  # type: ignore[arg-type]
    family = next(iter(cfgs.values())).data.family
    if args.family is not None and args.family != family:
        raise ValueError(f"--family {args.family} but the runs were trained on {family}")
    check_all_same_data(cfgs)
    return ckpts, cfgs


def train_runs(
    args: argparse.Namespace,
    out: Path,
    plan: dict[str, tuple[str, list[str]]],
    reused: Path | None,
    minutes: float,
) -> dict[str, Path]:
    """Train every planned run into ``out/<label>`` (the reused LVSM run is not trained);
    their final checkpoints."""
    runs: dict[str, Path] = {}
    for label, (config, overrides) in plan.items():
        if label == "lvsm" and reused is not None:
            log(f"LVSM oracle: reusing {reused}")
            runs[label] = reused
            continue
        runs[label] = out / label
        _train(config, overrides, runs[label], label, minutes)
    return {label: resolve_checkpoint(r) for label, r in runs.items()}


@dataclass
class QualityPlan:
    """What one benchmark run compares, settled before any evaluation.

    Attributes:
        ckpts: final checkpoint of each run, by label (in report order).
        cfgs: training config of each run, by label.
        config_name / overrides: what the runs were trained with (``"(existing runs)"``, ``[]``
            for ``--runs`` / ``--skip-train``).
        minutes: the common budget per run, None when existing runs differ; ``budgets``: per run.
        clocks: the clock of each run's budget (``train.time_budget_clock``: ``wall`` or
            ``process``).
        out: output folder; ``sets`` / ``test_info``: the fixed test sets and their description.
        lvsm_set: ``--lvsm-set`` overrides; ``lvsm_differences``: config differences of a reused
            ``--lvsm-run`` from the LVSM run this benchmark would have trained.
    """

    ckpts: dict[str, Path]
    cfgs: dict[str, Config]
    config_name: str
    overrides: list[str]
    minutes: float | None
    budgets: dict[str, float]
    out: Path
    sets: dict[str, list[EvalSample]]
    test_info: dict[str, Any]
    lvsm_set: list[str]
    lvsm_differences: list[str] = field(default_factory=list)
    clocks: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.clocks:
            self.clocks = {label: c.train.time_budget_clock for label, c in self.cfgs.items()}

    @property
    def clock(self) -> str | None:
        """The clock of every run's budget, None when they differ."""
        clocks = set(self.clocks.values())
        return clocks.pop() if len(clocks) == 1 else None


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Train (unless ``--runs`` / ``--skip-train``), evaluate, and write the report (module
    docstring)."""
    t_start = time.perf_counter()
    device = _device(args.device)
    _check_args(args)
    lvsm_set = lvsm_only_overrides(args.lvsm_set or [])
    if args.skip_train or args.runs:
        plan = plan_existing_runs(args, lvsm_set)
    else:
        plan = plan_and_train_runs(args, lvsm_set)

    log("evaluating the final checkpoints")
    models, kinds, training = load_runs(plan, device)
    lpips, lpips_note = load_lpips("vgg", enabled=not args.no_lpips)
    if args.no_lpips:
        lpips_note = "LPIPS disabled (--no-lpips)"
    if lpips is not None:
        lpips = lpips.to(device)
    results, raw = {}, {}
    for protocol, samples in plan.sets.items():
        results[protocol], raw[protocol] = evaluate_protocol(
            models, samples, lpips, lpips_note, device, args.eval_batch
        )
    log("learning curves: evaluating the saved checkpoints")
    curves = learning_curves(plan, args.curve_scenes, args.curve_points, device, args.eval_batch)

    result: dict[str, Any] = {
        "benchmark": "quality",
        "family": plan.test_info["family"],
        "config": plan.config_name,
        "overrides": plan.overrides,
        "minutes": plan.minutes,
        "budgets_minutes": plan.budgets,
        # what the minutes count: "wall" or "process" (CPU) minutes, per run and common
        "clock": plan.clock,
        "budget_clocks": plan.clocks,
        "methods": [*plan.ckpts, *BASELINE_NAMES],
        "runs": {
            label: {"checkpoint": str(ckpt), "model": models[label].name, "kind": kinds[label]}
            for label, ckpt in plan.ckpts.items()
        },
        "lvsm_run": str(plan.ckpts["lvsm"]) if args.lvsm_run is not None else None,
        "lvsm_run_differences": plan.lvsm_differences,
        "lvsm_overrides": plan.lvsm_set,
        "device": str(device),
        "test_set": plan.test_info,
        "training": training,
        "results": results,
        "targets": {p: check_targets(r, kinds) for p, r in results.items()},
        "definitions": {"poses": POSE_DEFINITIONS, "depth": DEPTH_DEFINITIONS},
        "learning_curves": curves,
        "per_sample": {
            p: {name: res.per_sample for name, res in r.items()} for p, r in raw.items()
        },
        "machine": machine_info(),
        "files": {k: str(plan.out / f"quality.{k}") for k in ("json", "md", "png")},
    }
    result["wall_time_s"] = time.perf_counter() - t_start
    return write_report(json_safe(result), plan, raw)


def plan_existing_runs(args: argparse.Namespace, lvsm_set: list[str]) -> QualityPlan:
    """The plan of ``--runs`` / ``--skip-train``: their checkpoints, configs and test sets."""
    ckpts, cfgs = existing_runs(args)
    first = next(iter(cfgs.values()))
    budgets = {label: c.train.time_budget_minutes for label, c in cfgs.items()}
    sets, test_info = build_test_sets(first.data, args)
    return QualityPlan(
        ckpts=ckpts,
        cfgs=cfgs,
        config_name="(existing runs)",
        overrides=[],
        minutes=first.train.time_budget_minutes if len(set(budgets.values())) == 1 else None,
        budgets=budgets,
        out=Path(args.out or f"runs/quality-{first.data.family}"),
        sets=sets,
        test_info=test_info,
        lvsm_set=lvsm_set,
    )


def plan_and_train_runs(args: argparse.Namespace, lvsm_set: list[str]) -> QualityPlan:
    """Check ``--models`` (configs, same data, the test set, a reused ``--lvsm-run``) before any
    budget is spent, then train every run one after the other."""
    if not args.minutes > 0:
        raise ValueError(f"--minutes must be > 0, got {args.minutes}")
    config_name = args.config or DEFAULT_CONFIG
    overrides = training_overrides(args)
    models = parse_labelled(args.models or list(DEFAULT_MODELS), "--models", need_value=False)
    if (lvsm_set or args.lvsm_run is not None) and "lvsm" not in models:
        raise ValueError("--lvsm-set / --lvsm-run need an lvsm run among --models")
    train_plan = training_plan(models, config_name, overrides)
    if lvsm_set:  # LVSM-only settings go before its model.name
        cfg_name, over = train_plan["lvsm"]
        train_plan["lvsm"] = (cfg_name, [*overrides, *lvsm_set, *over[len(overrides) :]])
    cfgs = {label: load_config(c, o) for label, (c, o) in train_plan.items()}
    for label, cfg in cfgs.items():
        if label in available_models() and cfg.model.name != label:
            raise ValueError(
                f"--models: {label}={train_plan[label][0]} builds a {cfg.model.name!r} model"
            )
    check_all_same_data(cfgs)
    first = next(iter(cfgs.values()))
    out = Path(args.out or f"runs/quality-{first.data.family}")
    # The test set is checked before an hour of training is spent.
    sets, test_info = build_test_sets(first.data, args)
    reused, lvsm_differences = None, []
    if args.lvsm_run is not None:
        # Checked before any budget is spent.
        reused = resolve_checkpoint(args.lvsm_run)
        partner = (
            next(c for label, c in cfgs.items() if label != "lvsm")
            if len(cfgs) > 1
            else cfgs["lvsm"]
        )
        reused_cfg = _reusable_lvsm_config(reused, partner)
        lvsm_differences = _config_differences(reused_cfg, cfgs["lvsm"])
        cfgs["lvsm"] = reused_cfg
    ckpts = train_runs(args, out, train_plan, reused, args.minutes)
    return QualityPlan(
        ckpts=ckpts,
        cfgs=cfgs,
        config_name=config_name,
        overrides=overrides,
        minutes=args.minutes,
        budgets={label: args.minutes for label in cfgs},
        out=out,
        sets=sets,
        test_info=test_info,
        lvsm_set=lvsm_set,
        lvsm_differences=lvsm_differences,
    )


def load_runs(
    plan: QualityPlan, device: torch.device
) -> tuple[dict[str, RayModel], dict[str, str], dict[str, Any]]:
    """The final model of every run, its kind, and its training facts (steps, step time, budget)."""
    models, kinds, training = {}, {}, {}
    for label, ckpt in plan.ckpts.items():
        trained = load_trained_model(ckpt, device)
        models[label], kinds[label] = trained.model, model_kind(trained.model)
        training[label] = {
            **run_summary(run_dir_of(ckpt), ckpt, trained.step),
            "model": trained.model.name,
            "kind": kinds[label],
            "budget_minutes": plan.budgets[label],
            "budget_clock": plan.clocks[label],
        }
    return models, kinds, training


def learning_curves(
    plan: QualityPlan,
    curve_scenes: int,
    curve_points: int,
    device: torch.device,
    batch_size: int,
) -> dict[str, Any]:
    """Training curves and test curves of the saved checkpoints on the first ``curve_scenes``
    scenes of ``even``, with the baselines on the same scenes as references."""
    curve_samples = plan.sets["even"][:curve_scenes]
    curves: dict[str, Any] = {
        "num_scenes": len(curve_samples),
        "protocol": "even",
        # the references of the curves, on the same scenes as the curves
        "baselines": {
            "copy_nearest_psnr": evaluate(CopyNearestMethod(), curve_samples).summary["psnr"],
            "mean_of_inputs_psnr": evaluate(MeanOfInputsMethod(), curve_samples).summary["psnr"],
            "identity_rot_err_deg_median": identity_pose_baseline(curve_samples)[
                "rot_err_deg_median"
            ],
        },
        "runs": {},
    }
    for label, ckpt in plan.ckpts.items():
        run_dir = run_dir_of(ckpt)
        clock = plan.clocks[label]
        curves["runs"][label] = {
            "clock": clock,  # of the minutes below
            "train": train_curve(run_dir, clock),
            "test": checkpoint_curve(
                run_dir, curve_samples, curve_points, device, batch_size, clock
            ),
            "full_resolution_from": _full_resolution_start(plan.cfgs[label], run_dir),
        }
    return curves


def write_report(
    result: dict[str, Any], plan: QualityPlan, raw: dict[str, dict[str, EvalResult]]
) -> dict[str, Any]:
    """Write ``quality.png``, ``quality.json`` and ``quality.md`` into ``plan.out``, print the
    table; returns ``result``."""
    out = plan.out
    markdown = to_markdown(result)
    write_figure(out / "quality.png", result, plan.sets["even"], raw["even"])
    write_text_atomic(out / "quality.json", json.dumps(result, indent=2, allow_nan=False) + "\n")
    write_text_atomic(out / "quality.md", markdown + "\n")
    print(markdown)
    log(f"wrote {out / 'quality.json'}, quality.md, quality.png")
    return result


DESCRIPTION = (
    "Train a list of models (--models, default RayZer and the LVSM oracle) for "
    "the same budget each (wall-clock or process-CPU minutes: --clock) on the built-in synthetic scenes, or evaluate existing "
    "runs (--runs LABEL=RUN ..., e.g. rayzer=bundled erayzer=runs/e nas3r=runs/n); evaluate "
    "all of them with copy-nearest and mean-of-inputs baselines on one fixed held-out test "
    "set (even and random targets): images, poses (RPA, AUC), depth, focal, step time; "
    "write quality.json, quality.md and quality.png."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--minutes",
        type=float,
        default=30.0,
        help="training budget per model in minutes on --clock (default 30)",
    )
    parser.add_argument(
        "--clock",
        choices=["wall", "process"],
        help="what the budget counts (train.time_budget_clock of every run trained; default "
        "the config's, wall): 'wall' or 'process' CPU time, which other jobs on the machine do not shorten; the "
        "learning curves' minutes are on it too. Runs given with --runs report their own clock",
    )
    parser.add_argument(
        "--family", choices=["orbit", "walk"], help="synthetic family (default: the config's)"
    )
    parser.add_argument("--config", help=f"preset or YAML file (default {DEFAULT_CONFIG})")
    parser.add_argument("--out", type=Path, help="output folder (default runs/quality-<family>)")
    parser.add_argument(
        "--test-scenes",
        "--scenes",
        dest="test_scenes",
        type=int,
        default=32,
        help="held-out test scenes (default 32)",
    )
    parser.add_argument("--seed", type=int, help="training seed of both models (train.seed)")
    parser.add_argument(
        "--span", type=int, help="test window in frames (default: the widest training span)"
    )
    parser.add_argument("--protocol-seed", type=int, default=0, help="seed of the random protocol")
    parser.add_argument(
        "--ckpt-every", type=int, help="checkpoint period in steps (train.ckpt_every)"
    )
    parser.add_argument(
        "--curve-points", type=int, default=8, help="checkpoints evaluated per learning curve"
    )
    parser.add_argument(
        "--curve-scenes", type=int, default=8, help="test scenes of the learning-curve evaluations"
    )
    parser.add_argument("--eval-batch", type=int, default=8, help="samples per evaluation batch")
    parser.add_argument(
        "--min-gt-rotation",
        type=float,
        help="required median GT relative rotation of the test set in degrees "
        "(default 15 for orbit, report-only for walk)",
    )
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--no-lpips", action="store_true", help="skip LPIPS (reported as null)")
    parser.add_argument(
        "--runs",
        nargs="+",
        metavar="LABEL=RUN",
        help="evaluate existing runs instead of training: a label (a registered model name "
        "must hold that model) and a run directory, a checkpoint, or 'bundled' (the RayZer "
        "checkpoint shipped in the package); e.g. --runs rayzer=runs/a lvsm=runs/b "
        "erayzer=runs/c nas3r=runs/d. All runs must share the data settings",
    )
    parser.add_argument(
        "--models",
        nargs="+",
        metavar="NAME[=PRESET]",
        help="the runs to train with one equal budget each (default: rayzer lvsm): a registered "
        "model trained with --config, or LABEL=PRESET (a preset or YAML file), e.g. --models "
        "rayzer lvsm erayzer=erayzer-tiny-cpu nas3r=nas3r-tiny-cpu; put key=value overrides "
        "before --models",
    )
    parser.add_argument(
        "--skip-train",
        nargs=2,
        metavar=("RAYZER_RUN", "LVSM_RUN"),
        help="evaluate existing runs (run directories or checkpoints) instead of training; "
        "the same as --runs rayzer=RAYZER_RUN lvsm=LVSM_RUN",
    )
    parser.add_argument(
        "--lvsm-run",
        metavar="LVSM_RUN",
        help="train RayZer only and compare it with this existing LVSM oracle run (run "
        "directory or checkpoint; same data and budget required)",
    )
    parser.add_argument(
        "--lvsm-set",
        action="append",
        metavar="KEY=VALUE",
        help="a setting of the LVSM run only (repeatable), e.g. train.steps=2450 so that the "
        "cheaper LVSM step fills the same budget; the data must stay the same",
    )
    parser.add_argument("overrides", nargs="*", help="dotted config overrides for both models")


def main(args: argparse.Namespace) -> None:
    run(args)
