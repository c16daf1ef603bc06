"""``rayzer eval``, the report stage: means over scenes, pooled pose errors, the pose probe.

Reads what :func:`rayzer.eval.eval_scene.evaluate_scene` accumulated in a
:class:`rayzer.eval.eval_scene.RunState`; :func:`rayzer.eval.run.run_eval` writes the result.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from rayzer.eval.camera_metrics import cat_pose_errors, summarize_pose_errors
from rayzer.eval.eval_data import list_scene_entries, resolve_dataset
from rayzer.eval.eval_scene import RunState, probe_samples

log = logging.getLogger("rayzer.eval")


def _mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals and len(vals) == len(values) else None


def summary(run: RunState) -> dict[str, Any]:
    """Per method: means over scenes of the image metrics, pooled pose metrics."""
    out: dict[str, Any] = {}
    for m in run.methods:
        recs = [s["methods"][m.name] for s in run.records]
        entry: dict[str, Any] = {
            "num_scenes": len(recs),
            "num_images": sum(len(r["psnr_per_target"]) for r in recs),
        }
        for key in ("psnr", "ssim", "lpips_vgg", "lpips_alex"):
            entry[key] = _mean([r[key] for r in recs])
        errors = run.errors.get(m.name)
        entry["pose"] = summarize_pose_errors(cat_pose_errors(errors)) if errors else None
        entry["depth"] = _depth_summary([r.get("depth") for r in recs])
        by_tag = _by_overlap_tag(run.records, m.name)
        if by_tag:
            entry["by_overlap"] = by_tag
        out[m.name] = entry
    return out


def _depth_summary(records: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """Depth metrics over all scored input views (None: the method has no depth, or the
    scenes no exact depth)."""
    recs = [r for r in records if r and r.get("num_images")]
    if not recs:
        return None
    n = sum(r["num_images"] for r in recs)
    return {
        "abs_rel": sum(r["abs_rel"] * r["num_images"] for r in recs) / n,
        "delta_1_25": sum(r["delta_1_25"] * r["num_images"] for r in recs) / n,
        "num_images": n,
    }


def _by_overlap_tag(records: list[dict[str, Any]], method: str) -> dict[str, Any]:
    """Image metrics per overlap tag of the context pair (the ``nas3r`` protocol), else {}."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for s in records:
        tag = s.get("tags", {}).get("overlap_tag")
        if tag is not None:
            groups.setdefault(tag, []).append(s["methods"][method])
    return {
        tag: {"num_samples": len(recs), "psnr": _mean([r["psnr"] for r in recs]),
              "ssim": _mean([r["ssim"] for r in recs]),
              "lpips_vgg": _mean([r["lpips_vgg"] for r in recs])}
        for tag, recs in sorted(groups.items())
    }  # fmt: skip


def interp_summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in records if r.get("status") == "ok"]
    out: dict[str, Any] = {
        "num_scenes": len(ok),
        "skipped": [{"scene": r["scene"], "reason": r["reason"]} for r in records if r not in ok],
    }
    for name in ("rayzer_interpolated", "copy_nearest"):
        out[name] = {
            key: _mean([r[name][key] for r in ok]) if ok else None
            for key in ("psnr", "ssim", "lpips_vgg", "lpips_alex")
        }
    gt = [r["gt_interpolation"] for r in ok if "gt_interpolation" in r]
    out["gt_interpolation_rot_err_deg_median"] = (
        _mean([g["rot_err_deg_median"] for g in gt]) if gt else None
    )
    out["gt_interpolation_centre_err_median"] = (
        _mean([g["centre_err_median"] for g in gt]) if gt else None
    )
    return out


def colmap_summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in records if r.get("status") == "ok"]
    out: dict[str, Any] = {
        "num_scenes": len(ok),
        "skipped": [
            {"scene": r["scene"], "reason": r.get("reason", "")} for r in records if r not in ok
        ],
        "registered_fraction": (
            sum(r["registered"] for r in ok) / sum(r["num_images"] for r in ok) if ok else None
        ),
    }
    from rayzer.eval.camera_metrics import pairwise_summary

    for key in ("ours_vs_colmap", "colmap_vs_gt", "ours_vs_gt_on_registered"):
        raws = [r["raw"][key] for r in ok if r["raw"].get(key) is not None]
        out[key] = (
            pairwise_summary(torch.cat([a for a, _ in raws]), torch.cat([b for _, b in raws]))
            if raws
            else None
        )
    return out


def probe_report(run: RunState, probe_train: str | Path | None, probe_steps: int) -> dict[str, Any]:
    """Split scenes into probe train / test and run :func:`rayzer.eval.probe.run_pose_probe`."""
    from rayzer.eval.probe import ProbeConfig, run_pose_probe

    sets = run.probe_sets  # samples of the evaluated posed scenes
    if probe_train is not None:
        root, _ = resolve_dataset(probe_train, run.work / "probe_data", log=log.info)
        train_names, train = [], []
        for e in list_scene_entries(root):
            items = probe_samples(run, e) if e.posed else []
            if items:
                train_names.append(e.name)
                train += items
        split_rule = f"trained on the posed scenes of {probe_train}, tested on the evaluated ones"
        test_names = sorted(sets)
    else:
        names = sorted(sets)
        train_names, test_names = names[0::2], names[1::2]
        train = [s for n in train_names for s in sets[n]]
        split_rule = "posed scenes in name order: even positions train the probe, odd test it"
    test = [s for n in test_names for s in sets[n]]
    if not train or not test:
        reason = (
            f"pose probing needs posed scenes with >= {run.probe_views} frames for both training "
            f"and testing; got {len(train_names)} train and {len(test_names)} test scene(s)"
        )
        log.warning("probe skipped: %s", reason)
        return {"status": "skipped", "reason": reason}
    report = run_pose_probe(train, test, ProbeConfig(steps=probe_steps, seed=run.seed))
    return {
        "status": "ok",
        "split": split_rule,
        "train_scenes": train_names,
        "test_scenes": test_names,
        "samples_per_scene": run.probe_samples,
        "views_per_sample": run.probe_views,
        **report,
    }
