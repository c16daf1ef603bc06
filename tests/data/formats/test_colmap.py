"""COLMAP models (text and binary, via pycolmap) convert to our convention on real scenes;
distorted camera models are undistorted correctly (synthetic blobs and real images); unsupported
models and missing images fail cleanly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import map_coordinates

pytest.importorskip("pycolmap")

FOX_DISTORTION = (0.0578421, -0.0805099, -0.000980296, 0.00015575)  # fox's OPENCV k1 k2 p1 p2


@pytest.mark.parametrize("kind", ["text", "binary"])
def test_colmap_round_trip_on_real_scene(kind, fox, write, check, cli, tmp_path: Path) -> None:
    project = tmp_path / "fox_project"
    write.copy_images(fox, project / "images")
    getattr(write, f"colmap_{kind}")(project / "sparse" / "0", fox)
    code, out, err = cli("data", "convert", "--input", project, "--output", tmp_path / "out")
    assert code == 0, err
    assert "colmap" in out
    # the stored fox rotations are orthonormal to ~1e-6; a quaternion projects them onto SO(3)
    doc = check.scene_matches(tmp_path / "out", fox, pose_atol=1e-5)
    assert doc["source_format"] == "colmap" and doc["scene"] == "fox_project"
    assert [f["file"] for f in doc["frames"]] == [f"images/{n}" for n in fox.names]
    assert [f["source_file"] for f in doc["frames"]] == [f"images/{n}" for n in fox.names]


def test_colmap_shared_simple_pinhole_camera(lego, write, check, tmp_path: Path) -> None:
    from rayzer.data.convert import convert

    write.copy_images(lego, tmp_path / "p" / "images")
    k = lego.K[0]
    cams = [("SIMPLE_PINHOLE", [k[0], k[2], k[3]])] * len(lego)
    write.colmap_text(tmp_path / "p" / "sparse", lego, cameras=cams)
    convert(tmp_path / "p", tmp_path / "out")
    check.scene_matches(tmp_path / "out", lego, pose_atol=1e-5)


def _distort(x: np.ndarray, y: np.ndarray, k1, k2, p1, p2):
    """COLMAP / OpenCV radial-tangential model on normalised coordinates (the documented formula)."""
    r2 = x * x + y * y
    radial = 1 + k1 * r2 + k2 * r2 * r2
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return xd, yd


def _undistort_points(xd, yd, coeffs, iters: int = 30):
    x, y = xd.copy(), yd.copy()
    for _ in range(iters):  # fixed point of x = xd - (distort(x) - x)
        dx, dy = _distort(x, y, *coeffs)
        x, y = x - (dx - xd), y - (dy - yd)
    return x, y


def test_undistortion_moves_points_to_their_pinhole_projection(write, tmp_path: Path) -> None:
    """Gaussian blobs drawn at DISTORTED positions of known 3-D points land, after conversion, at
    the pinhole projections (sub-pixel): checks the model, its sign and the +0.5 pixel convention."""
    pytest.importorskip("cv2")
    from rayzer.data.convert import convert

    W, H = 320, 240
    fx, fy, cx, cy = 260.0, 255.0, 163.3, 118.6
    coeffs = (-0.25, 0.08, 0.002, -0.001)
    gx, gy = np.meshgrid(np.linspace(-0.45, 0.45, 5), np.linspace(-0.35, 0.35, 4))
    xn, yn = gx.ravel(), gy.ravel()  # normalised pinhole coordinates of the points
    xd, yd = _distort(xn, yn, *coeffs)
    ud, vd = fx * xd + cx, fy * yd + cy  # distorted pixel positions (corner convention)
    cols, rows = np.meshgrid(np.arange(W) + 0.5, np.arange(H) + 0.5)
    img = np.zeros((H, W))
    for u, v in zip(ud, vd):
        img += np.exp(-((cols - u) ** 2 + (rows - v) ** 2) / (2 * 1.5**2))
    (tmp_path / "p" / "images").mkdir(parents=True)
    Image.fromarray((np.clip(img, 0, 1) * 255).round().astype(np.uint8)).convert("RGB").save(
        tmp_path / "p" / "images" / "blobs.png"
    )
    model = tmp_path / "p" / "sparse" / "0"
    model.mkdir(parents=True)
    (model / "cameras.txt").write_text(
        f"1 OPENCV {W} {H} {fx} {fy} {cx} {cy} " + " ".join(map(str, coeffs)) + "\n"
    )
    (model / "images.txt").write_text("1 1 0 0 0 0 0 0 1 blobs.png\n\n")
    (model / "points3D.txt").write_text("")
    convert(tmp_path / "p", tmp_path / "out")
    out = np.asarray(Image.open(tmp_path / "out" / "images" / "blobs.png").convert("L"), np.float64)
    errors = []
    for u, v in zip(fx * xn + cx, fy * yn + cy):  # where the pinhole camera sees the points
        r0, c0 = int(v), int(u)
        win = out[r0 - 5 : r0 + 6, c0 - 5 : c0 + 6]
        rr, cc = np.mgrid[r0 - 5 : r0 + 6, c0 - 5 : c0 + 6] + 0.5
        w = np.clip(win - 0.1 * win.max(), 0, None)
        errors.append(np.hypot((w * cc).sum() / w.sum() - u, (w * rr).sum() / w.sum() - v))
    assert max(errors) < 0.15, errors
    # negative control: the distortion is large enough to matter
    assert np.hypot(ud - (fx * xn + cx), vd - (fy * yn + cy)).max() > 5.0


def test_undistortion_recovers_real_images(fox, write, check, tmp_path: Path) -> None:
    """Fox frames distorted with fox's real OPENCV coefficients convert back to the originals."""
    pytest.importorskip("cv2")
    from rayzer.data.convert import convert

    sub = load_subset(fox, [0, 3])
    W, H = sub.size
    cols, rows = np.meshgrid(np.arange(W) + 0.5, np.arange(H) + 0.5)
    results = {}
    for kind, model in (("opencv", "OPENCV"), ("control", "PINHOLE")):
        project = tmp_path / kind
        (project / "images").mkdir(parents=True)
        cams = []
        for f, k in zip(sub.files, sub.K):
            src = np.asarray(Image.open(f), np.float64)
            xu, yu = _undistort_points((cols - k[2]) / k[0], (rows - k[3]) / k[1], FOX_DISTORTION)
            coords = [yu * k[1] + k[3] - 0.5, xu * k[0] + k[2] - 0.5]  # array index = pixel - 0.5
            dist = np.stack([map_coordinates(src[..., c], coords, order=1) for c in range(3)], -1)
            Image.fromarray(dist.round().clip(0, 255).astype(np.uint8)).save(
                project / "images" / f.name
            )
            cams.append((model, [*k, *FOX_DISTORTION] if model == "OPENCV" else list(k)))
        write.colmap_text(project / "sparse" / "0", sub, cameras=cams)
        convert(project, tmp_path / f"out_{kind}")
        doc = check.scene_matches(tmp_path / f"out_{kind}", sub, pose_atol=1e-5, same_bytes=False)
        if kind == "opencv":
            assert doc["frames"][0]["source_distortion_removed"]["k1"] == FOX_DISTORTION[0]
        psnr = []
        for f, src in zip(doc["frames"], sub.files):
            a = np.asarray(Image.open(tmp_path / f"out_{kind}" / f["file"]), np.float64)
            b = np.asarray(Image.open(src), np.float64)
            m = (slice(16, H - 16), slice(16, W - 16))  # border pixels map outside the source
            psnr.append(10 * np.log10(255**2 / np.mean((a[m] - b[m]) ** 2)))
        results[kind] = np.array(psnr)
    assert results["opencv"].min() > 30.0, results
    # negative control: leaving the distortion in costs several dB on every frame
    assert (results["opencv"] - results["control"]).min() > 4.0, results


