"""Shared helpers for the format tests: real frames from shared/data/real and writers that lay
them out in each source format (written from the format facts, independently of the readers).

Helpers are handed to the tests through fixtures (tests are imported with importlib, so they
cannot import this module by name).
"""

from __future__ import annotations

import io
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from rayzer.cli import main
from rayzer.geometry import matrix_to_quaternion

REAL = Path(
    os.environ.get(
        "RAYZER_REAL_DATA", Path(__file__).resolve().parents[4] / "shared" / "data" / "real"
    )
)
GL = np.diag([1.0, -1.0, -1.0, 1.0])  # OpenCV <-> OpenGL camera axes (its own inverse)


@dataclass
class RealFrames:
    """A few frames of a real posed scene: OpenCV c2w (V, 4, 4), pixel K (V, 4), image files."""

    scene: str
    files: list[Path]
    c2w: np.ndarray
    K: np.ndarray
    size: tuple[int, int]  # (W, H)

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.files]

    def __len__(self) -> int:
        return len(self.files)


def load_real(name: str, indices: list[int]) -> RealFrames:
    scene_dir = REAL / name
    if not (scene_dir / "cameras.json").is_file():
        pytest.skip(f"real scene {scene_dir} not available")
    frames = [json.loads((scene_dir / "cameras.json").read_text())["frames"][i] for i in indices]
    return RealFrames(
        scene=name,
        files=[scene_dir / f["file"] for f in frames],
        c2w=np.array([f["c2w"] for f in frames], dtype=np.float64),
        K=np.array([[f["fx"], f["fy"], f["cx"], f["cy"]] for f in frames], dtype=np.float64),
        size=(frames[0]["width"], frames[0]["height"]),
    )


@pytest.fixture
def fox() -> RealFrames:
    """6 frames of the handheld fox capture (COLMAP poses, fx != fy, off-centre principal point)."""
    return load_real("fox_instantngp", [0, 12, 24, 36, 48, 60])


@pytest.fixture
def lego() -> RealFrames:
    """5 frames of NeRF-synthetic lego (exact cameras, fx = fy, centred principal point)."""
    return load_real("nerf_synthetic_lego", [0, 20, 40, 60, 80])


# ------------------------------------------------------------------------------------------------
# writers


def copy_images(frames: RealFrames, folder: Path, names: list[str] | None = None) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    names = names or frames.names
    for src, name in zip(frames.files, names):
        shutil.copy(src, folder / name)
    return names


def write_colmap_text(
    model_dir: Path, frames: RealFrames, cameras: list[tuple[str, list[float]]] | None = None
) -> Path:
    """COLMAP text model: one camera per image (``cameras`` = (model, params) per image, default
    PINHOLE from K), poses as cam_from_world qvec (w, x, y, z) + tvec."""
    model_dir.mkdir(parents=True, exist_ok=True)
    W, H = frames.size
    cams = cameras or [("PINHOLE", list(k)) for k in frames.K]
    lines = ["# Camera list with one line of data per camera:"]
    for i, (model, params) in enumerate(cams):
        lines.append(f"{i + 1} {model} {W} {H} " + " ".join(f"{p:.17g}" for p in params))
    (model_dir / "cameras.txt").write_text("\n".join(lines) + "\n")
    lines = ["# Image list with two lines of data per image:"]
    for i, (c2w, name) in enumerate(zip(frames.c2w, frames.names)):
        w2c = np.linalg.inv(c2w)
        q = matrix_to_quaternion(torch.from_numpy(w2c[:3, :3])).numpy()
        vals = " ".join(f"{v:.17g}" for v in [*q, *w2c[:3, 3]])
        lines += [f"{i + 1} {vals} {i + 1} {name}", ""]
    (model_dir / "images.txt").write_text("\n".join(lines) + "\n")
    (model_dir / "points3D.txt").write_text("# 3D point list\n")
    return model_dir


def write_colmap_binary(model_dir: Path, frames: RealFrames, **kw) -> Path:
    pycolmap = pytest.importorskip("pycolmap")
    text_dir = model_dir.parent / (model_dir.name + "_text")
    write_colmap_text(text_dir, frames, **kw)
    rec = pycolmap.Reconstruction(str(text_dir))
    model_dir.mkdir(parents=True, exist_ok=True)
    rec.write_binary(str(model_dir))
    shutil.rmtree(text_dir)
    return model_dir


