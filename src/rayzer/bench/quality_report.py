"""Markdown tables and figure of the quality benchmark (:mod:`rayzer.bench.quality`): one row
per method (any number of runs, then the baselines), "—" where a method cannot output a number."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rayzer.config import as_hw
from rayzer.eval.novel_view import EvalResult, EvalSample
from rayzer.utils.atomic import atomic_path

#: Display names of the usual labels (any other label is shown as it is).
LABELS = {
    "rayzer": "RayZer",
    "lvsm": "LVSM (oracle)",
    "erayzer": "E-RayZer",
    "nas3r": "NAS3R",
    "copy_nearest": "copy-nearest",
    "mean_of_inputs": "mean of inputs",
}
#: Test scenes shown in the image grid of the figure.
GRID_SCENES = 4
NA = "—"


def label(name: str) -> str:
    return LABELS.get(name, name)


def _fmt(x: Any, digits: int = 2) -> str:
    if x is None:
        return NA
    if isinstance(x, float):
        return "nan" if not math.isfinite(x) else f"{x:.{digits}f}"
    return str(x)


def _acc(d: dict[str, float] | None, keys: tuple[str, ...]) -> str:
    if not d:
        return NA
    return " / ".join(f"{d[k]:.2f}" for k in keys)


def _get(d: dict[str, Any] | None, *keys: str) -> Any:
    """``d[k1][k2]…`` or None where any level is missing (a method that cannot output it)."""
    for k in keys:
        if not isinstance(d, dict) or d.get(k) is None:
            return None
        d = d[k]
    return d


def _table(cols: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
        *("| " + " | ".join(r) + " |" for r in rows),
    ]


def _turn_cells(split: dict[str, Any] | None) -> list[str]:
    """The by-turn cells of a pose report's ``by_turn`` (:mod:`rayzer.eval.turns`): the median
    rotation error where the truth turns + / −, and their mean."""
    if not split:
        return [NA, NA]
    sides = " / ".join(_fmt(_get(split, side, "rot_err_deg_median")) for side in ("plus", "minus"))
    return [sides, _fmt(split.get("balanced_rot_err_deg_median"))]


def _has_by_turn(result: dict[str, Any]) -> bool:
    return any(res["identity_pose"].get("by_turn") for res in result["results"].values())


def method_rows(res: dict[str, Any], training: dict[str, Any], methods: list[str]) -> list[str]:
    """One protocol's main table: one row per method (then the identity-pose reference);
    "—" where a method cannot output a number. The by-turn columns (:mod:`rayzer.eval.turns`)
    only where the test set's cameras turn one way (orbits, most walks)."""
    ident = res["identity_pose"]
    by_turn = ident.get("by_turn") is not None or any(
        _get(res["pose"].get(m), "by_turn") for m in methods
    )
    turn_cols = ["rot. err. median, turn + / − (°) ↓", "balanced (°) ↓"] if by_turn else []
    cols = [
        "method",
        "PSNR ↑",
        "SSIM ↑",
        "LPIPS ↓",
        "rot. err. median (°) ↓",
        *turn_cols,
        "trans.-dir. err. median (°) ↓",
        "RPA @5/15/30 ↑",
        "AUC@10 ↑",
        "depth AbsRel ↓",
        "depth δ<1.25 ↑",
        "focal rel. err. ↓",
        "s/step",
        "steps",
    ]
    rows = []
    for m in methods:
        pose, depth, t = res["pose"].get(m), res["depth"].get(m), training.get(m, {})
        rows.append(
            [
                label(m),
                _fmt(res["psnr"][m]),
                _fmt(res["ssim"][m], 3),
                _fmt(res["lpips"][m], 3),
                _fmt(_get(pose, "rot_err_deg_median")),
                *(_turn_cells(_get(pose, "by_turn")) if by_turn else []),
                _fmt(_get(pose, "trans_dir_err_deg_median")),
                _acc(_get(pose, "rpa"), ("@5", "@15", "@30")),
                _fmt(_get(pose, "auc", "@10"), 3),
                _fmt(_get(depth, "abs_rel"), 3),
                _fmt(_get(depth, "delta_1_25"), 3),
                _fmt(_get(pose, "focal_rel_err_median"), 3),
                _fmt(t.get("sec_per_step_median"), 3),
                _fmt(t.get("step")),
            ]
        )
    head = ["identity pose (reference)", NA, NA, NA, _fmt(ident["rot_err_deg_median"])]
    head += _turn_cells(ident.get("by_turn")) if by_turn else []
    rows.append(head + [NA] * (len(cols) - len(head)))
    return _table(cols, rows)


