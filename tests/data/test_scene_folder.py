"""Scene-folder I/O: round trips, atomic writes, resizing, and clear errors on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rayzer.data import SynthConfig, read_scene_folder, render_clip, write_scene_folder
from rayzer.data.scene_folder import check_c2w
from rayzer.geometry import make_c2w, random_rotation, resize_intrinsics


def random_scene(V: int = 4, H: int = 12, W: int = 16, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    images = torch.rand(V, 3, H, W, generator=gen)
    c2w = make_c2w(random_rotation(V, generator=gen), torch.randn(V, 3, generator=gen)).float()
    K = torch.tensor([[20.0, 21.0, W / 2, H / 2]]).repeat(V, 1) + torch.rand(V, 4, generator=gen)
    depth = torch.rand(V, H, W, generator=gen) * 5 + 0.5
    depth[0, 0, :3] = float("inf")  # background pixels
    return images, c2w, K, depth


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    images, c2w, K, depth = random_scene()
    return write_scene_folder(tmp_path / "scene", images, c2w, K, depth=depth, scene="toy")


# ------------------------------------------------------------------------------------------------
# round trips


def test_round_trip_posed_with_depth(tmp_path: Path) -> None:
    images, c2w, K, depth = random_scene()
    out = write_scene_folder(
        tmp_path / "s", images, c2w, K, depth=depth, scene="toy", meta={"source": "test"}
    )
    assert sorted(p.name for p in out.iterdir()) == ["cameras.json", "depth", "images"]
    doc = json.loads((out / "cameras.json").read_text())
    assert doc["scene"] == "toy" and doc["source"] == "test" and "OpenCV" in doc["convention"]
    frame = doc["frames"][1]
    assert set(frame) == {"file", "width", "height", "fx", "fy", "cx", "cy", "c2w"}
    assert frame["file"] == "images/001.png" and (frame["width"], frame["height"]) == (16, 12)
    assert np.array(frame["c2w"]).shape == (4, 4)

    scene = read_scene_folder(out)
    assert scene.posed and scene.scene == "toy"
    assert scene.files == [f"images/{i:03d}.png" for i in range(4)]
    # 8-bit PNG quantisation is the only loss; cameras and depth are bit-exact.
    torch.testing.assert_close(scene.images, torch.round(images * 255) / 255, atol=1e-6, rtol=0)
    assert torch.equal(scene.c2w, c2w) and torch.equal(scene.K, K)
    assert torch.equal(scene.depth, depth)
    assert torch.equal(scene.index, torch.arange(4))
    assert set(scene.as_batch()) == {"image", "index", "c2w", "K", "depth"}


def test_round_trip_unposed_with_names(tmp_path: Path) -> None:
    images = random_scene(V=3)[0]
    out = write_scene_folder(tmp_path / "u", images, names=["a", "b", "c"])
    assert (out / "frames.json").is_file() and not (out / "cameras.json").exists()
    scene = read_scene_folder(out)
    assert not scene.posed and scene.c2w is None and scene.K is None and scene.depth is None
    assert scene.files == ["images/a.png", "images/b.png", "images/c.png"]
    assert set(scene.as_batch()) == {"image", "index"}


def test_indices_select_frames(folder: Path) -> None:
    full = read_scene_folder(folder)
    part = read_scene_folder(folder, indices=[3, 1])
    assert torch.equal(part.images, full.images[[3, 1]])
    assert torch.equal(part.c2w, full.c2w[[3, 1]]) and torch.equal(part.index, torch.tensor([3, 1]))
    with pytest.raises(ValueError, match="out of range"):
        read_scene_folder(folder, indices=[4])


def test_reduced_size_updates_intrinsics_and_keeps_warp_consistency(tmp_path: Path, warp) -> None:
    clip = render_clip(1, SynthConfig(family="walk", frames=4, height=96, width=128))
    out = write_scene_folder(tmp_path / "w", clip.images, clip.c2w, clip.K, depth=clip.depth)
    small = read_scene_folder(out, max_side=64)
    assert small.images.shape == (4, 3, 48, 64) and small.depth.shape == (4, 48, 64)
    torch.testing.assert_close(small.K, resize_intrinsics(clip.K, (96, 128), (48, 64)))
    assert read_scene_folder(out, max_side=1000).images.shape[-2:] == (96, 128)  # never enlarges
    assert read_scene_folder(out, size=(30, 40)).images.shape[-2:] == (30, 40)
    # Resized images + updated intrinsics + resampled depth are still mutually consistent.
    res = warp(small.images, small.depth, small.c2w, small.K, 0, 2)
    assert res.median_error < 0.03 and res.covisible > 0.3


# ------------------------------------------------------------------------------------------------
# atomic writes


def test_existing_target_and_overwrite(folder: Path) -> None:
    images, c2w, K, _ = random_scene(seed=1)
    with pytest.raises(FileExistsError):
        write_scene_folder(folder, images, c2w, K)
    write_scene_folder(folder, images, c2w, K, overwrite=True)
    scene = read_scene_folder(folder)
    assert scene.depth is None and torch.equal(scene.c2w, c2w)
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no temp/old dirs left


def test_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    images, c2w, K, _ = random_scene()
    with pytest.raises(TypeError):  # not JSON-serialisable, fails after images were written
        write_scene_folder(tmp_path / "x", images, c2w, K, meta={"bad": object()})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"images": torch.rand(2, 4, 8, 8)}, "images must have shape"),
        ({"c2w": torch.eye(4).repeat(3, 1, 1)}, "c2w must have shape"),
        ({"c2w": torch.diag(torch.tensor([2.0, 2, 2, 1])).repeat(2, 1, 1)}, "not rigid"),
        ({"K": torch.tensor([[-1.0, 1, 4, 4]] * 2)}, "focal"),
        ({"c2w": None}, "given together"),
        ({"depth": torch.ones(2, 8, 9)}, "depth must have shape"),
        ({"names": ["a", "a"]}, "unique"),
        ({"names": ["a", "../b"]}, "invalid file stems"),
    ],
)
def test_write_rejects_bad_input(tmp_path: Path, kwargs, match) -> None:
    args = {
        "images": torch.rand(2, 3, 8, 8),
        "c2w": torch.eye(4).repeat(2, 1, 1),
        "K": torch.tensor([[8.0, 8, 4, 4]] * 2),
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        write_scene_folder(tmp_path / "bad", **args)
    assert not (tmp_path / "bad").exists()


# ------------------------------------------------------------------------------------------------
# reader errors


def _edit_json(folder: Path, edit) -> None:
    path = folder / "cameras.json"
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))


def test_missing_folder_and_scene_file(tmp_path: Path, folder: Path) -> None:
    with pytest.raises(FileNotFoundError, match="scene folder not found"):
        read_scene_folder(tmp_path / "nope")
    (folder / "cameras.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"neither cameras\.json nor frames\.json"):
        read_scene_folder(folder)


def test_invalid_json(folder: Path) -> None:
    (folder / "cameras.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"cameras.json: invalid JSON"):
        read_scene_folder(folder)
    (folder / "cameras.json").write_text('{"frames": []}')
    with pytest.raises(ValueError, match="non-empty 'frames'"):
        read_scene_folder(folder)


def test_missing_and_unreadable_images_are_named(folder: Path) -> None:
    (folder / "images" / "002.png").write_bytes(b"definitely not a png")
    with pytest.raises(ValueError, match=r"cannot read image .*002\.png"):
        read_scene_folder(folder)
    (folder / "images" / "002.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing: .*002\.png"):
        read_scene_folder(folder)


def test_frames_must_match_files(folder: Path) -> None:
    (folder / "images" / "extra.png").write_bytes((folder / "images" / "000.png").read_bytes())
    with pytest.raises(ValueError, match=r"not listed.*extra\.png"):
        read_scene_folder(folder)
    assert read_scene_folder(folder, strict=False).images.shape[0] == 4
    (folder / "images" / "extra.png").unlink()

    def dup(doc):
        doc["frames"][1]["file"] = doc["frames"][0]["file"]

    _edit_json(folder, dup)
    with pytest.raises(ValueError, match="duplicate frame files"):
        read_scene_folder(folder, strict=False)


def test_size_mismatch_is_reported(folder: Path) -> None:
    def wrong_width(doc):
        doc["frames"][2]["width"] = 999

    _edit_json(folder, wrong_width)
    with pytest.raises(
        ValueError, match=r"002\.png: cameras.json says width = 999, the image has 16"
    ):
        read_scene_folder(folder)


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda m: m.__setitem__((0, 3), float("nan")), "non-finite"),
        (lambda m: m.__setitem__((slice(0, 3), 0), m[:3, 0] * 1.5), "not rigid"),
        (lambda m: m.__setitem__((slice(0, 3), 0), -m[:3, 0]), "not rigid"),  # reflection, det -1
        (lambda m: m.__setitem__((3, 0), 0.5), "last row"),
    ],
)
def test_bad_cameras_are_rejected(folder: Path, mutate, match) -> None:
    def edit(doc):
        m = np.array(doc["frames"][1]["c2w"])
        mutate(m)
        doc["frames"][1]["c2w"] = m.tolist()

    _edit_json(folder, edit)
    with pytest.raises(ValueError, match=rf"001\.png.*{match}"):
        read_scene_folder(folder)


def test_missing_camera_keys_and_depth(folder: Path) -> None:
    (folder / "depth" / "003.npy").unlink()
    with pytest.raises(FileNotFoundError, match=r"depth map missing for images/003\.png"):
        read_scene_folder(folder)
    assert read_scene_folder(folder, load_depth=False).depth is None

    def drop_fx(doc):
        del doc["frames"][0]["fx"]

    _edit_json(folder, drop_fx)
    with pytest.raises(ValueError, match=r"missing camera key\(s\) \['fx'\]"):
        read_scene_folder(folder, load_depth=False)


def test_check_c2w_accepts_float32_rigid_matrices() -> None:
    R = random_rotation(8, generator=torch.Generator().manual_seed(3))
    for m in make_c2w(R, torch.randn(8, 3)).float().numpy():
        check_c2w(m, "test")


@pytest.mark.parametrize("escape", ["../outside.png", "images/../../outside.png", "ABSOLUTE"])
def test_frames_outside_the_folder_are_refused(folder: Path, escape: str) -> None:
    """A hostile cameras.json must not make the reader open files elsewhere (here a readable
    image of the right size, which the reader once loaded as frame 0)."""
    from PIL import Image

    outside = folder.parent / "outside.png"
    Image.open(folder / "images" / "000.png").save(outside)
    name = str(outside) if escape == "ABSOLUTE" else escape
    _edit_json(folder, lambda doc: doc["frames"][0].update(file=name))
    with pytest.raises(ValueError, match=r"cameras\.json: frame 0: file .* points outside"):
        read_scene_folder(folder, strict=False)


def test_convert_refuses_frames_outside_the_scene_folder(folder: Path, tmp_path: Path) -> None:
    """The same rule in the scene-folder source of ``data convert`` / ``eval``."""
    from rayzer.data.convert import convert

    _edit_json(folder, lambda doc: doc["frames"][1].update(file="../../../../etc/hostname"))
    with pytest.raises(
        ValueError, match=r"frame 1: file '\.\./\.\./\.\./\.\./etc/hostname' points"
    ):
        convert(folder, tmp_path / "converted")
    assert not (tmp_path / "converted").exists()
