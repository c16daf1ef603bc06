"""A tiny RayZer must be able to fit one synthetic clip from images alone (issue 2)."""

import torch
import torch.nn.functional as F

from rayzer.data.synthetic import SynthConfig, render_clip
from rayzer.model_config import model_config
from rayzer.models import RayZer


def test_tiny_rayzer_overfits_one_clip():
    torch.manual_seed(0)
    clip = render_clip(3, SynthConfig(family="orbit", frames=8, height=32, width=32))
    images = clip.images.unsqueeze(0)
    cfg = model_config(
        dim=64,
        num_heads=4,
        patch_size=4,
        cam_layers=2,
        scene_layers=2,
        dec_layers=2,
        num_scene_tokens=32,
        pos_enc_dim=32,
    )
    model = RayZer(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, betas=(0.9, 0.95))
    inp, tgt = [0, 2, 4, 6], [1, 3, 5, 7]
    losses = []
    for _ in range(300):
        loss = F.mse_loss(model({"image": images}, inp, tgt).render, images[:, tgt])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    first, last = losses[0], sum(losses[-10:]) / 10
    assert last < first / 5, f"loss fell only from {first:.4f} to {last:.4f}"