def pose_detail_rows(res: dict[str, Any], methods: list[str]) -> list[str]:
    """Pose details of the methods that predict cameras, the truth in the last row."""
    cols = [
        "method",
        "rot. acc @5/10/15° ↑",
        "trans. acc @5/10/15° ↑",
        "AUC @5/10/20/30 ↑",
        "focal fx/W (mean ± std)",
        "non-canonical pose spread (median °)",
        "predicted rotation to canonical (median °)",
    ]
    acc3, auc4 = ("@5", "@10", "@15"), ("@5", "@10", "@20", "@30")
    rows, truth = [], None
    for m in methods:
        pose, col = res["pose"].get(m), res["collapse"].get(m) or {}
        if not pose:
            continue
        focal = f"{_fmt(pose.get('focal_pred_mean'), 3)} ± {_fmt(pose.get('focal_pred_std'), 3)}"
        rows.append(
            [
                label(m),
                _acc(pose["rot_acc"], acc3),
                _acc(pose["trans_acc"], acc3),
                _acc(pose["auc"], auc4),
                focal,
                _fmt(col.get("noncanonical_spread_deg_median")),
                _fmt(col.get("pred_rel_rot_deg_median")),
            ]
        )
        truth = truth or [
            "ground truth",
            "1 / 1 / 1",
            "1 / 1 / 1",
            "1 / 1 / 1 / 1",
            f"{_fmt(pose.get('focal_true_mean'), 3)} ± {_fmt(col.get('gt_focal_spread'), 3)}",
            _fmt(col.get("gt_noncanonical_spread_deg_median")),
            _fmt(col.get("gt_rel_rot_to_canonical_deg_median")),
        ]
    ident = res["identity_pose"]
    rows.append(
        [
            "identity pose",
            _acc(ident["rot_acc"], acc3),
            "undefined",
            _acc(ident["auc_rotation_only"], auc4) + " (rot. only)",
            NA,
            "0",
            "0",
        ]
    )
    return _table(cols, rows + ([truth] if truth else []))


def results_table(
    results: dict[str, dict[str, Any]], training: dict[str, Any], methods: list[str]
) -> str:
    """Per protocol: the main table (one row per method) and the pose details."""
    lines: list[str] = []
    for proto, res in results.items():
        lines += [f"### Protocol `{proto}`", "", *method_rows(res, training, methods), ""]
        if res.get("lpips_note") and all(v is None for v in res["lpips"].values()):
            lines += [f"LPIPS: {res['lpips_note']}.", ""]
        lines += ["Pose details:", "", *pose_detail_rows(res, methods), ""]
    return "\n".join(lines).rstrip()


def _describe_runs(result: dict[str, Any]) -> str:
    runs = result.get("runs") or {}
    kinds = {
        "self": "renders targets with its own predicted cameras (target images reach the "
        "camera estimator only)",
        "oracle": "uses ground-truth cameras",
        "other": "predicts no cameras",
    }
    return "; ".join(
        f"{label(n)} (`{r['model']}`, `{r['checkpoint']}`) {kinds.get(r['kind'], r['kind'])}"
        for n, r in runs.items()
    )


