"""Adding a model is adding files: a tiny model defined and registered *here* trains with
``rayzer train``, is evaluated by ``rayzer eval`` and runs in ``rayzer infer`` with no change
anywhere else (the consumers know models only through :class:`rayzer.models.RayModel`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from rayzer.cli import main
from rayzer.config import load_config
from rayzer.data.synthetic import synth_command
from rayzer.models import (
    CameraPrediction,
    Capabilities,
    ModelOutput,
    RayModel,
    Rendered,
    available_models,
    register_model,
)
from rayzer.models.losses import photometric_loss
from rayzer.models.views import as_view_index, gather_views


@dataclass
class MeanColourConfig:
    """The whole config of the test model."""

    name: str = "mean-colour"
    patch_size: int = 8
    hidden: int = 4


@register_model("mean-colour")
class MeanColour(RayModel):
    """Cameras: identity rotations, translations from each view's mean colour. Scene: the
    inputs' mean image. Render: that image through a learned affine map, brightened by how far
    the target camera is from the origin (so the cameras matter)."""

    capabilities = Capabilities(predicts_cameras=True, outputs_depth=True)
    config_class = MeanColourConfig

    def __init__(self, cfg: MeanColourConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.pose = nn.Sequential(nn.Linear(3, cfg.hidden), nn.Tanh(), nn.Linear(cfg.hidden, 3))
        self.gain = nn.Parameter(torch.ones(()))
        self.bias = nn.Parameter(torch.zeros(()))

    def predict_cameras(self, images: Tensor) -> CameraPrediction:
        b, v = images.shape[:2]
        c2w = torch.eye(4, device=images.device).repeat(b, v, 1, 1)
        t = 0.1 * self.pose(images.mean(dim=(-1, -2)))  # (B, V, 3)
        c2w[..., :3, 3] = t - t[:, v // 2 : v // 2 + 1]  # the middle view at the identity
        K = torch.tensor([1.0, 1.0, 0.5, 0.5], device=images.device).expand(b, v, 4)
        return CameraPrediction(c2w, K, tokens=t, canonical=v // 2)

    def reconstruct(self, images, c2w, K_norm, view_positions=None) -> Tensor:
        return images.mean(dim=1)  # (B, 3, H, W)

    def render(self, scene: Tensor, c2w: Tensor, K_norm: Tensor, height: int, width: int):
        vt = c2w.shape[1]
        image = F.interpolate(scene, size=(height, width), mode="bilinear", align_corners=False)
        shift = c2w[..., :3, 3].norm(dim=-1)[..., None, None, None]  # (B, Vt, 1, 1, 1)
        rgb = torch.sigmoid(self.gain * image[:, None].expand(-1, vt, -1, -1, -1) + self.bias)
        rgb = (rgb + shift).clamp(0, 1)
        depth = torch.ones_like(rgb[:, :, :1]) + shift
        return Rendered(rgb, depth=depth)

    def forward(self, batch: Mapping[str, Tensor], input_index, target_index) -> ModelOutput:
        images = batch["image"]
        b, v, _, h, w = images.shape
        inp = as_view_index(input_index, b, v).to(images.device)
        tgt = as_view_index(target_index, b, v).to(images.device)
        cams = self.predict_cameras(images)
        scene = self.reconstruct(gather_views(images, inp), None, None)
        out = self.render(scene, gather_views(cams.c2w, tgt), gather_views(cams.K_norm, tgt), h, w)
        return ModelOutput(cams, scene, out, inp, tgt)

    def loss(self, output, batch, perceptual) -> dict[str, Tensor]:
        target = gather_views(batch["image"], output.target_index)
        terms = photometric_loss(output.rendered.rgb, target, perceptual)
        terms["shift"] = output.cameras.c2w[..., :3, 3].norm(dim=-1).mean().detach()
        return terms


@pytest.fixture
def run(capsys):
    def call(*args) -> str:
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        assert code == 0, captured.err
        return captured.out

    return call


def test_the_registry_and_the_config_know_the_new_model():
    assert "mean-colour" in available_models()
    cfg = load_config(None, ["model.name=mean-colour", "model.hidden=6", "data.image_size=32"])
    assert isinstance(cfg.model, MeanColourConfig) and cfg.model.hidden == 6
    with pytest.raises(ValueError, match="no_such"):
        load_config(None, ["model.name=mean-colour", "model.no_such=1"])


def test_a_model_defined_here_trains_evaluates_and_infers(run, tmp_path: Path):
    config = tmp_path / "mean-colour.yaml"
    config.write_text(
        "model: {name: mean-colour, hidden: 4}\n"
        "data: {image_size: 32, frames_per_clip: 8, num_input_views: 2, num_target_views: 2,"
        " span_min: 4, span_start_max: 8, span_end_max: 8}\n"
        "train: {steps: 3, batch_size: 2, warmup_steps: 1, ckpt_every: 0, log_every: 1,"
        " image_every: 0, num_threads: 1}\n"
    )
    out = tmp_path / "run"
    run("train", "--config", config, "--out", out)
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    logged = [r for r in records if "shift" in r]  # the model's own extra term is logged
    assert [r["step"] for r in logged] == [1, 2, 3]
    assert all(np.isfinite(r["loss"]) and "psnr" in r for r in logged)

    data = tmp_path / "scenes"
    for i in range(2):
        synth_command("orbit", 200 + i, 8, 32, str(data / f"scene{i}"))
    ev = tmp_path / "eval"
    run("eval", "--ckpt", out, "--data", data, "--out", ev, "--lpips", "none", "--quiet")
    metrics = json.loads((ev / "metrics.json").read_text())
    assert metrics["model"] == "mean-colour" and metrics["step"] == 3
    rows = metrics["summary"]
    assert {"mean-colour_with_targets", "mean-colour_without_targets"} <= set(rows)
    assert rows["mean-colour_with_targets"]["pose"]["num_cameras"] == 2 * 4

    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        pixels = rng.integers(0, 255, size=(40, 48, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(photos / f"{i:02d}.png")
    inf = tmp_path / "infer"
    stdout = run(
        "infer", "--images", photos, "--ckpt", out, "--out", inf,
        "--path-frames", "3", "--spiral-frames", "2", "--quiet",
    )  # fmt: skip
    assert f"wrote {inf}" in stdout
    cams = json.loads((inf / "cameras.json").read_text())
    assert len(cams["frames"]) == 4
    assert len(list((inf / "renders").glob("*.png"))) == 4
    # outputs_depth: inference writes the rendered depth of every input view
    depth = sorted((inf / "depth").glob("*.npy"))
    c2w = np.array(cams["frames"][0]["c2w"])
    d = np.load(depth[0])
    assert len(depth) == 4 and d.shape == (32, 32)
    np.testing.assert_allclose(d, 1.0 + np.linalg.norm(c2w[:3, 3]), rtol=1e-4)
