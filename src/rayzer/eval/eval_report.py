"""``metrics.md`` of ``rayzer eval``: the numbers of ``metrics.json`` as Markdown tables."""

from __future__ import annotations

import math
from typing import Any

from rayzer.utils.report import markdown_table

LABELS = {
    "rayzer_with_targets": "RayZer (target cams with targets)",
    "rayzer_without_targets": "RayZer (target cams without targets)",
    "lvsm": "LVSM (GT cameras)",
    "copy_nearest": "copy-nearest",
    "mean_of_inputs": "mean of inputs",
    "rayzer_interpolated": "RayZer, interpolated poses",
}


def _f(x: Any, digits: int = 3) -> str:
    if x is None:
        return "—"
    if isinstance(x, float):
        return "nan" if not math.isfinite(x) else f"{x:.{digits}f}"
    return str(x)


def _acc(d: dict[str, float] | None, digits: int = 2) -> str:
    return "—" if not d else " / ".join(f"{v:.{digits}f}" for v in d.values())


def _turn_sides(p: dict[str, Any], key: str) -> str:
    """``+ / −`` cell of a pose summary's ``by_turn`` (:mod:`rayzer.eval.turns`)."""
    split = p.get("by_turn") or {}
    return " / ".join(_f((split.get(side) or {}).get(key), 2) for side in ("plus", "minus"))


def _balanced(p: dict[str, Any], key: str) -> str:
    return _f((p.get("by_turn") or {}).get(f"balanced_{key}"), 2)


def _pose_rows(poses: dict[str, dict[str, Any] | None]) -> list[dict[str, Any]]:
    """Rows = pose metrics, columns = methods."""
    spec = (
        ("rot. error median (°) ↓", lambda p: _f(p["rot_err_deg_median"], 2)),
        ("trans.-dir. error median (°) ↓", lambda p: _f(p["trans_dir_err_deg_median"], 2)),
        ("max(rot, trans) median (°) ↓", lambda p: _f(p["max_err_deg_median"], 2)),
        ("AUC @5/10/20/30 ↑", lambda p: _acc(p["auc"])),
        ("RPA @5/15/30 ↑", lambda p: _acc(p["rpa"])),
        ("R@10/20/30° (aligned) ↑", lambda p: _acc(p.get("R_at"))),
        ("t@0.1/0.2/0.3 (aligned) ↑", lambda p: _acc(p.get("t_at"))),
        ("focal rel. error median ↓", lambda p: _f(p.get("focal_rel_err_median"))),
        ("GT relative rotation median (°)", lambda p: _f(p.get("gt_rel_rot_deg_median"), 1)),
        ("pairs / cameras", lambda p: f"{p['num_pairs']} / {p.get('num_cameras', '—')}"),
    )
    if any(p and p.get("by_turn") for p in poses.values()):  # only where cameras turn one way
        spec += (
            ("rot. error median, turn + / − (°) ↓", lambda p: _turn_sides(p, "rot_err_deg_median")),
            ("rot. error median, balanced (°) ↓", lambda p: _balanced(p, "rot_err_deg_median")),
            (
                "trans.-dir. error median, turn + / − (°) ↓",
                lambda p: _turn_sides(p, "trans_dir_err_deg_median"),
            ),
            (
                "trans.-dir. error median, balanced (°) ↓",
                lambda p: _balanced(p, "trans_dir_err_deg_median"),
            ),
            ("pairs turning + / −", lambda p: _turn_sides(p, "pairs")),
        )
    rows = []
    for label, get in spec:
        row = {"metric": label}
        for name, p in poses.items():
            row[LABELS.get(name, name)] = get(p) if p else "—"
        rows.append(row)
    return rows


def metrics_markdown(m: dict[str, Any]) -> str:
    """The report (see :mod:`rayzer.eval.run` for what each number is)."""
    h, w = m["image_size"]
    parts = [
        f"# rayzer eval — {m['data']}",
        "",
        f"Model `{m['model']}` from `{m['checkpoint']}`"
        + (" (bundled)" if m["bundled_model"] else "")
        + f", step {_f(m['step'])}; {h}×{w} input; protocol `{m['protocol']}` "
        f"({m['num_context']} context + {m['num_target']} target views"
        + (f", span {m['span']}" if m["span"] else "")
        + f", seed {m['seed']}); {len(m['scenes'])} scene(s) evaluated, {len(m['skipped'])} "
        f"skipped; device {m['device']}; {m['wall_time_s']:.1f} s.",
    ]
    for section in (
        _novel_view_section,
        _depth_section,
        _overlap_section,
        _camera_section,
        _probe_section,
        _interp_section,
        _colmap_section,
        _per_scene_section,
        _skipped_section,
        _definitions_section,
    ):
        parts += section(m)
    return "\n".join(parts)


