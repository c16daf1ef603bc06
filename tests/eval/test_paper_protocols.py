"""The E-RayZer and NAS3R evaluation splits as named protocols, exact depth through
``rayzer eval`` (depth fitted like the images), and the reports of both protocols."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from rayzer.cli import main
from rayzer.config import load_config
from rayzer.data.protocols import (
    ViewSplit,
    erayzer_split,
    make_split,
    nas3r_split,
    one_target_per_pass,
    overlap_tag,
)
from rayzer.data.synthetic import synth_command
from rayzer.eval.eval_data import _too_short, fit_depth
from rayzer.models import build_model
from rayzer.train.checkpoint import save_checkpoint


def test_erayzer_split_is_the_release_split():
    split = erayzer_split(97)
    assert split == ViewSplit((0, 21, 42, 64, 96), (10, 32, 53, 74, 85))
    assert make_split("erayzer", 300, 99, 99) == split  # counts are the protocol's own
    assert erayzer_split(96) is None  # too few frames for frames 0 … 96
    short = erayzer_split(24, span=24)
    assert len(short.views) == 10 and short.context[0] == 0 and short.context[-1] == 23
    assert len(short.context) == 5 and len(short.target) == 5


def test_nas3r_split_one_target_per_pass_and_overlap_tags():
    split = nas3r_split(24)
    assert split.context == (0, 23) and len(split.target) == 3
    assert all(0 < t < 23 for t in split.target)
    passes = one_target_per_pass(split)
    assert [p.target for p in passes] == [(t,) for t in split.target]
    assert all(p.context == split.context for p in passes)
    tags = [overlap_tag(x) for x in (0.01, 0.05, 0.29, 0.3, 0.6, 0.8, 0.95, float("nan"))]
    assert tags == ["outside", "small", "small", "medium", "large", "large", "outside", "unknown"]


def test_fit_depth_keeps_z_values_and_the_image_crop():
    depth = torch.arange(2 * 8 * 12, dtype=torch.float32).view(2, 8, 12)
    assert torch.equal(fit_depth(depth, (8, 12)), depth)  # same size: unchanged
    # 8×12 → 4×4: centre crop of the 8×8 middle (columns 2 … 9), every second pixel
    fitted = fit_depth(depth, (4, 4))
    torch.testing.assert_close(fitted, depth[:, 1::2, 2:10][:, :, 1::2])


def _erayzer_ckpt(root: Path) -> Path:
    cfg = load_config(
        "erayzer-tiny-cpu", ["data.image_size=32", "model.dim=32", "model.num_heads=2"]
    )
    torch.manual_seed(0)
    return save_checkpoint(root, 3, build_model(cfg.model), {}, cfg)


@pytest.fixture(scope="module")
def synth_data(tmp_path_factory) -> Path:
    """Two posed synthetic orbit scenes of 12 frames at 32 px, with exact depth."""
    root = tmp_path_factory.mktemp("synth")
    for i in range(2):
        synth_command("orbit", 200 + i, 12, 32, str(root / f"scene{i}"))
    return root


def _eval(tmp_path: Path, ckpt: Path, data: Path, name: str, *extra: str) -> dict:
    out = tmp_path / name
    args = ["eval", "--ckpt", str(ckpt), "--data", str(data), "--out", str(out)]
    assert main([*args, "--lpips", "none", "--device", "cpu", *extra]) == 0
    return json.loads((out / "metrics.json").read_text())


def test_rayzer_eval_paper_protocols_report_depth(tmp_path, synth_data):
    ckpt = _erayzer_ckpt(tmp_path / "run")
    m = _eval(tmp_path, ckpt, synth_data, "nas3r", "--protocol", "nas3r")
    assert (m["num_context"], m["num_target"]) == (2, 3)
    # one sample per target, each with the two context views, tagged by the pair's overlap
    names = [s["name"] for s in m["scenes"]][:3]
    assert names == [f"synth_orbit_200#{t}" for t in nas3r_split(12).target]
    assert len(m["scenes"]) == 6 and all(len(s["target"]) == 1 for s in m["scenes"])
    tags = m["scenes"][0]["tags"]
    assert tags["overlap_method"] == "geometric" and 0 <= tags["overlap"] <= 1
    assert tags["overlap_tag"] == overlap_tag(tags["overlap"])
    summary = m["summary"]["erayzer_with_targets"]
    assert summary["depth"]["num_images"] == 6 * 2  # the context views of every sample
    assert summary["depth"]["abs_rel"] > 0 and 0 <= summary["depth"]["delta_1_25"] <= 1
    assert sum(v["num_samples"] for v in summary["by_overlap"].values()) == 6
    assert m["summary"]["copy_nearest"]["depth"] is None  # no depth: null, not 0
    # posed scenes: the render at the aligned true cameras (rayzer.eval.gt_cameras) is a row
    aligned = m["summary"]["erayzer_at_gt_cameras"]
    assert aligned["psnr"] > 0 and aligned["pose"] is None and aligned["depth"]["num_images"] == 12
    assert "_at_gt_cameras" in json.dumps(m["definitions"]["images"])
    md = (tmp_path / "nas3r" / "metrics.md").read_text()
    assert "## Depth" in md and "## By overlap of the context pair" in md
    assert "depth" in m["definitions"] and "median_scaling" in m["definitions"]["depth"]

    m = _eval(tmp_path, ckpt, synth_data, "erayzer", "--protocol", "erayzer", "--span", "12")
    assert (m["num_context"], m["num_target"]) == (5, 5)
    split = erayzer_split(12, span=12)
    assert m["scenes"][0]["context"] == list(split.context)
    assert m["scenes"][0]["target"] == list(split.target)
    assert m["summary"]["erayzer_with_targets"]["depth"]["num_images"] == 2 * 5


def test_scenes_too_short_for_a_paper_protocol_say_why(tmp_path, synth_data, capsys):
    ckpt = _erayzer_ckpt(tmp_path / "run")
    args = ["eval", "--ckpt", str(ckpt), "--data", str(synth_data), "--lpips", "none"]
    assert main([*args, "--protocol", "erayzer", "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err
    # 12 frames hold 10 views: the window of frames 0 ... 96 is what they lack
    assert "12 frames < the erayzer protocol's 97-frame window" in err
    assert "--span N <= 12 evaluates shorter scenes" in err
    assert "context + " not in err


def test_a_scene_with_fewer_frames_than_the_erayzer_views_gets_no_span_hint():
    """--span must be >= 10 (the protocol's 10 views), so a scene of fewer than 10 frames can
    never be evaluated under it: the reason says so instead of suggesting a --span it rejects."""
    assert _too_short("erayzer", 24, None, 4, 4).endswith("--span N <= 24 evaluates shorter scenes")
    with_span = _too_short("erayzer", 20, 24, 4, 4)  # the window is --span's
    assert with_span.startswith("20 frames < the erayzer protocol's 24-frame window")
    reason = _too_short("erayzer", 8, None, 4, 4)
    assert reason == "8 frames < the erayzer protocol's 5 context + 5 target views"
    with pytest.raises(ValueError, match=">= 10 frames"):
        erayzer_split(8, span=8)  # what the old hint led to