def to_markdown(result: dict[str, Any]) -> str:
    """``quality.md``: the setup, the results per protocol, the targets, training facts and the
    learning curves."""
    methods = result["methods"]
    learned = [m for m in methods if m in result["training"]]
    parts = [
        f"# Quality benchmark — {result['test_set']['family']}",
        "",
        _setup_paragraph(result),
        "",
        "Runs: " + _describe_runs(result) + ".",
        "",
        "Poses: relative errors over all view pairs (rotation and translation-direction medians; "
        "RPA@T: share of pairs with max(rotation error, translation-direction error folded to "
        "≤ 90°) ≤ T, E-RayZer's definition; AUC@T of max(rotation, signed translation-direction "
        "error); AUC@5/20/30 in the JSON). Depth: z-depth of the input views against the exact "
        "synthetic depth, AbsRel and δ<1.25 after per-image median scaling. Focal: |f − f_true| "
        "/ f_true of fx/W. s/step: median training step time; steps: training steps of the "
        "evaluated checkpoint. — = the method cannot output it."
        + (
            " Turn + / −: the rotation median over the pairs of the scenes whose true cameras "
            "turn that way (about the camera's y axis; balanced = the mean of the two): a model "
            "that predicts the commoner turn without reading the images is exact on one side "
            "and worse than the identity on the other."
            if _has_by_turn(result)
            else ""
        ),
        "",
        results_table(result["results"], result["training"], methods),
        "",
        "## Targets",
        "",
    ]
    for proto, checks in result["targets"].items():
        for c in checks:
            parts.append(
                f"- **{'PASS' if c['pass'] else 'FAIL'}** ({proto}) {c['rule']}: {c['detail']}"
            )
    parts += ["", "## Training", "", *_training_table(result, learned)]
    parts += _curves_section(result["learning_curves"], learned)
    parts += [
        "",
        f"Figures: `quality.png`. Wall time of the benchmark: {result['wall_time_s'] / 60:.1f} min.",
    ]
    return "\n".join(parts)


def _size(image_size: int | list[int]) -> str:
    """``data.image_size`` as ``H×W`` (an int is a square side)."""
    h, w = as_hw(image_size)
    return f"{h}×{w}"


#: How the minutes of each budget clock are written (``train.time_budget_clock``).
CLOCK_UNITS = {"wall": "wall-clock min", "process": "process-CPU min"}


def clock_unit(clock: str | None) -> str:
    """``"process-CPU min"`` / ``"wall-clock min"``; plain ``"min"`` for an unknown or mixed
    clock (older results have none)."""
    return CLOCK_UNITS.get(clock or "", "min")


def _setup_paragraph(result: dict[str, Any]) -> str:
    """Config, overrides, budgets, a reused LVSM run and the test set, in one paragraph."""
    ts = result["test_set"]
    budgets = result.get("budgets_minutes") or {}
    clocks = result.get("budget_clocks") or {}
    if result["minutes"] is not None and (result.get("clock") or not clocks):
        budget = f"budget {_fmt(result['minutes'], 3)} {clock_unit(result.get('clock'))} per model"
    else:
        budget = "budgets " + ", ".join(
            f"{label(n)} {_fmt(b, 3)} {clock_unit(clocks.get(n))}" for n, b in budgets.items()
        )
    lvsm = ""
    if result.get("lvsm_run"):
        differences = ""
        if result.get("lvsm_run_differences"):
            differences = (
                ", which differs from this benchmark's settings (reused vs this run's) in "
                + "; ".join(f"`{d}`" for d in result["lvsm_run_differences"])
            )
        lvsm = f" (LVSM oracle: the existing run `{result['lvsm_run']}`{differences})"
    if result.get("lvsm_overrides"):
        lvsm += "; LVSM only: `" + " ".join(result["lvsm_overrides"]) + "`"
    if ts["min_gt_rotation_deg"] > 0:
        minimum = f" (required ≥ {ts['min_gt_rotation_deg']:g}°)."
    else:
        minimum = f" (no minimum for {ts['family']}: rotation metrics are weak evidence here)."
    return (
        f"Config `{result['config']}` with overrides `{' '.join(result['overrides']) or '—'}`; "
        + budget
        + lvsm
        + f"; test set: {ts['num_scenes']} held-out "
        f"scenes (TEST_SEEDS), {ts['num_input_views']} input + {ts['num_target_views']} target "
        f"views of {_size(ts['image_size'])} over a {ts['span']}-frame span of "
        f"{ts['frames_per_clip']}-frame clips, the same for every method; median GT relative "
        "rotation between views: "
        + ", ".join(f"{p} {v['gt_rel_rot_deg_median']:.1f}°" for p, v in ts["protocols"].items())
        + minimum
    )