def write_transforms(folder: Path, frames: RealFrames, per_frame: bool = False) -> Path:
    """nerfstudio / instant-ngp transforms.json: OpenGL c2w, pixel intrinsics of a w x h image."""
    names = copy_images(frames, folder / "images")
    W, H = frames.size
    entries = []
    for name, c2w, k in zip(names, frames.c2w, frames.K):
        entry = {"file_path": f"images/{name}", "transform_matrix": (c2w @ GL).tolist()}
        if per_frame:
            entry.update(fl_x=k[0], fl_y=k[1], cx=k[2], cy=k[3], w=W, h=H)
        entries.append(entry)
    doc = {"camera_model": "OPENCV", "frames": entries[::-1]}  # order is the reader's job
    if not per_frame:
        k = frames.K[0]
        doc.update(fl_x=k[0], fl_y=k[1], cx=k[2], cy=k[3], w=W, h=H)
    (folder / "transforms.json").write_text(json.dumps(doc))
    return folder


def write_blender(folder: Path, frames: RealFrames, split: str, indices: list[int]) -> Path:
    """NeRF-synthetic transforms_<split>.json: camera_angle_x and extension-less file paths."""
    (folder / split).mkdir(parents=True, exist_ok=True)
    W = frames.size[0]
    entries = []
    for i in indices:
        shutil.copy(frames.files[i], folder / split / f"r_{i}.jpg")
        entries.append(
            {"file_path": f"./{split}/r_{i}", "transform_matrix": (frames.c2w[i] @ GL).tolist()}
        )
    doc = {"camera_angle_x": 2 * np.arctan(W / (2 * frames.K[0, 0])), "frames": entries}
    (folder / f"transforms_{split}.json").write_text(json.dumps(doc))
    return folder


def write_llff(folder: Path, frames: RealFrames) -> Path:
    """poses_bounds.npy: rows of [down, right, backwards | centre | (H, W, f)] + (near, far)."""
    copy_images(frames, folder / "images")
    W, H = frames.size
    rows = []
    for c2w, k in zip(frames.c2w, frames.K):
        mat = np.stack([c2w[:3, 1], c2w[:3, 0], -c2w[:3, 2], c2w[:3, 3], [H, W, k[0]]], axis=1)
        rows.append(np.concatenate([mat.reshape(-1), [0.5, 10.0]]))
    np.save(folder / "poses_bounds.npy", np.array(rows))
    return folder


def re10k_example(key: str, frames: RealFrames) -> dict:
    """A pixelSplat scene: normalised fx fy cx cy, 2 unused, 3x4 w2c row-major; JPEG bytes."""
    W, H = frames.size
    cams = []
    for c2w, k in zip(frames.c2w, frames.K):
        w2c = np.linalg.inv(c2w)[:3]
        cams.append([k[0] / W, k[1] / H, k[2] / W, k[3] / H, 0.0, 0.0, *w2c.reshape(-1)])
    images = [torch.tensor(np.frombuffer(f.read_bytes(), np.uint8).copy()) for f in frames.files]
    return {
        "key": key,
        "url": f"https://example.invalid/{key}",
        "timestamps": torch.arange(len(frames), dtype=torch.int64) * 33366 + 1000,
        "cameras": torch.tensor(cams, dtype=torch.float32),
        "images": images,
    }


def write_re10k(folder: Path, chunks: dict[str, list[tuple[str, RealFrames]]]) -> Path:
    """Chunks {file name: [(key, frames), ...]} plus index.json {key: chunk file}."""
    folder.mkdir(parents=True, exist_ok=True)
    index = {}
    for chunk_name, scenes in chunks.items():
        torch.save([re10k_example(key, frames) for key, frames in scenes], folder / chunk_name)
        index.update({key: chunk_name for key, _ in scenes})
    (folder / "index.json").write_text(json.dumps(index))
    return folder


