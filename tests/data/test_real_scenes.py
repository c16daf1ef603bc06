"""The posed real scenes in shared/data/real, read through ``read_scene_folder``, agree with their
images: ORB matches between neighbouring views satisfy the epipolar constraint of the stored
cameras to sub-pixel accuracy, while a 2-degree camera error breaks it (negative control).

Matches are filtered by a RANSAC fundamental matrix fitted to the matches alone (independent of
our cameras), then scored with the Sampson distance of the fundamental matrix built from our
K and relative pose. Skips when the data folder is absent.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.color import rgb2gray
from skimage.feature import ORB, match_descriptors
from skimage.measure import ransac
from skimage.transform import FundamentalMatrixTransform

from rayzer.data import read_scene_folder
from rayzer.geometry import intrinsics_matrix, rotation_angle, se3_inverse

# ../shared/data/real next to the project root (DESIGN §5); RAYZER_REAL_DATA overrides.
REAL = Path(
    os.environ.get(
        "RAYZER_REAL_DATA", Path(__file__).resolve().parents[3] / "shared" / "data" / "real"
    )
)


def fundamental_from_cameras(c2w_i, c2w_j, K_i, K_j) -> np.ndarray:
    """F with x_j^T F x_i = 0 for pixel coordinates (corner convention) of frames i and j."""
    T = se3_inverse(c2w_j) @ c2w_i  # camera i -> camera j
    R, t = T[:3, :3], T[:3, 3]
    t_cross = torch.zeros(3, 3, dtype=T.dtype)
    t_cross[0, 1], t_cross[0, 2], t_cross[1, 2] = -t[2], t[1], -t[0]
    t_cross = t_cross - t_cross.T
    E = t_cross @ R
    F = torch.linalg.inv(intrinsics_matrix(K_j)).T @ E @ torch.linalg.inv(intrinsics_matrix(K_i))
    return F.numpy()


def sampson_px(F: np.ndarray, x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
    """First-order geometric (Sampson) distance of matches to the epipolar geometry, in pixels."""
    x1h = np.c_[x1, np.ones(len(x1))]
    x2h = np.c_[x2, np.ones(len(x2))]
    Fx1, Ftx2 = x1h @ F.T, x2h @ F
    num = np.sum(x2h * Fx1, axis=1) ** 2
    den = Fx1[:, 0] ** 2 + Fx1[:, 1] ** 2 + Ftx2[:, 0] ** 2 + Ftx2[:, 1] ** 2
    return np.sqrt(num / den)


def orb_matches(img_i: torch.Tensor, img_j: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    feats = []
    for img in (img_i, img_j):
        orb = ORB(n_keypoints=1000, fast_threshold=0.03)
        orb.detect_and_extract(rgb2gray(img.permute(1, 2, 0).numpy()))
        feats.append(orb)
    m = match_descriptors(
        feats[0].descriptors, feats[1].descriptors, cross_check=True, max_ratio=0.8
    )
    # skimage keypoints are (row, col) with pixel centres at integers; ours are at +0.5.
    x_i = feats[0].keypoints[m[:, 0], ::-1] + 0.5
    x_j = feats[1].keypoints[m[:, 1], ::-1] + 0.5
    return x_i, x_j


def nearest_view_pairs(scene_dir: Path, anchors: list[int]) -> list[tuple[int, int]]:
    """For unordered captures: pair each anchor with the view of most similar orientation."""
    frames = json.loads((scene_dir / "cameras.json").read_text())["frames"]
    R = torch.tensor([f["c2w"] for f in frames], dtype=torch.float64)[:, :3, :3]
    angles = rotation_angle(R[anchors].transpose(-1, -2)[:, None] @ R[None])
    angles[torch.arange(len(anchors)), anchors] = float("inf")
    return [(a, int(angles[k].argmin())) for k, a in enumerate(anchors)]


SCENES = {
    # name: candidate (i, j) pairs of neighbouring views (None: choose by orientation)
    "middlebury_templeSparseRing": [(0, 1), (5, 6), (1, 2), (6, 7)],
    "fox_instantngp": [(0, 2), (30, 32), (60, 62)],
    "nerf_synthetic_lego": None,
}


@pytest.mark.parametrize("name", sorted(SCENES))
def test_epipolar_consistency_of_posed_real_scenes(name: str, perturb) -> None:
    scene_dir = REAL / name
    if not (scene_dir / "cameras.json").is_file():
        pytest.skip(f"real scene {scene_dir} not available")
    pairs = SCENES[name] or nearest_view_pairs(scene_dir, [30, 60, 0])
    ours, wrong, used = [], [], 0
    for i, j in pairs:
        scene = read_scene_folder(scene_dir, indices=[i, j])
        c2w, K = scene.c2w.double(), scene.K.double()
        x_i, x_j = orb_matches(scene.images[0], scene.images[1])
        if len(x_i) < 20:
            continue
        _, inliers = ransac(
            (x_i, x_j),
            FundamentalMatrixTransform,
            min_samples=8,
            residual_threshold=1.0,
            max_trials=2000,
            rng=0,
        )
        if inliers is None or inliers.sum() < 15:
            continue
        x_i, x_j = x_i[inliers], x_j[inliers]
        ours.append(sampson_px(fundamental_from_cameras(c2w[0], c2w[1], K[0], K[1]), x_i, x_j))
        F_bad = fundamental_from_cameras(c2w[0], perturb(c2w[1], 2.0), K[0], K[1])
        wrong.append(sampson_px(F_bad, x_i, x_j))
        used += 1
        if used == 2:
            break
    assert used == 2, f"{name}: not enough feature matches to test"
    med_ours = float(np.median(np.concatenate(ours)))
    med_wrong = float(np.median(np.concatenate(wrong)))
    assert med_ours < 1.0, med_ours  # README: 0.1-0.45 px
    assert med_wrong > 2.0 and med_wrong > 5 * med_ours, (med_ours, med_wrong)


@pytest.mark.parametrize(
    "name",
    [
        "fox_instantngp",
        "middlebury_templeSparseRing",
        "nerf_synthetic_lego",
        "mipnerf360_kitchen_subset",
        "vggsfm_statue",
        "colosseum_video",
    ],
)
def test_every_real_scene_loads_at_reduced_size(name: str) -> None:
    scene_dir = REAL / name
    if not scene_dir.is_dir():
        pytest.skip(f"real scene {scene_dir} not available")
    posed = (scene_dir / "cameras.json").is_file()
    doc = json.loads((scene_dir / ("cameras.json" if posed else "frames.json")).read_text())
    scene = read_scene_folder(scene_dir, max_side=96)  # validates every camera on the way
    V = len(doc["frames"])
    w0, h0 = doc["frames"][0]["width"], doc["frames"][0]["height"]
    assert scene.images.shape[0] == V and max(scene.images.shape[-2:]) == 96
    assert abs(scene.images.shape[-1] / scene.images.shape[-2] - w0 / h0) < 0.02
    assert scene.posed == posed
    if posed:
        scale_x = scene.images.shape[-1] / w0
        torch.testing.assert_close(
            scene.K[:, 0], torch.tensor([f["fx"] for f in doc["frames"]]) * scale_x
        )
