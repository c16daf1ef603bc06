"""pycolmap on a window as the bench runs it; its camera, points, residuals and errors vs truth."""

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pycolmap
from probe import DATA, SCENES, load, med_rot, out_dir

from rayzer.data.formats.colmap import _cam_from_world

if __name__ == "__main__":
    win = sys.argv[1]
    model = sys.argv[2] if len(sys.argv) > 2 else "SIMPLE_RADIAL"
    scene, start = win.split(":")
    frames = list(range(int(start), int(start) + 8))
    _, _, gt, _ = load(win)
    doc = json.loads((DATA / SCENES[scene] / "cameras.json").read_text())
    names = [doc["frames"][k]["file"] for k in frames]
    # pycolmap's database, image links and model: a temporary folder, removed at the end
    tmp = tempfile.TemporaryDirectory(dir=out_dir())
    work = Path(tmp.name)
    (work / "images").mkdir()
    for n in names:
        (work / "images" / Path(n).name).symlink_to(DATA / SCENES[scene] / n)
    ex = pycolmap.FeatureExtractionOptions()
    ex.num_threads = 1
    ex.max_image_size = 1024
    rd = pycolmap.ImageReaderOptions()
    rd.camera_model = model
    pycolmap.extract_features(
        work / "db.db",
        work / "images",
        image_names=[Path(n).name for n in names],
        camera_mode=pycolmap.CameraMode.SINGLE,
        reader_options=rd,
        extraction_options=ex,
        device=pycolmap.Device.cpu,
    )
    mt = pycolmap.FeatureMatchingOptions()
    mt.num_threads = 1
    pycolmap.match_exhaustive(work / "db.db", matching_options=mt, device=pycolmap.Device.cpu)
    mp = pycolmap.IncrementalPipelineOptions()
    mp.num_threads = 1
    mp.min_model_size = 2
    mp.random_seed = 0
    mp.mapper.random_seed = 0
    mp.triangulation.random_seed = 0
    (work / "sparse").mkdir()
    recs = pycolmap.incremental_mapping(
        work / "db.db", work / "images", work / "sparse", options=mp
    )
    rec = max(recs.values(), key=lambda r: r.num_reg_images())
    cam = next(iter(rec.cameras.values()))
    c2w = {}
    for im in rec.images.values():
        w2c = np.vstack([_cam_from_world(im), [0, 0, 0, 1]])
        c2w[im.name] = np.linalg.inv(w2c)
    reg = [k for k, n in enumerate(names) if Path(n).name in c2w]
    C = torch.eye(4, dtype=torch.float64).expand(8, 4, 4).clone()
    for k in reg:
        C[k] = torch.from_numpy(c2w[Path(names[k]).name])
    obs = sum(p.track.length() for p in rec.points3D.values())
    # focal in stored photo px; truth
    fx_true = doc["frames"][frames[0]]["fx"]
    print(
        json.dumps(
            {
                "window": win,
                "model": model,
                "registered": reg,
                "err": med_rot(C, gt, reg),
                "params": [round(x, 4) for x in cam.params],
                "f_true": fx_true,
                "points": rec.num_points3D(),
                "observations": obs,
                "mean_track": obs / max(rec.num_points3D(), 1),
                "mean_reproj_px": rec.compute_mean_reprojection_error(),
                "w": cam.width,
                "h": cam.height,
                # observations per point, 2, 3, ... (guided_probe.py's "lengths_2_up")
                "track_lengths_2_up": np.bincount(
                    [p.track.length() for p in rec.points3D.values()], minlength=9
                )[2:].tolist(),
                "keypoints": [len(im.points2D) for im in rec.images.values()],
            }
        )
    )
    torch.save({"c2w": C, "reg": reg}, out_dir() / f"pyc_{win.replace(':', '_')}_{model}.pt")
    tmp.cleanup()