def write_lvsm(root: Path, key: str, frames: RealFrames) -> Path:
    """LVSM layout: metadata/<key>.json (absolute image paths of ANOTHER machine) + images/<key>/."""
    names = [f"{i:05d}.jpg" for i in range(len(frames))]
    copy_images(frames, root / "images" / key, names)
    doc = {
        "scene_name": key,
        "frames": [
            {
                "image_path": f"/nonexistent/machine/re10k/test/images/{key}/{n}",
                "fxfycxcy": list(k),
                "w2c": np.linalg.inv(c2w).tolist(),
            }
            for n, k, c2w in zip(names, frames.K, frames.c2w)
        ],
    }
    (root / "metadata").mkdir(parents=True, exist_ok=True)
    (root / "metadata" / f"{key}.json").write_text(json.dumps(doc))
    with open(root / "full_list.txt", "a") as f:
        f.write(str((root / "metadata" / f"{key}.json").resolve()) + "\n")
    return root


def write_rayzer_json(scene_dir: Path, key: str, frames: RealFrames) -> Path:
    """RayZer DL3DV layout: <scene>/opencv_cameras.json + images (file_path relative)."""
    names = copy_images(frames, scene_dir / "images")
    doc = {
        "scene_name": key,
        "frames": [
            {
                "file_path": f"images/{n}",
                "fx": k[0],
                "fy": k[1],
                "cx": k[2],
                "cy": k[3],
                "w2c": np.linalg.inv(c2w).tolist(),
            }
            for n, k, c2w in zip(names, frames.K, frames.c2w)
        ],
    }
    (scene_dir / "opencv_cameras.json").write_text(json.dumps(doc))
    return scene_dir


# ------------------------------------------------------------------------------------------------
# checks


def read_cameras(scene_dir: Path) -> dict:
    return json.loads((Path(scene_dir) / "cameras.json").read_text())


def assert_scene_matches(
    scene_dir: Path,
    frames: RealFrames,
    pose_atol: float = 1e-9,
    k_rtol: float = 1e-9,
    same_bytes: bool = True,
    scale: float = 1.0,
) -> dict:
    """The converted scene has the original cameras (K scaled by ``scale``), the original image
    sizes and, with ``same_bytes``, byte-identical images."""
    doc = read_cameras(scene_dir)
    out = doc["frames"]
    assert len(out) == len(frames)
    c2w = np.array([f["c2w"] for f in out])
    K = np.array([[f["fx"], f["fy"], f["cx"], f["cy"]] for f in out])
    np.testing.assert_allclose(c2w, frames.c2w, atol=pose_atol, rtol=0)
    np.testing.assert_allclose(K, frames.K * scale, rtol=k_rtol, atol=0)
    W, H = frames.size
    for f, src in zip(out, frames.files):
        with Image.open(scene_dir / f["file"]) as im:
            assert (im.width, im.height) == (f["width"], f["height"])
            assert (im.width, im.height) == (round(W * scale), round(H * scale))
        if same_bytes:
            assert (scene_dir / f["file"]).read_bytes() == src.read_bytes()
    return doc


def assert_no_output(out: Path) -> None:
    """Nothing that looks like (part of) an output folder was left behind."""
    assert not out.exists(), f"{out} was created"
    leftovers = [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]
    assert not leftovers, leftovers


def jpeg_bytes(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=95, **kw)
    return buf.getvalue()


@pytest.fixture
def write() -> SimpleNamespace:
    return SimpleNamespace(
        copy_images=copy_images,
        colmap_text=write_colmap_text,
        colmap_binary=write_colmap_binary,
        transforms=write_transforms,
        blender=write_blender,
        llff=write_llff,
        re10k=write_re10k,
        re10k_example=re10k_example,
        lvsm=write_lvsm,
        rayzer_json=write_rayzer_json,
    )


@pytest.fixture
def check() -> SimpleNamespace:
    return SimpleNamespace(
        scene_matches=assert_scene_matches,
        no_output=assert_no_output,
        read_cameras=read_cameras,
        jpeg_bytes=jpeg_bytes,
    )


@pytest.fixture
def cli(capsys):
    """Run ``rayzer ARGS``: returns (exit code, stdout, stderr)."""

    def run(*args: str | Path) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run