def load_subset(frames, idx):
    from dataclasses import replace

    return replace(
        frames, files=[frames.files[i] for i in idx], c2w=frames.c2w[idx], K=frames.K[idx]
    )


def test_unsupported_camera_model_is_refused(fox, write, check, cli, tmp_path: Path) -> None:
    project = tmp_path / "p"
    write.copy_images(fox, project / "images")
    cams = [("OPENCV_FISHEYE", [*k, 0.01, 0.0, 0.0, 0.0]) for k in fox.K]
    write.colmap_text(project / "sparse" / "0", fox, cameras=cams)
    code, _, err = cli("data", "convert", "--input", project, "--output", tmp_path / "out")
    assert code != 0
    assert "OPENCV_FISHEYE" in err and "unsupported" in err and str(project / "sparse" / "0") in err
    check.no_output(tmp_path / "out")


def test_distortion_without_opencv_is_refused_clearly(
    fox, write, check, monkeypatch, tmp_path: Path
) -> None:
    from rayzer.data.convert import convert
    from rayzer.data.formats import undistort

    monkeypatch.setattr(undistort, "have_opencv", lambda: False)
    project = tmp_path / "p"
    write.copy_images(fox, project / "images")
    write.colmap_text(
        project / "sparse",
        fox,
        cameras=[("SIMPLE_RADIAL", [k[0], k[2], k[3], 0.02]) for k in fox.K],
    )
    with pytest.raises(ValueError, match=r"SIMPLE_RADIAL.*rayzer\[undistort\]"):
        convert(project, tmp_path / "out")
    check.no_output(tmp_path / "out")
    # all-zero distortion needs no OpenCV
    write.colmap_text(
        project / "sparse", fox, cameras=[("SIMPLE_RADIAL", [k[0], k[2], k[3], 0.0]) for k in fox.K]
    )


def test_missing_image_names_the_file(fox, write, check, cli, tmp_path: Path) -> None:
    project = tmp_path / "p"
    write.copy_images(fox, project / "images")
    write.colmap_text(project / "sparse" / "0", fox)
    (project / "images" / fox.names[3]).unlink()
    code, _, err = cli("data", "convert", "--input", project, "--output", tmp_path / "out")
    assert code != 0 and fox.names[3] in err and "missing" in err
    check.no_output(tmp_path / "out")


def test_corrupt_model_is_a_clear_error(tmp_path: Path, check) -> None:
    from rayzer.data.convert import convert

    model = tmp_path / "p" / "sparse" / "0"
    model.mkdir(parents=True)
    (tmp_path / "p" / "images").mkdir()
    (model / "cameras.txt").write_text("1 PINHOLE 10 10 1 1\n")  # too few parameters
    (model / "images.txt").write_text("")
    (model / "points3D.txt").write_text("")
    with pytest.raises(ValueError, match="cannot read the COLMAP model"):
        convert(tmp_path / "p", tmp_path / "out")
    check.no_output(tmp_path / "out")
