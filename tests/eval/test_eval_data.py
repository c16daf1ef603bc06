"""Evaluation data: views fitted to the model input with consistent intrinsics, per-scene
splits from protocols and index files, skipped scenes with reasons."""

from __future__ import annotations

import pytest
import torch

from rayzer.data.protocols import ViewSplit, even_split, write_index
from rayzer.data.scene_folder import write_scene_folder
from rayzer.eval.eval_data import (
    fit_views,
    list_scene_entries,
    load_sample,
    parse_protocol,
    plan_scenes,
    resolve_dataset,
)
from rayzer.geometry import look_at, project_points


def test_fit_views_crops_scales_and_keeps_projection_consistent():
    # A 48x40 view of a 3D point; after "resize to cover + centre crop" to 32x32 the point must
    # project where its pixel went: u' = (u - x0) * 32 / 40 with x0 = 4.
    K = torch.tensor([[50.0, 52.0, 23.0, 21.0]])
    c2w = torch.eye(4)[None]
    point = torch.tensor([[0.3, -0.2, 2.0]])
    uv, _ = project_points(point, c2w[0], K[0])
    images = torch.zeros(1, 3, 40, 48)
    _, K_fit = fit_views(images, K, (32, 32))
    s = 32 / 40
    assert torch.allclose(K_fit[0], torch.tensor([50 * s, 52 * s, (23 - 4) * s, 21 * s]))
    uv_fit, _ = project_points(point, c2w[0], K_fit[0])
    assert torch.allclose(uv_fit, torch.stack(((uv[..., 0] - 4) * s, uv[..., 1] * s), -1))


def test_fit_views_moves_pixels_with_the_intrinsics():
    # A bright 4x4 block centred at (u, v) = (30, 20) in a 48x40 image lands at the pixel the
    # updated principal-point shift predicts.
    images = torch.zeros(1, 3, 40, 48)
    images[..., 18:22, 28:32] = 1.0
    fitted, K_fit = fit_views(images, torch.tensor([[40.0, 40.0, 30.0, 20.0]]), (32, 32))
    weight = fitted[0, 0]
    v, u = torch.meshgrid(torch.arange(32) + 0.5, torch.arange(32) + 0.5, indexing="ij")
    centroid = torch.stack(((weight * u).sum(), (weight * v).sum())) / weight.sum()
    assert torch.allclose(centroid, K_fit[0, 2:], atol=0.05)  # (cx, cy) sits on the block
    assert fitted.shape == (1, 3, 32, 32) and fitted.min() >= 0 and fitted.max() <= 1


def _scene(root, name: str, frames: int, posed: bool = True):
    eye = torch.stack((torch.arange(frames) * 0.1, torch.zeros(frames), torch.zeros(frames)), -1)
    c2w = look_at(
        eye - torch.tensor([0, 0, 3.0]), eye, torch.tensor([0, -1.0, 0]).expand(frames, 3)
    )
    K = torch.tensor([20.0, 20.0, 8.0, 8.0]).expand(frames, 4)
    images = torch.rand(frames, 3, 16, 16)
    return write_scene_folder(
        root / name, images, c2w if posed else None, K if posed else None, scene=name
    )


def test_plan_scenes_protocols_index_and_skips(tmp_path):
    _scene(tmp_path, "a", 9)
    _scene(tmp_path, "b", 3)
    _scene(tmp_path, "c", 12, posed=False)
    entries = list_scene_entries(tmp_path)
    assert [(e.name, e.num_frames, e.posed) for e in entries] == [
        ("a", 9, True),
        ("b", 3, True),
        ("c", 12, False),
    ]
    scenes, skipped = plan_scenes(entries, "even", 2, 2)
    assert [s.name for s in scenes] == ["a", "c"]
    assert scenes[0].split == even_split(9, 2, 2)
    assert skipped == [{"scene": "b", "reason": "3 frames < 2 context + 2 target views"}]
    r1, _ = plan_scenes(entries, "random", 3, 2, seed=5)
    r2, _ = plan_scenes(entries, "random", 3, 2, seed=5)
    assert [s.split for s in r1] == [s.split for s in r2]  # deterministic by seed

    index = write_index({"a": ViewSplit((0, 8), (4,)), "b": None}, tmp_path / "idx.json")
    scenes, skipped = plan_scenes(entries, str(index), 2, 2)
    assert [(s.name, s.split.context) for s in scenes] == [("a", (0, 8))]
    assert {s["scene"] for s in skipped} == {"b", "c"}
    write_index({"a": ViewSplit((0, 20), (4,))}, tmp_path / "bad.json")
    with pytest.raises(ValueError, match="out of range"):
        plan_scenes(entries, str(tmp_path / "bad.json"), 2, 2)


def test_load_sample_and_resolve(tmp_path):
    _scene(tmp_path / "data", "a", 9)
    root, fmt = resolve_dataset(tmp_path / "data", tmp_path / "work")
    assert (root, fmt) == (tmp_path / "data", "scene")
    (entry,) = list_scene_entries(root)
    scenes, _ = plan_scenes([entry], "even", 2, 1)
    sample, files = load_sample(scenes[0], (16, 16))
    assert files == ["images/000.png", "images/004.png", "images/008.png"]
    assert sample.images.shape == (3, 3, 16, 16)
    assert sample.frame_index.tolist() == [0, 4, 8]
    assert sample.input_index.tolist() == [0, 2] and sample.target_index.tolist() == [1]
    assert sample.c2w.shape == (3, 4, 4) and torch.allclose(
        sample.K[0], torch.tensor([20.0, 20, 8, 8])
    )
    with pytest.raises(FileNotFoundError, match="not found"):
        resolve_dataset(tmp_path / "nope", tmp_path / "work")


def test_parse_protocol(tmp_path):
    assert parse_protocol("even") == ("even", None)
    with pytest.raises(FileNotFoundError, match="index file not found"):
        parse_protocol(str(tmp_path / "missing.json"))
    with pytest.raises(ValueError, match="--protocol"):
        parse_protocol("diagonal")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda fr: fr["c2w"][0].__setitem__(0, float("nan")), "c2w has non-finite entries"),
        (lambda fr: fr.__setitem__("fx", -3.0), "focal lengths must be > 0"),
        (lambda fr: fr.pop("fy"), r"missing camera key\(s\) \['fy'\]"),
        (lambda fr: fr.__setitem__("c2w", [[2 * v for v in row[:3]] + row[3:] for row in
                                           fr["c2w"][:3]] + [fr["c2w"][3]]), "c2w rotation is not rigid"),
    ],
    ids=["nan", "negative-focal", "missing-key", "scaled"],
)  # fmt: skip
def test_a_damaged_camera_is_reported_even_in_a_frame_not_evaluated(tmp_path, edit, message):
    """Eval read the cameras of the frames it used only: a NaN / non-rigid / negative-focal
    camera elsewhere in cameras.json passed silently (`rayzer data check` reported it)."""
    import json

    _scene(tmp_path, "a", 9)
    path = tmp_path / "a" / "cameras.json"
    doc = json.loads(path.read_text())
    edit(doc["frames"][1])
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=rf"{path} frame images/001\.png: {message}"):
        list_scene_entries(tmp_path)


def test_a_missing_frame_file_is_reported_even_if_not_evaluated(tmp_path):
    _scene(tmp_path, "a", 9)
    (tmp_path / "a" / "images" / "001.png").unlink()
    with pytest.raises(
        FileNotFoundError, match=r"image listed in the scene file is missing: .*001"
    ):
        list_scene_entries(tmp_path)
