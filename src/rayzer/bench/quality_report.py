"""Markdown table and figure of the quality benchmark (:mod:`rayzer.bench.quality`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rayzer.eval.novel_view import EvalResult, EvalSample
from rayzer.utils.atomic import atomic_path

METHODS = ("rayzer", "lvsm", "copy_nearest", "mean_of_inputs")
LABELS = {
    "rayzer": "RayZer",
    "lvsm": "LVSM (oracle)",
    "copy_nearest": "copy-nearest",
    "mean_of_inputs": "mean of inputs",
}
#: Test scenes shown in the image grid of the figure.
GRID_SCENES = 4


def _fmt(x: Any, digits: int = 2) -> str:
    if x is None:
        return "—"
    if isinstance(x, float):
        return "nan" if not math.isfinite(x) else f"{x:.{digits}f}"
    return str(x)


def _acc(d: dict[str, float] | None, keys: tuple[str, ...]) -> str:
    if not d:
        return "—"
    return " / ".join(f"{d[k]:.2f}" for k in keys)


def results_table(results: dict[str, dict[str, Any]]) -> str:
    """One Markdown table: every number of every protocol with its baselines beside it."""
    cols = [
        "protocol",
        "metric",
        "RayZer",
        "LVSM (oracle)",
        "copy-nearest",
        "mean of inputs",
        "identity pose",
        "ground truth",
    ]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]

    def row(proto: str, metric: str, *cells: str) -> None:
        lines.append("| " + " | ".join([proto, metric, *cells]) + " |")

    for proto, res in results.items():
        for metric, label, digits in (
            ("psnr", "PSNR (dB) ↑", 2),
            ("ssim", "SSIM ↑", 3),
            ("lpips", "LPIPS-VGG ↓", 3),
        ):
            vals = [_fmt(res[metric][m], digits) for m in METHODS]
            if metric == "lpips" and res[metric]["rayzer"] is None:
                vals = [f"n/a ({res['lpips_note']})"] + ["n/a"] * 3
            row(proto, label, *vals, "—", "—")
        pose, ident, col = res.get("pose"), res["identity_pose"], res.get("collapse") or {}
        if not pose:
            row(proto, "poses", "n/a", "GT cameras", "—", "—", "—", "—")
            continue
        acc3, auc3 = ("@5", "@10", "@15"), ("@5", "@10", "@20")
        focal_pred = (
            f"{_fmt(pose.get('focal_pred_mean'), 3)} ± {_fmt(pose.get('focal_pred_std'), 3)}"
        )
        focal_true = (
            f"{_fmt(pose.get('focal_true_mean'), 3)} ± {_fmt(col.get('gt_focal_spread'), 3)}"
        )
        # (metric, RayZer, identity-pose baseline, ground truth)
        pose_rows = (
            ("rot. error median (°) ↓", _fmt(pose["rot_err_deg_median"]),
             _fmt(ident["rot_err_deg_median"]), "0"),
            ("rot. acc @5/10/15° ↑", _acc(pose["rot_acc"], acc3), _acc(ident["rot_acc"], acc3),
             "1 / 1 / 1"),
            ("trans.-dir. error median (°) ↓", _fmt(pose["trans_dir_err_deg_median"]),
             "undefined", "0"),
            ("trans. acc @5/10/15° ↑", _acc(pose["trans_acc"], acc3), "undefined", "1 / 1 / 1"),
            ("AUC @5/10/20 ↑", _acc(pose["auc"], auc3),
             _acc(ident["auc_rotation_only"], auc3) + " (rot. only)", "1 / 1 / 1"),
            ("focal fx/W (mean ± std over scenes)", focal_pred, "—", focal_true),
            ("focal rel. error median ↓", _fmt(pose.get("focal_rel_err_median"), 3), "—", "0"),
            ("collapse: non-canonical pose spread (median °)",
             _fmt(col.get("noncanonical_spread_deg_median")), "0",
             _fmt(col.get("gt_noncanonical_spread_deg_median"))),
            ("collapse: predicted rotation to canonical (median °)",
             _fmt(col.get("pred_rel_rot_deg_median")), "0",
             _fmt(col.get("gt_rel_rot_to_canonical_deg_median"))),
            ("collapse: focal spread across scenes (std)", _fmt(col.get("focal_spread"), 3), "—",
             _fmt(col.get("gt_focal_spread"), 3)),
        )  # fmt: skip
        for label, ours, identity, truth in pose_rows:
            row(proto, label, ours, "—", "—", "—", identity, truth)
    return "\n".join(lines)


def to_markdown(result: dict[str, Any]) -> str:
    ts = result["test_set"]
    parts = [
        f"# Quality benchmark — {ts['family']}",
        "",
        f"Config `{result['config']}` with overrides `{' '.join(result['overrides']) or '—'}`; "
        f"budget {_fmt(result['minutes'], 3)} min per model"
        + (
            f" (LVSM oracle: the existing run `{result['lvsm_run']}`"
            + (
                ", which differs from this benchmark's settings (reused vs this run's) in "
                + "; ".join(f"`{d}`" for d in result["lvsm_run_differences"])
                if result.get("lvsm_run_differences")
                else ""
            )
            + ")"
            if result.get("lvsm_run")
            else ""
        )
        + (
            "; LVSM only: `" + " ".join(result["lvsm_overrides"]) + "`"
            if result.get("lvsm_overrides")
            else ""
        )
        + f"; test set: {ts['num_scenes']} held-out "
        f"scenes (TEST_SEEDS), {ts['num_input_views']} input + {ts['num_target_views']} target "
        f"views of {ts['image_size']}×{ts['image_size']} over a {ts['span']}-frame span of "
        f"{ts['frames_per_clip']}-frame clips; median GT relative rotation between views: "
        + ", ".join(f"{p} {v['gt_rel_rot_deg_median']:.1f}°" for p, v in ts["protocols"].items())
        + (
            f" (required ≥ {ts['min_gt_rotation_deg']:g}°)."
            if ts["min_gt_rotation_deg"] > 0
            else f" (no minimum for {ts['family']}: rotation metrics are weak evidence here)."
        ),
        "RayZer renders targets with its own predicted cameras (target images reach the camera "
        "estimator only); LVSM uses ground-truth cameras. Poses: relative errors over all view "
        "pairs.",
        "",
        results_table(result["results"]),
        "",
        "## Targets",
        "",
    ]
    for proto, checks in result["targets"].items():
        for c in checks:
            parts.append(
                f"- **{'PASS' if c['pass'] else 'FAIL'}** ({proto}) {c['rule']}: {c['detail']}"
            )
    parts += ["", "## Training", ""]
    cols = [
        "model",
        "steps",
        "minutes",
        "s/step",
        "stopped by",
        "skipped",
        "train loss",
        "train PSNR",
    ]
    parts += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for name, t in result["training"].items():
        parts.append(
            "| "
            + " | ".join(
                [
                    LABELS[name],
                    str(t["step"]),
                    _fmt(t["minutes"], 1),
                    _fmt(t["sec_per_step_median"], 3),
                    str(t["stopped_by"] or "steps done"),
                    str(t["skipped_updates"]),
                    _fmt(t["final_train_loss"], 4),
                    _fmt(t["final_train_psnr"], 2),
                ]
            )
            + " |"
        )
    curves = result["learning_curves"]
    parts += [
        "",
        f"## Learning curves (test, even protocol, first {curves['num_scenes']} scenes)",
        "",
        f"References on these scenes: copy-nearest {_fmt(curves['baselines']['copy_nearest_psnr'])} "
        f"dB, mean of inputs {_fmt(curves['baselines']['mean_of_inputs_psnr'])} dB, identity-pose "
        f"rotation error {_fmt(curves['baselines']['identity_rot_err_deg_median'])}°.",
        "",
        "| model | step | minutes | PSNR (dB) | SSIM | rot. error median (°) |",
        "|---|---|---|---|---|---|",
    ]
    for name in ("rayzer", "lvsm"):
        for r in curves[name]["test"]:
            parts.append(
                f"| {LABELS[name]} | {r['step']} | {_fmt(r['minutes'], 1)} | {_fmt(r['psnr'])} | "
                f"{_fmt(r['ssim'], 3)} | {_fmt(r['rot_err_deg_median'])} |"
            )
    parts += [
        "",
        f"Figures: `quality.png`. Wall time of the benchmark: {result['wall_time_s'] / 60:.1f} min.",
    ]
    return "\n".join(parts)


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
    """Learning curves (top) and a GT / RayZer / LVSM / copy-nearest grid (bottom), atomically."""
    from matplotlib.figure import Figure

    rows = min(GRID_SCENES, len(samples), *(len(raw[m].renders) for m in METHODS))
    fig = Figure(figsize=(13, 4.2 + 2.2 * rows))
    grid = fig.add_gridspec(1 + rows, 4, height_ratios=[2.0] + [1.0] * rows)
    curves = result["learning_curves"]
    colours = {"rayzer": "tab:blue", "lvsm": "tab:orange"}

    ax = fig.add_subplot(grid[0, 0])
    for name in ("rayzer", "lvsm"):
        pts = [
            (r["minutes"], r["psnr"])
            for r in curves[name]["train"]
            if r["minutes"] is not None and r["psnr"] is not None
        ]
        if pts:
            x, y = (np.array(v, dtype=float) for v in zip(*pts, strict=True))
            ax.plot(x, y, color=colours[name], alpha=0.25, lw=0.8)
            ax.plot(x, _ema(y), label=f"{LABELS[name]} (EMA)", color=colours[name])
        switch = curves[name].get("full_resolution_from")
        if switch and switch["minutes"] is not None:
            low, full = switch["sizes"]
            ax.axvline(
                switch["minutes"],
                ls="--",
                lw=0.8,
                color=colours[name],
                label=f"{LABELS[name]}: {low} → {full} px",
            )
    ax.set(xlabel="minutes", ylabel="train PSNR (dB)", title="training batches")
    ax.legend(fontsize=8)

    ax = fig.add_subplot(grid[0, 1])
    for name in ("rayzer", "lvsm"):
        pts = [(r["minutes"], r["psnr"]) for r in curves[name]["test"] if r["minutes"] is not None]
        if pts:
            ax.plot(*zip(*pts, strict=True), "o-", label=LABELS[name], color=colours[name])
    for name, style in (("copy_nearest", ":"), ("mean_of_inputs", "--")):
        ax.axhline(curves["baselines"][f"{name}_psnr"], ls=style, color="gray", label=LABELS[name])
    ax.set(
        xlabel="minutes",
        ylabel="test PSNR (dB)",
        title=f"test: checkpoints, {curves['num_scenes']} scenes (even)",
    )
    ax.legend(fontsize=8)

    ax = fig.add_subplot(grid[0, 2])
    pts = [
        (r["minutes"], r["rot_err_deg_median"])
        for r in curves["rayzer"]["test"]
        if r["minutes"] is not None and r["rot_err_deg_median"] is not None
    ]
    if pts:
        ax.plot(*zip(*pts, strict=True), "o-", color=colours["rayzer"], label="RayZer")
    ax.axhline(
        curves["baselines"]["identity_rot_err_deg_median"],
        ls="--",
        color="gray",
        label="identity pose",
    )
    target = next(c for c in result["targets"]["even"] if c["name"] == "rotation_error")
    ax.axhline(target["threshold"], ls=":", color="green", label="target")
    ax.set(xlabel="minutes", ylabel="median rot. error (°)", title="RayZer poses (test)")
    ax.legend(fontsize=8)

    ax = fig.add_subplot(grid[0, 3])
    ax.axis("off")
    lines = [f"{c['rule']}: {'PASS' if c['pass'] else 'FAIL'}" for c in result["targets"]["even"]]
    ax.text(0, 1, "targets (even)\n\n" + "\n\n".join(lines), va="top", fontsize=7, wrap=True)

    titles = ("ground truth", "RayZer", "LVSM (oracle)", "copy-nearest")
    for i in range(rows):
        sample = samples[i]
        frame = int(sample.frame_index[sample.target_index[0]])
        tgt = sample.images[sample.target_index[0]]
        shown = [
            tgt,
            raw["rayzer"].renders[i][0],
            raw["lvsm"].renders[i][0],
            raw["copy_nearest"].renders[i][0],
        ]
        for j, img in enumerate(shown):
            ax = fig.add_subplot(grid[1 + i, j])
            ax.imshow(_image(img))
            ax.set_xticks([])
            ax.set_yticks([])
            psnr_txt = ""
            if j > 0:
                key = ("rayzer", "lvsm", "copy_nearest")[j - 1]
                psnr_txt = f" {raw[key].per_sample[i]['psnr_per_target'][0]:.1f} dB"
            ax.set_title(f"{titles[j]}{psnr_txt}" if i == 0 or j > 0 else titles[j], fontsize=8)
            if j == 0:
                ax.set_ylabel(f"{sample.name}\nframe {frame}", fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
