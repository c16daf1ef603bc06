"""Probe the matched cameras' precision against pycolmap, one change at a time.

python probe.py VARIANT [--windows fox:20,temple:0,...] ; results appended to results.jsonl in
out_dir(). Also the shared helpers of this folder's scripts (load, med_rot, cams, out_dir).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

import rayzer.refine.matched_cameras as mc
from rayzer.data.images import cover_box
from rayzer.data.scene_folder import read_scene_folder
from rayzer.geometry.pose_metrics import relative_pose_errors

HERE = Path(__file__).resolve().parent
DATA = Path("/work/shared/data/real")
SCENES = {
    "fox": "fox_instantngp",
    "temple": "middlebury_templeSparseRing",
    "lego": "nerf_synthetic_lego",
}
ALL = [
    "fox:0",
    "fox:20",
    "fox:39",
    "fox:59",
    "temple:0",
    "temple:3",
    "temple:5",
    "temple:8",
    "lego:92",
    "lego:31",
    "lego:0",
    "lego:61",
]
# pycolmap's registered views (positions in the window), from erayzer-4windows
PYC = json.loads((HERE / "pyc_views.json").read_text())
PRIOR = 84.937  # the E-RayZer prior, model px (64 px image)
HW = (64, 64)


def load(win: str):
    scene, start = win.split(":")
    frames = list(range(int(start), int(start) + 8))
    folder = read_scene_folder(DATA / SCENES[scene], indices=frames, load_depth=False)
    photos = [
        (im.permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).numpy()
        for im in folder.images
    ]
    box = cover_box((photos[0].shape[1], photos[0].shape[0]), HW)
    return photos, box, folder.c2w.double(), folder


def out_dir() -> Path:
    """Where this folder's scripts write (rows appended to results.jsonl / guided.jsonl,
    pycolmap's cameras ``pyc_*.pt`` and its work folders): ``$MATCHES_PRECISION_OUT``, by default
    ``matches_precision`` in the system's temporary directory; never the repository, whatever
    the working directory (the committed .jsonl files are copies of such rows)."""
    default = Path(tempfile.gettempdir()) / "matches_precision"
    out = Path(os.environ.get("MATCHES_PRECISION_OUT") or default)
    out.mkdir(parents=True, exist_ok=True)
    return out


def append_row(name: str, row: dict) -> None:
    """Append ``row`` as one JSON line to ``out_dir() / name``."""
    with open(out_dir() / name, "a") as fh:
        fh.write(json.dumps(row) + "\n")


def cams(sol, v: int) -> tuple[torch.Tensor, list[int]]:
    """Camera-to-world ``(v, 4, 4)`` float64 of a ``matched_cameras`` solution (identity where
    a view is not registered) and the registered views."""
    C = torch.eye(4, dtype=torch.float64).expand(v, 4, 4).clone()
    reg = [k for k in range(v) if sol.registered is not None and sol.registered[k]]
    for k in reg:
        w2c = torch.eye(4, dtype=torch.float64)
        w2c[:3, :3] = torch.from_numpy(sol.rec.R[k])
        w2c[:3, 3] = torch.from_numpy(sol.rec.t[k])
        C[k] = torch.linalg.inv(w2c)
    return C, reg


def med_rot(c2w, gt, views):
    if len(views) < 2:
        return None
    e = relative_pose_errors(c2w[views].double(), gt[views].double())
    return float(e["rot_deg"].median()), float(e["trans_deg"].median())


VARIANTS = {}


def variant(name):
    def deco(fn):
        VARIANTS[name] = fn
        return fn

    return deco


@variant("base")
def _base():
    return mc.MatchConfig()


def run(win: str, name: str, extra: dict):
    photos, box, gt, _ = load(win)
    v = len(photos)
    c2w = torch.eye(4).expand(v, 4, 4).clone()
    K = torch.tensor([PRIOR, PRIOR, 32.0, 32.0]).expand(v, 4).clone()
    cfg = VARIANTS[name]() if name in VARIANTS else mc.MatchConfig()
    for k, val in extra.items():
        cfg = replace(cfg, **{k: val})
    t0 = time.process_time()
    res = mc.cameras_from_matches(photos, [box] * v, c2w, K, HW, anchor=4, config=cfg)
    cpu = time.process_time() - t0
    reg = [k for k in range(v) if bool(res.registered[k])]
    rep = res.report
    out = {
        "window": win,
        "variant": name,
        "extra": {k: str(x) for k, x in extra.items()},
        "registered": reg,
        "all": med_rot(res.c2w, gt, reg),
        "cpu_s": round(cpu, 1),
        "focal": rep.get("focal_px"),
        "focal_start": rep.get("focal_start_px"),
        "planar": len(rep.get("pairs_near_planar", [])),
        "kept": rep.get("pairs_kept"),
        "points": rep.get("points"),
        "after": rep.get("reprojection_after_ba"),
        "warning": bool(rep.get("warning")),
    }
    pv = PYC.get(win)
    if pv:
        common = [k for k in pv if k in reg]
        out["on_pyc"] = med_rot(res.c2w, gt, common) if common == pv else None
    if BASE and BASE[-1].rec is not None and BASE[-1].registered is not None:
        b = BASE[-1]
        C, breg = cams(b, v)  # the base cameras
        out["base_registered"] = breg
        out["base_all"] = med_rot(C, gt, breg)
        out["base_focal"] = b.rec.f / rep.get("photo_px_per_model_px", 1)
        if pv:
            common = [k for k in pv if k in breg]
            out["base_on_pyc"] = med_rot(C, gt, common) if common == pv else None
    BASE.clear()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("variant")
    ap.add_argument("--windows", default=",".join(ALL[:9]))
    ap.add_argument("--set", action="append", default=[], help="MatchConfig key=python-value")
    ap.add_argument("--tag", default="")
    a = ap.parse_args()
    extra = {}
    for s in a.set:
        k, val = s.split("=", 1)
        extra[k] = eval(val)
    for win in a.windows.split(","):
        out = run(win, a.variant, extra)
        out["tag"] = a.tag
        print(
            f"{a.variant}{a.tag} {win:9s} reg={len(out['registered'])} all={out['all']} "
            f"onpyc={out.get('on_pyc')} f={out['focal_start']}->{out['focal']} "
            f"planar={out['planar']} pts={out['points']} cpu={out['cpu_s']} | base reg={out.get('base_registered')} all={out.get('base_all')} onpyc={out.get('base_on_pyc')}",
            flush=True,
        )
        append_row("results.jsonl", out)


_orig_search = mc._search_focal
BASE = []


def _refocus_search(feats, matched, f0, c, v, anchor, cfg):
    """After the search: the pairs' poses again at the focal the bundle adjustment reached, and
    the whole reconstruction solved from there."""
    sol, tried = _orig_search(feats, matched, f0, c, v, anchor, cfg)
    BASE.append(sol)
    if sol.rec is None or abs(math.log(sol.rec.f / sol.start_f)) <= math.log(1.05):
        print("  refocus not triggered", flush=True)
        return sol, tried
    f1 = sol.rec.f
    K = (f1, f1, c[0], c[1])
    posed = mc.pair_poses(feats, matched, K, cfg.threshold_px, cfg.min_inliers)
    again = mc._solve(feats, posed, f1, c, v, anchor, cfg)
    print(
        f"  refocus {sol.start_f:.1f}->{f1:.1f}: reg {sol.num_registered}->{again.num_registered}"
        f" planar {len(sol.planar)}->{len(again.planar)} score {sol.score_px:.4f}->{again.score_px:.4f}",
        flush=True,
    )
    if (again.num_registered, mc._checked(again, cfg)) >= (
        sol.num_registered,
        mc._checked(sol, cfg),
    ):
        return again, tried
    return sol, tried


@variant("refocus")
def _refocus():
    mc._search_focal = _refocus_search
    return mc.MatchConfig()


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