def _training_table(result: dict[str, Any], learned: list[str]) -> list[str]:
    """One row per trained run: steps, wall-clock and process-CPU minutes, step time (wall), why
    it stopped, final loss / PSNR."""
    cols = [
        "model",
        "steps",
        "wall min",
        "CPU min",
        "s/step (wall)",
        "stopped by",
        "skipped",
        "train loss",
        "train PSNR",
    ]
    rows = []
    for name in learned:
        t = result["training"][name]
        rows.append(
            [
                label(name),
                str(t["step"]),
                _fmt(t["minutes"], 1),
                _fmt(t.get("cpu_minutes"), 1),
                _fmt(t["sec_per_step_median"], 3),
                str(t["stopped_by"] or "steps done"),
                str(t["skipped_updates"]),
                _fmt(t["final_train_loss"], 4),
                _fmt(t["final_train_psnr"], 2),
            ]
        )
    return _table(cols, rows)


def _curves_section(curves: dict[str, Any], learned: list[str]) -> list[str]:
    """The learning-curve table (every evaluated checkpoint) with its reference numbers."""
    parts = [
        "",
        f"## Learning curves (test, even protocol, first {curves['num_scenes']} scenes)",
        "",
        f"References on these scenes: copy-nearest {_fmt(curves['baselines']['copy_nearest_psnr'])} "
        f"dB, mean of inputs {_fmt(curves['baselines']['mean_of_inputs_psnr'])} dB, identity-pose "
        f"rotation error {_fmt(curves['baselines']['identity_rot_err_deg_median'])}°.",
        "",
    ]
    rows = [
        [
            label(name),
            str(r["step"]),
            _fmt(r["minutes"], 1),
            _fmt(r["psnr"]),
            _fmt(r["ssim"], 3),
            _fmt(r["rot_err_deg_median"]),
            _fmt(r.get("depth_abs_rel"), 3),
        ]
        for name in learned
        for r in curves["runs"][name]["test"]
    ]
    unit = curves_unit(curves)
    cols = ["model", "step", unit, "PSNR (dB)", "SSIM", "rot. error median (°)", "AbsRel"]
    return parts + _table(cols, rows)


def curves_unit(curves: dict[str, Any]) -> str:
    """The unit of the learning curves' minutes: the runs' common budget clock (``"min"`` when
    they differ or, in older results, are not recorded)."""
    clocks = {run.get("clock") for run in curves["runs"].values()}
    return clock_unit(clocks.pop() if len(clocks) == 1 else None)


def _ema(y: np.ndarray) -> np.ndarray:
    """Exponential moving average over ~1/20 of the curve (training PSNR is per batch, noisy)."""
    alpha = min(1.0, 20.0 / max(len(y), 1))
    out, acc = np.empty_like(y), y[0]
    for i, v in enumerate(y):
        acc = alpha * v + (1 - alpha) * acc
        out[i] = acc
    return out


def _image(t: torch.Tensor) -> np.ndarray:
    return t.float().clamp(0, 1).permute(1, 2, 0).numpy()


