"""The RayZer paper's ablations (rayzer.models.ablations): shapes, where the cameras enter,
gradients into the camera path, and the CLI round trip (train → checkpoint → eval / demo)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from _tiny import TINY_MODEL, tiny_data, tiny_model_config
from rayzer.checkpoints import load_trained_model
from rayzer.cli import main
from rayzer.config import load_config
from rayzer.data.synthetic import synth_command
from rayzer.models import RayZerLatentCamera, RayZerNoPlucker, RayZerSceneFirst, build_model

ABLATIONS = ["rayzer-latent-camera", "rayzer-no-plucker", "rayzer-scene-first"]
#: The parameter whose gradient shows that the loss reaches each model's camera head.
CAMERA_HEAD = {
    "rayzer-latent-camera": "camera_estimator.head.2.weight",
    "rayzer-no-plucker": "camera_estimator.pose_head.2.weight",
    "rayzer-scene-first": "camera_estimator.pose_head.2.weight",
}


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _model(name: str, **changes):
    return build_model(tiny_model_config(name=name, **changes))


@pytest.mark.parametrize("name", ABLATIONS)
def test_shapes_and_every_parameter_is_trained(name):
    model = _model(name)
    images = torch.rand(2, 5, 3, 16, 24)
    out = model({"image": images}, [0, 2, 4], [1, 3])
    assert out.render.shape == (2, 2, 3, 16, 24)
    assert out.render.min() >= 0 and out.render.max() <= 1
    terms = model.loss(out, {"image": images}, None)
    terms["loss"].backward()
    # No input-ray embedding in any ablation, no target-ray one but in scene-first (it renders
    # from rays); every parameter gets a gradient (DDP needs it).
    rays = {n.split(".weight")[0] for n, _ in model.named_parameters() if "ray_embed" in n}
    assert rays == ({"decoder.ray_embed.proj"} if name == "rayzer-scene-first" else set())
    assert [n for n, p in model.named_parameters() if p.grad is None] == []
    assert dict(model.named_parameters())[CAMERA_HEAD[name]].grad.abs().sum() > 0


def test_latent_camera_has_no_geometric_cameras():
    model = _model("rayzer-latent-camera").eval()
    assert isinstance(model, RayZerLatentCamera)
    caps = model.capabilities
    assert not caps.predicts_cameras and not caps.needs_gt_cameras
    images = torch.rand(1, 4, 3, 16, 16)
    out = model({"image": images}, [0, 2], [1, 3])
    assert out.cameras is None and out.extras["codes"].shape == (1, 4, 32)
    with pytest.raises(NotImplementedError):
        model.predict_cameras(images)
    with pytest.raises(NotImplementedError, match="reconstruct_latent"):
        model.reconstruct(images, torch.eye(4).expand(1, 4, 4, 4), torch.ones(1, 4, 4))
    # the render is a function of the target's code: another code, another image
    codes = out.extras["codes"]
    again = model.render_latent(out.scene, codes[:, [1, 3]], 16, 16).rgb
    other = model.render_latent(out.scene, codes[:, [1, 3]] + 1.0, 16, 16).rgb
    torch.testing.assert_close(again, out.render)
    assert (other - again).abs().max() > 1e-3
    with pytest.raises(ValueError, match="readout must be 'regress'"):
        tiny_model_config(name="rayzer-latent-camera", decoder_readout="sweep")
    with pytest.raises(ValueError, match="sense"):
        tiny_model_config(name="rayzer-latent-camera", sense_head=True)


def test_no_plucker_cameras_enter_as_tokens():
    model = _model("rayzer-no-plucker").eval()
    assert isinstance(model, RayZerNoPlucker) and model.capabilities.predicts_cameras
    images = torch.rand(1, 4, 3, 16, 16)
    cams = model.predict_cameras(images)
    assert cams.c2w.shape == (1, 4, 4, 4) and cams.canonical == 2
    scene = model.reconstruct(images[:, :2], cams.c2w[:, :2], cams.K_norm[:, :2])
    moved = cams.c2w[:, 2:].clone()
    moved[..., :3, 3] += 0.5
    base = model.render(scene, cams.c2w[:, 2:], cams.K_norm[:, 2:], 16, 16).rgb
    assert (model.render(scene, moved, cams.K_norm[:, 2:], 16, 16).rgb - base).abs().max() > 1e-4
    # the input views' cameras reach the scene tokens too
    other = model.reconstruct(images[:, :2], moved[:, :2], cams.K_norm[:, :2])
    assert (other.tokens - scene.tokens).abs().max() > 1e-6


def test_scene_first_builds_the_scene_without_cameras():
    model = _model("rayzer-scene-first").eval()
    assert isinstance(model, RayZerSceneFirst)
    images = torch.rand(1, 4, 3, 16, 16)
    cams = model.predict_cameras(images)
    torch.testing.assert_close(cams.c2w[:, 2], torch.eye(4)[None])  # canonical middle view
    # the scene tokens do not depend on the cameras they are given
    a = model.reconstruct(images[:, :2], cams.c2w[:, :2], cams.K_norm[:, :2])
    b = model.reconstruct(images[:, :2], torch.eye(4).expand(1, 2, 4, 4), cams.K_norm[:, :2])
    torch.testing.assert_close(a.tokens, b.tokens)
    # ... and the cameras depend on the scene: other latent scene tokens, other cameras
    with torch.no_grad():
        model.reconstructor.scene_tokens.add_(torch.randn_like(model.reconstructor.scene_tokens))
    moved = model.predict_cameras(images)
    assert (moved.c2w - cams.c2w).abs().max() > 1e-6
    with pytest.raises(ValueError, match="num_tokens"):
        tiny_model_config(name="rayzer-scene-first", num_scene_tokens=0, keep_input_tokens=True)


@pytest.mark.parametrize("name", ABLATIONS)
def test_presets_mirror_tiny_cpu(name):
    preset, tiny = load_config(f"{name}-tiny-cpu"), load_config("tiny-cpu")
    assert preset.model.name == name and preset.data == tiny.data
    assert {**vars(preset.train), "out_dir": None} == {**vars(tiny.train), "out_dir": None}
    assert preset.model.dim == tiny.model.dim and preset.model.scene == tiny.model.scene


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("scenes")
    for i in range(2):
        synth_command("orbit", 300 + i, 8, 32, str(data / f"scene{i}"))
    return data


@pytest.mark.parametrize("name", ABLATIONS)
def test_cli_train_checkpoint_eval_demo(name, scenes, tmp_path, capsys):
    def cli(*args) -> tuple[int, str]:
        code = main([str(a) for a in args])
        return code, capsys.readouterr().err

    out = tmp_path / "run"
    train = ["train.steps=3", "train.batch_size=2", "train.warmup_steps=1", "train.log_every=1"]
    train += ["train.ckpt_every=0", "train.image_every=0", "train.num_threads=1"]
    code, err = cli("train", "--config", f"{name}-tiny-cpu", *TINY_MODEL, *tiny_data(32), *train,
                    "--out", out)  # fmt: skip
    assert code == 0, err
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3]

    trained = load_trained_model(out, torch.device("cpu"))
    assert trained.model.name == name and trained.step == 3
    rebuilt = build_model(trained.config.model)
    rebuilt.load_state_dict(trained.model.state_dict())
    images = torch.rand(1, 4, 3, 32, 32)
    torch.manual_seed(0)
    a = trained.model.eval()({"image": images}, [0, 2], [1, 3]).render
    b = rebuilt.eval()({"image": images}, [0, 2], [1, 3]).render
    torch.testing.assert_close(a, b)

    ev = tmp_path / "eval"
    code, err = cli(
        "eval", "--ckpt", out, "--data", scenes, "--out", ev, "--lpips", "none", "--quiet"
    )
    assert code == 0, err
    metrics = json.loads((ev / "metrics.json").read_text())
    assert metrics["model"] == name and metrics["step"] == 3
    rows = metrics["summary"]
    demo_args = ("demo", "--ckpt", out, "--out", tmp_path / "demo", "--frames", "2")
    if name == "rayzer-latent-camera":
        assert rows[name]["pose"] is None and rows[name]["psnr"] > 0  # pose prints "—"
        code, err = cli(*demo_args)
        assert code == 2 and "does not predict cameras" in err and "Traceback" not in err
    else:
        assert rows[f"{name}_with_targets"]["pose"]["num_cameras"] == 2 * 4
        code, err = cli(*demo_args)
        assert code == 0, err
        assert (tmp_path / "demo" / "summary.json").is_file()
