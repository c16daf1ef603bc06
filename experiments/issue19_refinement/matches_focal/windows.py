"""The matches' focal search and solve on the consecutive windows, with two focal priors.

Outside the benchmark: the stored photos of each window (cached as a pickle), identity input
cameras, a focal prior of 84.94 px (E-RayZer's, gauge view 4) or 64.5 px (NAS3R's, gauge
view 0); the true cameras only score the registered views (median relative rotation /
translation-direction error). ``SRC`` selects the library tree (default: this checkout's
``src``); ``-v`` prints every starting focal's entry.

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 nice -n 10 python windows.py -v
"""

from __future__ import annotations

import os
import pickle
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[3]  # the checkout
sys.path.insert(0, os.environ.get("SRC", str(ROOT / "src")))

from rayzer.data.images import cover_box  # noqa: E402
from rayzer.data.scene_folder import read_scene_folder  # noqa: E402
from rayzer.eval.camera_metrics import relative_pose_errors  # noqa: E402
from rayzer.refine import matched_cameras as mc  # noqa: E402

DATA = Path(os.environ.get("DATA", ROOT.parent / "shared" / "data" / "real"))
WINDOWS = [
    ("fox_instantngp", 0),
    ("fox_instantngp", 59),
    ("middlebury_templeSparseRing", 0),
    ("middlebury_templeSparseRing", 8),
    ("nerf_synthetic_lego", 92),
]
PRIORS = [("E", 84.94, 4), ("N", 64.5, 0)]  # name, focal of the 64 px image, gauge view
HW = (64, 64)
CACHE = Path(os.environ.get("CACHE", "/tmp/matches_focal_cache"))


def load(scene: str, start: int) -> dict:
    """The window's photos (uint8), crop boxes and true cameras."""
    CACHE.mkdir(exist_ok=True)
    path = CACHE / f"{scene}_{start}.pkl"
    if path.exists():
        return pickle.loads(path.read_bytes())
    folder = read_scene_folder(
        DATA / scene, indices=list(range(start, start + 8)), load_depth=False
    )
    photos = [
        (im.permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).numpy()
        for im in folder.images
    ]
    box = cover_box((photos[0].shape[1], photos[0].shape[0]), HW)
    window = {"photos": photos, "boxes": [box] * 8, "gt": folder.c2w.double()}
    path.write_bytes(pickle.dumps(window))
    return window


def run(cfg: mc.MatchConfig | None = None, verbose: bool = False) -> list[dict]:
    out = []
    for scene, start in WINDOWS:
        window = load(scene, start)
        for name, f, anchor in PRIORS:
            K = torch.tensor([[f, f, 32.0, 32.0]] * 8)
            t0 = time.process_time()
            res = mc.cameras_from_matches(
                window["photos"], window["boxes"], torch.eye(4).repeat(8, 1, 1), K, HW,
                anchor=anchor, config=cfg,
            )  # fmt: skip
            cpu = time.process_time() - t0
            reg, rep = res.registered, res.report
            rot = tr = float("nan")
            if reg.sum() >= 2:
                err = relative_pose_errors(res.c2w[reg].double(), window["gt"][reg])
                rot, tr = float(err["rot_deg"].median()), float(err["trans_deg"].median())
            views = torch.nonzero(reg).flatten().tolist()
            print(
                f"{scene[:6]} {start:3d} {name} rot {rot:6.2f} tr {tr:6.2f} views {views} focal "
                f"{rep.get('focal_start_px')}->{rep.get('focal_px')} ev {rep.get('evidence')} "
                f"cpu {cpu:.1f}",
                flush=True,
            )
            if verbose:
                for entry in rep.get("focal_search") or []:
                    print("   ", entry)
            out.append({"scene": scene, "start": start, "prior": name, "rot": rot, "views": views})
    return out


if __name__ == "__main__":
    run(verbose="-v" in sys.argv)
