"""``rayzer demo`` end to end on tiny randomly initialised checkpoints (32×32, 2 + 2 views from
8-frame clips): every output exists and is valid, the numbers agree with the written files and
the ground truth of the held-out scene, and failures leave no output folder."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from PIL import Image

from _tiny import TINY_MODEL, tiny_data
from rayzer import bundled
from rayzer.config import load_config
from rayzer.data.scene_folder import read_scene_folder
from rayzer.data.synthetic import TEST_SEEDS, SynthConfig, render_clip
from rayzer.eval.image_metrics import psnr
from rayzer.geometry import relative_pose_errors
from rayzer.infer import demo
from rayzer.infer.model import load_model
from rayzer.infer.predict import Cameras, render_scene
from rayzer.models import build_model
from rayzer.train.checkpoint import save_checkpoint
from rayzer.utils.paths import OUTPUT_MARKER

FRAMES = 8  # novel-view frames: enough to check the video, cheap to render
SCENE_FILES = {
    "images", "cameras.json", "cameras_gt.json", "targets", "renders", "novel_views.mp4",
    "novel_views.gif", "novel_cameras.json", "contact_sheet.png", "cameras.png",
}  # fmt: skip


@pytest.fixture(scope="module")
def sensitive_ckpt(tmp_path_factory) -> Path:
    """A tiny RayZer whose renders depend visibly on the scene and the cameras.

    At its training initialisation (small, depth-scaled residual weights) a tiny model renders
    nearly the same image whatever the scene (changes of ~1e-5), which no PNG comparison can
    see; unit-gain random matrices make those changes ~0.05."""
    cfg = load_config("tiny-cpu", [*TINY_MODEL, *tiny_data(32)])
    torch.manual_seed(0)
    model = build_model(cfg.model)
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim >= 2:
                p.normal_(0.0, p.shape[-1] ** -0.5)
    return save_checkpoint(tmp_path_factory.mktemp("sensitive_run"), 7, model, {}, cfg)


@pytest.fixture(scope="module")
def demo_run(sensitive_ckpt: Path, tmp_path_factory) -> tuple[Path, dict]:
    """One default demo run (one scene, flat layout) through the API."""
    out = tmp_path_factory.mktemp("demo") / "out"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the autouse one-thread fixture is per test; this runs before it
    try:
        # explicit=False: these tests check the main model's files (the bundled explicit model
        # beside it: tests/infer/test_bundled_explicit.py)
        result = demo.run_demo(
            out, ckpt=sensitive_ckpt, frames=FRAMES, device="cpu", explicit=False
        )
    finally:
        torch.set_num_threads(threads)
    assert result.out == out
    return out, result.summary


def _png(path: Path) -> torch.Tensor:
    """A PNG as (3, H, W) float in [0, 1]."""
    return torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1) / 255.0


def _ground_truth(frames: list[int]):
    """The held-out clip the demo must have used: first test seed, the tiny config's clips."""
    cfg = SynthConfig(family="orbit", frames=8, height=32, width=32)
    return render_clip(TEST_SEEDS[0], cfg, frames=frames)


def test_outputs_exist_and_are_valid(demo_run) -> None:
    out, summary = demo_run
    assert {p.name for p in out.iterdir()} == SCENE_FILES | {"summary.json", OUTPUT_MARKER}
    assert json.loads((out / "summary.json").read_text()) == summary
    assert summary["layout"] == "flat" and summary["outputs"][-1] == "summary.json"

    targets = sorted(p.name for p in (out / "targets").iterdir())
    renders = sorted(p.name for p in (out / "renders").iterdir())
    assert targets == renders and len(targets) == 2  # data.num_target_views of the tiny config
    (scene,) = summary["scenes"]
    assert targets == [f"{f:03d}.png" for f in scene["target_frames"]]
    assert scene["name"] == "synth_orbit_1000000" and scene["seed"] == TEST_SEEDS[0]
    assert sorted(scene["input_frames"] + scene["target_frames"]) == scene["frames"]

    for key in ("rayzer", "copy", "mean_inputs"):
        assert math.isfinite(summary["psnr"][key]) and -1 <= summary["ssim"][key] <= 1
    pose = summary["pose"]
    for value in (
        pose["rot_err_deg_median"],
        pose["identity_rot_err_deg_median"],
        pose["focal"]["predicted_px"],
        pose["focal"]["true_px"],
        summary["peak_rss_mb"],
    ):
        assert math.isfinite(value) and value >= 0
    assert set(summary["timings_s"]) == {*demo.STAGES, "total"}
    assert summary["total_s"] >= sum(v for k, v in summary["timings_s"].items() if k != "total")
    assert summary["model"]["step"] == 7 and summary["model"]["meta"]["step"] == 7

    video = iio.imread(out / "novel_views.mp4", plugin="FFMPEG")
    assert video.shape == (FRAMES, 32, 32, 3)
    gif = iio.imread(out / "novel_views.gif")  # Pillow merges repeated frames: count varies
    assert gif.ndim == 4 and gif.shape[1:3] == (32, 32) and 1 <= gif.shape[0] <= FRAMES
    for name in ("contact_sheet.png", "cameras.png"):
        w, h = Image.open(out / name).size
        assert w > 100 and h > 100
    novel = json.loads((out / "novel_cameras.json").read_text())["frames"]
    assert len(novel) == FRAMES