def write_figure(
    path: Path,
    result: dict[str, Any],
    samples: list[EvalSample],
    raw: dict[str, EvalResult],
) -> None:
    """Learning curves (top) and a grid of ground truth / every model / copy-nearest (bottom),
    written atomically."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    learned = [m for m in result["methods"] if m in result["training"]]
    shown_methods = [*learned, "copy_nearest"]
    rows = min(GRID_SCENES, len(samples), *(len(raw[m].renders) for m in shown_methods))
    ncols = max(4, 1 + len(shown_methods))
    fig = Figure(figsize=(3.25 * ncols, 4.2 + 2.2 * rows))
    grid = fig.add_gridspec(1 + rows, ncols, height_ratios=[2.0] + [1.0] * rows)
    curves = result["learning_curves"]
    palette = colormaps["tab10"]
    colours = {name: palette(i % 10) for i, name in enumerate(learned)}

    _plot_train_psnr(fig.add_subplot(grid[0, 0]), curves, colours)

    ax = fig.add_subplot(grid[0, 1])
    _plot_checkpoints(ax, curves, colours, "psnr")
    for name, style in (("copy_nearest", ":"), ("mean_of_inputs", "--")):
        ax.axhline(curves["baselines"][f"{name}_psnr"], ls=style, color="gray", label=label(name))
    ax.set(
        xlabel=curves_unit(curves),
        ylabel="test PSNR (dB)",
        title=f"test: checkpoints, {curves['num_scenes']} scenes (even)",
    )
    ax.legend(fontsize=7)

    ax = fig.add_subplot(grid[0, 2])
    _plot_checkpoints(ax, curves, colours, "rot_err_deg_median")
    ax.axhline(
        curves["baselines"]["identity_rot_err_deg_median"],
        ls="--",
        color="gray",
        label="identity pose",
    )
    rot_targets = [c for c in result["targets"]["even"] if c["name"] == "rotation_error"]
    if rot_targets:
        ax.axhline(rot_targets[0]["threshold"], ls=":", color="green", label="target")
    ax.set(
        xlabel=curves_unit(curves), ylabel="median rot. error (°)", title="predicted poses (test)"
    )
    ax.legend(fontsize=7)

    ax = fig.add_subplot(grid[0, 3:])
    ax.axis("off")
    lines = [f"{c['rule']}: {'PASS' if c['pass'] else 'FAIL'}" for c in result["targets"]["even"]]
    ax.text(0, 1, "targets (even)\n\n" + "\n".join(lines), va="top", fontsize=7, wrap=True)

    for i in range(rows):
        _render_row(fig, grid, 1 + i, samples[i], i, raw, shown_methods)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)


def _plot_train_psnr(ax: Any, curves: dict[str, Any], colours: dict[str, Any]) -> None:
    """Training-batch PSNR of every run (raw and EMA) and where progressive resolution switched
    to the full size."""
    for name, colour in colours.items():
        run = curves["runs"][name]
        pts = [
            (r["minutes"], r["psnr"])
            for r in run["train"]
            if r["minutes"] is not None and r["psnr"] is not None
        ]
        if pts:
            x, y = (np.array(v, dtype=float) for v in zip(*pts, strict=True))
            ax.plot(x, y, color=colour, alpha=0.25, lw=0.8)
            ax.plot(x, _ema(y), label=f"{label(name)} (EMA)", color=colour)
        switch = run.get("full_resolution_from")
        if switch and switch["minutes"] is not None:
            low, full = switch["sizes"]
            ax.axvline(
                switch["minutes"],
                ls="--",
                lw=0.8,
                color=colour,
                label=f"{label(name)}: {low} → {full} px",
            )
    ax.set(xlabel=curves_unit(curves), ylabel="train PSNR (dB)", title="training batches")
    ax.legend(fontsize=7)


def _plot_checkpoints(ax: Any, curves: dict[str, Any], colours: dict[str, Any], key: str) -> None:
    """One test metric (``key``) of every run's saved checkpoints over minutes."""
    for name, colour in colours.items():
        pts = [
            (r["minutes"], r[key])
            for r in curves["runs"][name]["test"]
            if r["minutes"] is not None and r[key] is not None
        ]
        if pts:
            ax.plot(*zip(*pts, strict=True), "o-", label=label(name), color=colour)


def _render_row(
    fig: Any,
    grid: Any,
    row: int,
    sample: EvalSample,
    i: int,
    raw: dict[str, EvalResult],
    methods: list[str],
) -> None:
    """Grid row ``row``: ground truth and every method's render of sample ``i``'s first target,
    each titled with its PSNR, the row labelled with the scene and frame."""
    frame = int(sample.frame_index[sample.target_index[0]])
    shown = [("ground truth", sample.images[sample.target_index[0]], None)]
    shown += [(label(m), raw[m].renders[i][0], raw[m].per_sample[i]) for m in methods]
    for j, (title, img, rec) in enumerate(shown):
        ax = fig.add_subplot(grid[row, j])
        ax.imshow(_image(img))
        ax.set_xticks([])
        ax.set_yticks([])
        psnr_txt = f" {rec['psnr_per_target'][0]:.1f} dB" if rec is not None else ""
        ax.set_title(f"{title}{psnr_txt}", fontsize=8)
        if j == 0:
            ax.set_ylabel(f"{sample.name}\nframe {frame}", fontsize=7)
