"""Does classical two-view geometry see the orbit's rotations? (Session 10)

SIFT features, ratio-test matches, an essential matrix by RANSAC with the TRUE intrinsics (or a
prior focal), and `recoverPose`, on held-out orbit clips (24 frames, the benchmark's test
windows). For pairs (frame 0, frame gap) it prints the true and estimated relative rotation
and the error, over the pairs where the estimate succeeded, and how often it failed
(< 8 matches or no essential matrix). A label-free pose signal of this kind could start the
camera estimator in the right basin only if it is accurate at the benchmark's resolution.

    python classical_probe.py [--size 64] [--clips 48] [--prior-focal 0]   # 0 = true focal
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np

from rayzer.data.synthetic import TEST_SEEDS, SynthConfig, render_clip

GAPS = (2, 4, 8, 12, 23)


def rotation_angle_deg(rot: np.ndarray) -> float:
    """Angle (degrees) of a 3x3 rotation matrix."""
    return float(np.degrees(np.arccos(np.clip((np.trace(rot) - 1.0) / 2.0, -1.0, 1.0))))


def two_view_rotation(
    img1: np.ndarray, img2: np.ndarray, K: np.ndarray, sift
) -> tuple[np.ndarray | None, int]:
    """Relative rotation cam1 -> cam2 (OpenCV: x2 = R x1 + t) or None; and the match count."""
    k1, d1 = sift.detectAndCompute(cv2.cvtColor(img1, cv2.COLOR_RGB2GRAY), None)
    k2, d2 = sift.detectAndCompute(cv2.cvtColor(img2, cv2.COLOR_RGB2GRAY), None)
    if d1 is None or d2 is None or len(k1) < 8 or len(k2) < 8:
        return None, 0
    pairs = cv2.BFMatcher().knnMatch(d1, d2, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < 0.8 * p[1].distance]
    if len(good) < 8:
        return None, len(good)
    p1 = np.float32([k1[g.queryIdx].pt for g in good])
    p2 = np.float32([k2[g.trainIdx].pt for g in good])
    E, mask = cv2.findEssentialMat(p1, p2, K, method=cv2.RANSAC, prob=0.999, threshold=1.0)
    if E is None or E.shape != (3, 3):
        return None, len(good)
    _, rot, _, _ = cv2.recoverPose(E, p1, p2, K, mask=mask)
    return rot, len(good)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--clips", type=int, default=48)
    ap.add_argument(
        "--prior-focal", type=float, default=0.0, help="focal / width; 0 = the true focal"
    )
    args = ap.parse_args()
    sift = cv2.SIFT_create()
    rows: dict[int, list[tuple[float, float, float, int]]] = {g: [] for g in GAPS}
    for seed in list(TEST_SEEDS)[: args.clips]:
        clip = render_clip(
            seed, SynthConfig(family="orbit", frames=24, height=args.size, width=args.size)
        )
        imgs = (clip.images.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
        h, w = imgs.shape[1:3]
        f = float(clip.K[0, 0]) if args.prior_focal == 0 else args.prior_focal * w
        K = np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1]])
        c2w = clip.c2w.numpy()
        for gap in GAPS:
            true = c2w[gap][:3, :3].T @ c2w[0][:3, :3]  # world-to-cam2 after cam1-to-world
            est, n = two_view_rotation(imgs[0], imgs[gap], K, sift)
            if est is None:
                rows[gap].append((rotation_angle_deg(true), np.nan, np.nan, n))
            else:
                err = rotation_angle_deg(est.T @ true)
                rows[gap].append((rotation_angle_deg(true), rotation_angle_deg(est), err, n))
    focal = "true" if args.prior_focal == 0 else args.prior_focal
    print(f"size {args.size}, {args.clips} clips, focal {focal}")
    print("| gap | true rot. | est. rot. | error (median) | error < 10° | failed | matches |")
    print("|---|---|---|---|---|---|---|")
    for gap, r in rows.items():
        a = np.array(r, float)
        ok = ~np.isnan(a[:, 1])
        true_rot, est_rot, err = np.median(a[:, 0]), np.median(a[ok, 1]), np.median(a[ok, 2])
        print(
            f"| {gap} | {true_rot:.1f}° | {est_rot:.1f}° | {err:.1f}° | {np.mean(a[ok, 2] < 10):.2f} "
            f"| {1 - ok.mean():.2f} | {np.median(a[:, 3]):.0f} |"
        )


if __name__ == "__main__":
    main()