def _novel_view_section(m: dict[str, Any]) -> list[str]:
    """Mean PSNR / SSIM / LPIPS of every method over the scenes."""
    parts = ["", "## Novel views (mean over scenes of per-scene means over targets)", ""]
    rows = []
    for name, s in m["summary"].items():
        rows.append(
            {
                "method": LABELS.get(name, name),
                "PSNR ↑": _f(s["psnr"], 2),
                "SSIM ↑": _f(s["ssim"]),
                "LPIPS-VGG ↓": _f(s["lpips_vgg"]),
                "LPIPS-Alex ↓": _f(s["lpips_alex"]),
                "scenes": s["num_scenes"],
                "images": s["num_images"],
            }
        )
    parts.append(markdown_table(rows, list(rows[0])))
    if not m["lpips_nets"]:
        parts += ["", "LPIPS disabled (`--lpips none`)."]
    return parts


def _depth_section(m: dict[str, Any]) -> list[str]:
    """Input-view depth of the methods that output depth."""
    parts: list[str] = []
    depths = {k: v["depth"] for k, v in m["summary"].items() if v.get("depth")}
    if depths:
        parts += [
            "",
            "## Depth (input views' z-depth vs the exact depth, per-image median scaling)",
            "",
        ]
        rows = [
            {
                "method": LABELS.get(name, name),
                "AbsRel ↓": _f(d["abs_rel"]),
                "δ<1.25 ↑": _f(d["delta_1_25"]),
                "images": d["num_images"],
            }
            for name, d in depths.items()
        ]
        parts.append(markdown_table(rows, list(rows[0])))
    return parts


def _overlap_section(m: dict[str, Any]) -> list[str]:
    """PSNR by the overlap tag of the context pair (protocols with tags)."""
    parts: list[str] = []
    by_tag = {k: v["by_overlap"] for k, v in m["summary"].items() if v.get("by_overlap")}
    if by_tag:
        parts += ["", "## By overlap of the context pair (PSNR ↑, samples)", ""]
        tags = sorted({t for d in by_tag.values() for t in d})
        rows = [
            {"method": LABELS.get(name, name)}
            | {t: f"{_f(d[t]['psnr'], 2)} ({d[t]['num_samples']})" if t in d else "—" for t in tags}
            for name, d in by_tag.items()
        ]
        parts.append(markdown_table(rows, list(rows[0])))
    return parts


def _camera_section(m: dict[str, Any]) -> list[str]:
    """Pose metrics of the camera-predicting methods."""
    parts: list[str] = []
    poses = {k: v["pose"] for k, v in m["summary"].items() if v.get("pose")}
    parts += ["", "## Cameras (posed scenes; errors pooled over all pairs / cameras)", ""]
    if poses:
        rows = _pose_rows(poses)
        parts.append(markdown_table(rows, list(rows[0])))
    else:
        parts.append("No pose metrics: no posed scene, or the model does not predict cameras.")
    return parts


def _probe_section(m: dict[str, Any]) -> list[str]:
    """Pose probing of frozen camera tokens (``--probe``)."""
    parts: list[str] = []
    probe = m.get("probe")
    if probe is not None:
        parts += ["", "## Pose probing (frozen camera tokens → 2-layer MLP)", ""]
        if probe["status"] != "ok":
            parts.append(f"Skipped: {probe['reason']}")
        else:
            rows = [
                {
                    "probe": name,
                    "R@10/20/30° ↑": _acc(probe[key]["R_at"]),
                    "t@0.1/0.2/0.3 ↑": _acc(probe[key]["t_at"]),
                    "rot. error median (°)": _f(probe[key]["rot_err_deg_median"], 2),
                    "trans. error median": _f(probe[key]["trans_err_median"]),
                }
                for name, key in (
                    ("MLP on camera tokens", "probe"),
                    ("constant (train mean)", "constant_baseline"),
                )
            ]
            parts.append(markdown_table(rows, list(rows[0])))
            parts += [
                "",
                f"{probe['split']}: {len(probe['train_scenes'])} train / "
                f"{len(probe['test_scenes'])} test scenes, {probe['num_train_views']} / "
                f"{probe['num_test_views']} views.",
            ]
    return parts


