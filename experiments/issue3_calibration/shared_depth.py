"""Experiment: a plane sweep whose depths come from one geometry shared by all targets.

``learn.py --shared-depth`` swaps the sweep readout's per-target-pixel depth logits (free for
every target view) for the agreement with a depth map predicted for each *input* view from the
scene reconstructor's input-view tokens: a depth sample along a target ray is likely when, in
the input views that see it, its inverse depth matches the inverse depth those views predict
at the pixel it projects to. All targets of a sample must then be explained by the same input
depth maps. The colour-variance (stereo) term and the regressed-colour gate stay.
"""

from __future__ import annotations

import types

import torch
import torch.nn.functional as F
from torch import nn

from rayzer.geometry import camera_rays
from rayzer.models.latent_scene import plucker_from_normalized
from rayzer.models.readouts import _gated, sweep_colours
from rayzer.nn import PatchUnembed
from rayzer.nn.epipolar import MIN_DEPTH, project_ray_samples, softplus_inverse


class SharedDepthSweep(nn.Module):
    def __init__(self, sweep: nn.Module, dim: int, patch: int) -> None:
        super().__init__()
        self.sweep = sweep  # the original readout: its β, γ, D and near are reused
        self.depth_head = PatchUnembed(dim, patch, out_channels=1, activation="none")
        self.raw_agreement = nn.Parameter(torch.tensor(softplus_inverse(5.0)))

    def forward(self, c2w, K_norm, in_images, in_c2w, in_K_norm, regress, in_tokens):
        sw = self.sweep
        b, vi, _, h, w = in_images.shape
        vt = c2w.shape[1]
        # (B, Vi, 1, H, W) inverse depth of every input pixel in [0, 1/near]
        inv_in = torch.sigmoid(self.depth_head(in_tokens, h, w)) / sw.near
        col, valid, cos = sweep_colours(
            c2w,
            K_norm,
            torch.cat((in_images, inv_in), 2),
            in_c2w,
            in_K_norm,
            sw.num_depths,
            sw.near,
        )
        col, inv_read = col[:, :, :3], col[:, :, 3]  # inv_read (B, Vi, Vt, HW, D)
        _, d_cam = camera_rays(
            torch.eye(4, dtype=c2w.dtype), K_norm, h, w, normalize_dirs=False,
            normalized_intrinsics=True,
        )  # fmt: skip
        inv = torch.linspace(1.0 / sw.near, 0.0, sw.num_depths, dtype=c2w.dtype)
        smp = project_ray_samples(c2w, d_cam.flatten(2, 3), in_c2w, in_K_norm, inv)
        inv_sample = 1.0 / smp.z.clamp_min(MIN_DEPTH)  # the sample's inverse depth in view k
        n_valid = valid.sum(1)
        disagreement = (valid * (inv_read - inv_sample).abs()).sum(1) / n_valid.clamp_min(1)

        view_logit = (F.softplus(sw.raw_view_sharpness) * cos).masked_fill(valid == 0, -1e4)
        wv = (torch.softmax(view_logit, dim=1) * valid).unsqueeze(2)
        colour = (wv * col).sum(1)
        vcol = valid.unsqueeze(2) * col
        inv_n = 1.0 / n_valid.clamp_min(1)
        mean = vcol.sum(1) * inv_n.unsqueeze(1)
        var = ((vcol * col).sum((1, 2)) * inv_n - mean.square().sum(1)).clamp_min(0)
        depth_logit = (
            -F.softplus(self.raw_agreement) * disagreement * sw.near * sw.num_depths
            - F.softplus(sw.raw_consistency) * var
            + torch.log(n_valid / vi + 1e-3)
        )
        prob = torch.softmax(depth_logit, dim=-1)
        coverage = (prob * (n_valid > 0).to(prob.dtype)).sum(-1)
        out = (prob.unsqueeze(1) * colour).sum(-1) / coverage.clamp_min(1e-6).unsqueeze(1)
        out = out.transpose(1, 2).reshape(b, vt, 3, h, w)
        return _gated(out, regress, coverage.reshape(b, vt, 1, h, w))


def install(model: nn.Module, dim: int, patch: int) -> None:
    """Replace ``model.decoder``'s sweep readout by :class:`SharedDepthSweep` (in place)."""
    dec = model.decoder
    dec.shared = SharedDepthSweep(dec.sweep, dim, patch)

    def forward(self, scene, c2w, K_norm, height, width):
        ray_tokens = self.ray_embed(plucker_from_normalized(c2w, K_norm, height, width))
        b, vt, n_tok = ray_tokens.shape[:3]
        tokens = scene.tokens
        seq = torch.cat((tokens.unsqueeze(1).expand(-1, vt, -1, -1), ray_tokens), 2).flatten(0, 1)
        out = self.transformer(seq).unflatten(0, (b, vt))
        regress = self.unembed(out[:, :, -n_tok:], height, width)
        vi = scene.num_input_views
        in_tokens = tokens[:, tokens.shape[1] - vi * n_tok :].unflatten(1, (vi, n_tok))
        return self.shared(c2w, K_norm, scene.images, scene.c2w, scene.K_norm, regress, in_tokens)

    dec.forward = types.MethodType(forward, dec)