def test_targets_and_cameras_match_the_held_out_scene(demo_run) -> None:
    """targets/ are the held-out clip's frames; cameras.json is a scene folder of predicted
    cameras (canonical view = identity) and cameras_gt.json holds the clip's true cameras."""
    out, summary = demo_run
    (scene,) = summary["scenes"]
    clip = _ground_truth(scene["frames"])
    for j, frame in enumerate(scene["frames"]):
        if frame in scene["target_frames"]:
            target = _png(out / "targets" / f"{frame:03d}.png")
            assert (target - clip.images[j]).abs().max() <= 0.5 / 255 + 1e-6

    pred = read_scene_folder(out)
    assert pred.files == [f"images/{f:03d}.png" for f in scene["frames"]]
    assert (pred.images - clip.images).abs().max() <= 0.5 / 255 + 1e-6
    canonical = len(scene["frames"]) // 2
    assert torch.allclose(pred.c2w[canonical], torch.eye(4), atol=1e-5)
    doc = json.loads((out / "cameras.json").read_text())
    roles = {fr["frame"]: fr["role"] for fr in doc["frames"]}
    assert [f for f, r in roles.items() if r == "target"] == scene["target_frames"]
    assert doc["ground_truth"] == "cameras_gt.json"

    gt_folder = out.parent / "gt_scene"  # the GT file is a scene-folder JSON in its own right
    shutil.copytree(out / "images", gt_folder / "images")
    shutil.copy(out / "cameras_gt.json", gt_folder / "cameras.json")
    gt = read_scene_folder(gt_folder)
    assert torch.allclose(gt.c2w, clip.c2w, atol=1e-6)
    assert torch.allclose(gt.K, clip.K, atol=1e-6)
    assert summary["pose"]["focal"]["true_px"] == pytest.approx(float(clip.K[0, 0]), rel=1e-5)
    assert summary["pose"]["focal"]["predicted_px"] == pytest.approx(float(pred.K[0, 0]), 1e-5)

    # The identity baseline is the true relative rotation, recomputed from the written GT.
    identity = torch.eye(4, dtype=torch.float64).expand(1, *gt.c2w.shape).clone()
    rot = relative_pose_errors(identity, gt.c2w.double()[None])["rot_deg"]
    assert summary["pose"]["identity_rot_err_deg_median"] == pytest.approx(
        rot.median().item(), abs=1e-3
    )
    rot_pred = relative_pose_errors(pred.c2w.double()[None], gt.c2w.double()[None])["rot_deg"]
    assert summary["pose"]["rot_err_deg_median"] == pytest.approx(
        rot_pred.median().item(), abs=1e-2
    )


def test_psnr_agrees_with_the_written_pngs(demo_run) -> None:
    out, summary = demo_run
    (scene,) = summary["scenes"]
    per_target = {}
    for path in sorted((out / "renders").iterdir()):
        per_target[path.stem] = psnr(_png(path), _png(out / "targets" / path.name)).item()
    for name, value in per_target.items():
        assert value == pytest.approx(scene["psnr_per_target"]["rayzer"][name], abs=0.5)
    mean = sum(per_target.values()) / len(per_target)
    assert mean == pytest.approx(summary["psnr"]["rayzer"], abs=0.5)