def _interp_section(m: dict[str, Any]) -> list[str]:
    """Novel views at interpolated poses (``--interp``)."""
    parts: list[str] = []
    interp = m.get("interp")
    if interp is not None:
        parts += ["", "## Interpolation (Slerp between predicted context poses)", ""]
        if interp["num_scenes"] == 0:
            parts.append("No scene had frames between its context views.")
        else:
            rows = [
                {
                    "method": LABELS.get(name, name),
                    "PSNR ↑": _f(interp[name]["psnr"], 2),
                    "SSIM ↑": _f(interp[name]["ssim"]),
                    "LPIPS-VGG ↓": _f(interp[name]["lpips_vgg"]),
                    "LPIPS-Alex ↓": _f(interp[name]["lpips_alex"]),
                }
                for name in ("rayzer_interpolated", "copy_nearest")
            ]
            parts.append(markdown_table(rows, list(rows[0])))
            if interp["gt_interpolation_rot_err_deg_median"] is not None:
                parts += [
                    "",
                    "Interpolating the true context cameras misses the true in-between cameras by "
                    f"{_f(interp['gt_interpolation_rot_err_deg_median'], 2)}° (rotation) and "
                    f"{_f(interp['gt_interpolation_centre_err_median'])} scene units (centre), "
                    "median: how well the constant-speed assumption holds on this data.",
                ]
    return parts


def _colmap_section(m: dict[str, Any]) -> list[str]:
    """The COLMAP reference (``--colmap``)."""
    parts: list[str] = []
    colmap = m.get("colmap")
    if colmap is not None:
        parts += ["", "## COLMAP reference (pycolmap incremental SfM)", ""]
        if colmap["num_scenes"] == 0:
            reasons = "; ".join(f"{s['scene']}: {s['reason']}" for s in colmap["skipped"][:5])
            parts.append(f"No scene reconstructed ({reasons}).")
        else:
            comparisons = {
                k: colmap[k]
                for k in ("ours_vs_colmap", "colmap_vs_gt", "ours_vs_gt_on_registered")
                if colmap[k]
            }
            rows = _pose_rows(comparisons)[:5]
            parts.append(markdown_table(rows, list(rows[0])))
            parts += [
                "",
                f"{colmap['num_scenes']} scene(s) reconstructed, "
                f"{_f(colmap['registered_fraction'], 2)} of their images registered; "
                f"{len(colmap['skipped'])} skipped.",
            ]
    return parts


def _per_scene_section(m: dict[str, Any]) -> list[str]:
    """One row per scene: PSNR and rotation error of every method."""
    parts: list[str] = []
    parts += ["", "## Per scene", ""]
    names = list(m["summary"])
    rows = []
    for s in m["scenes"]:
        row: dict[str, Any] = {"scene": s["name"], "posed": "yes" if s["posed"] else "no"}
        for name in names:
            row[f"PSNR {LABELS.get(name, name)}"] = _f(s["methods"][name]["psnr"], 2)
        for name in names:
            pose = s["methods"][name].get("pose")
            if pose:
                row[f"rot. err. {LABELS.get(name, name)}"] = _f(pose["rot_err_deg_median"], 2)
        row["grid"] = f"[png]({s['grid']})"
        rows.append(row)
    columns = [c for c in dict.fromkeys(k for r in rows for k in r) if c != "grid"] + ["grid"]
    parts.append(markdown_table(rows, columns))
    return parts


def _skipped_section(m: dict[str, Any]) -> list[str]:
    """The scenes not evaluated and why."""
    parts: list[str] = []
    if m["skipped"]:
        parts += ["", "## Skipped scenes", ""]
        parts += [f"- {s['scene']}: {s['reason']}" for s in m["skipped"]]
    return parts


def _definitions_section(m: dict[str, Any]) -> list[str]:
    """What each number is."""
    parts: list[str] = []
    parts += ["", "## Definitions", ""]
    for group in m["definitions"].values():
        parts += [f"- **{k}**: {v}" for k, v in group.items()]
    return parts