def test_video_renders_the_evaluated_scene(demo_run, sensitive_ckpt: Path) -> None:
    """The video's latent scene is the protocol's (inputs only, predicted cameras): rendered at
    the predicted target cameras read back from cameras.json it reproduces renders/; the path
    runs through the predicted cameras from the first view to the last."""
    out, summary = demo_run
    (scene,) = summary["scenes"]
    model = load_model(sensitive_ckpt, "cpu")
    sample = demo.demo_samples(
        demo.demo_synth_config(model.config.data, None), model.config.data, 1, 0
    )[0]
    pred = read_scene_folder(out)
    cams = Cameras(pred.c2w, pred.K, 32, 32, canonical=len(pred.files) // 2)
    latent = demo.protocol_scene(model, sample, cams)
    tgt = sample.target_index
    renders = render_scene(model, latent, Cameras(cams.c2w[tgt], cams.K[tgt], 32, 32))
    for render, frame in zip(renders, scene["target_frames"]):
        written = _png(out / "renders" / f"{frame:03d}.png")
        assert (render.clamp(0, 1) - written).abs().max() <= 1.5 / 255

    novel = json.loads((out / "novel_cameras.json").read_text())["frames"]
    assert torch.allclose(torch.tensor(novel[0]["c2w"]).float(), pred.c2w[0], atol=1e-5)
    assert torch.allclose(torch.tensor(novel[-1]["c2w"]).float(), pred.c2w[-1], atol=1e-5)


def test_cli_several_scenes_other_family(cli, tiny_ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "multi"
    code, stdout, err = cli(
        "demo", "--ckpt", tiny_ckpt, "--out", out, "--scenes", "2", "--seed", "5",
        "--family", "walk", "--frames", "4", "--no-explicit",
    )  # fmt: skip
    assert code == 0, err
    assert stdout.startswith(f"wrote {out}: 2 held-out walk scene(s)")
    # a model without depth or Gaussians says so, and where they come from
    assert "\nnote: RayZer outputs no depth maps and no 3D Gaussians" in stdout
    assert "`rayzer demo --ckpt explicit` (the bundled explicit-3D model)" in stdout
    assert "--ckpt RUN` with an E-RayZer or NAS3R run" in stdout
    assert err.count("rayzer demo: [") == len(demo.STAGES)  # one progress line per stage
    # which model made what: each scene file named once, not once per scene
    made_by = stdout.splitlines()[1]
    assert made_by.startswith("  RayZer (checkpoint): scenes/<scene>/images/, ")
    assert made_by.count("images/") == 1 and made_by.endswith(", summary.json")
    summary = json.loads((out / "summary.json").read_text())
    names = [f"synth_walk_{TEST_SEEDS[5]}", f"synth_walk_{TEST_SEEDS[6]}"]
    assert [s["name"] for s in summary["scenes"]] == names
    assert {p.name for p in out.iterdir()} == {"summary.json", "scenes", OUTPUT_MARKER}
    for name in names:
        assert {p.name for p in (out / "scenes" / name).iterdir()} == SCENE_FILES
        assert read_scene_folder(out / "scenes" / name).scene == name
    assert summary["data"]["family"] == "walk" and summary["data"]["model_family"] == "orbit"
    assert not summary["model"]["outputs_depth"] and not summary["model"]["outputs_gaussians"]
    assert summary["notes"]["depth_gaussians"].startswith("RayZer outputs no depth maps")
    assert summary["explicit"] == {"skipped": "--no-explicit"}
    for key in ("rayzer", "copy", "mean_inputs"):  # pooled = mean over scenes
        per_scene = [s["psnr"][key] for s in summary["scenes"]]
        assert summary["psnr"][key] == pytest.approx(sum(per_scene) / 2, abs=1e-4)


def test_missing_bundled_model_is_a_clear_error(cli, tmp_path: Path, helpers, monkeypatch) -> None:
    monkeypatch.setattr(
        bundled, "bundled_model_dir", lambda name="default": tmp_path / "empty_assets"
    )
    (tmp_path / "empty_assets").mkdir()
    out = tmp_path / "out"
    code, _, err = cli("demo", "--out", out)
    # progress lines ("load model ...") may come first; the error is the last line
    assert (
        code == 2 and err.splitlines()[-1].startswith("rayzer: error: ") and "Traceback" not in err
    )
    assert "no bundled model in this install" in err and "--ckpt" in err
    helpers.no_output(out)


def test_existing_output_is_kept_unless_overwrite(cli, tiny_ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    code, _, err = cli("demo", "--ckpt", tiny_ckpt, "--out", out, "--frames", "2")
    assert code == 2 and "already exists" in err and "--overwrite" in err
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
    # --overwrite replaces only a folder rayzer wrote: the user's file is never deleted
    code, _, err = cli("demo", "--ckpt", tiny_ckpt, "--out", out, "--frames", "2", "--overwrite")
    assert code == 2 and "rayzer did not write" in err and str(out) in err
    assert (out / "mine.txt").read_text() == "keep me"
    (out / "mine.txt").unlink()  # an empty folder may be replaced, and so may our own output
    for _ in range(2):
        code, _, err = cli(
            "demo", "--ckpt", tiny_ckpt, "--out", out, "--frames", "2", "--overwrite",
            "--no-explicit",
        )  # fmt: skip
        assert code == 0, err
        assert (out / "summary.json").is_file() and (out / OUTPUT_MARKER).is_file()


def test_failure_while_writing_leaves_no_output(
    cli, tiny_ckpt: Path, tmp_path: Path, helpers, monkeypatch
) -> None:
    def broken(*_args, **_kwargs):
        raise RuntimeError("encoder crashed")

    monkeypatch.setattr(demo, "write_mp4", broken)
    out = tmp_path / "out"
    args = ("--frames", "2", "--no-explicit")
    code, _, err = cli("demo", "--ckpt", tiny_ckpt, "--out", out, *args)
    assert code == 2 and "'write'" in err and "encoder crashed" in err
    helpers.no_output(out)


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--scenes", "0"], "--scenes must be in 1..32"),
        (["--seed", "-1"], "--seed must be in 0..999"),
        (["--seed", "999", "--scenes", "2"], "--seed must be in 0..998"),
        (["--frames", "1"], "--frames must be in 2..10000"),
        (["--fps", "0"], "--fps must be a positive number"),
    ],
)
def test_bad_options(cli, tiny_ckpt: Path, tmp_path: Path, helpers, args, fragment) -> None:
    out = tmp_path / "out"
    code, _, err = cli("demo", "--ckpt", tiny_ckpt, "--out", out, *args)
    assert code == 2 and fragment in err, err
    helpers.no_output(out)
