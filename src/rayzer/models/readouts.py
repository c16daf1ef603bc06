"""The geometric readout of the rendering decoder: how target tokens become pixels.

The paper's decoder *regresses* every pixel from its target token (``decoder.readout=regress``,
in :class:`rayzer.models.latent_scene.RayDecoder`). On a CPU budget that is slow to learn: the
LVSM oracle with exact rays stays below the pixel-wise mean of its inputs for 1,000 steps
(see ``docs/decisions.md``). The sweep readout renders by *reusing observed pixels* along the
target rays, as image-based rendering does (IBRNet, GNT), so that copying the right pixels is
first-order at initialisation; the transformer decides where to look:

* :class:`SweepReadout` (``sweep``): every target pixel is a plane-sweep: its ray is sampled at
  D depths, each sample is projected into every input view and its colour read bilinearly; the
  depth distribution comes from the decoder's logits plus the colour consistency of the views at
  that depth (a plane-sweep-stereo cue). The render is pixel-accurate in the cameras, so its
  gradient reaches the (predicted) poses and focal through every pixel.

It mixes its result per pixel with a regressed colour through a learned gate. Conventions:
OpenCV camera-to-world, normalised intrinsics ``(fx/W, fy/H, cx/W, cy/H)``, pixel centres at
``+0.5`` (DESIGN §3).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rayzer.geometry import camera_rays
from rayzer.nn.epipolar import MIN_DEPTH, project_ray_samples, softplus_inverse

#: Gate logit offset of the readout: the mix starts at sigmoid(2) ≈ 0.88 of the geometric
#: render and 0.12 of the regressed colour.
GATE_OFFSET = 2.0


def _gated(geometric: Tensor, regress: Tensor, coverage: Tensor | None = None) -> Tensor:
    """Per-pixel mix: geometric (B, Vt, 3, H, W); regress (B, Vt, ≥4, H, W) = RGB logits, gate
    logit, … ; coverage (B, Vt, 1, H, W) in [0, 1]: the share of the geometric render that came
    from observed pixels (None = all) → RGB (B, Vt, 3, H, W). Where nothing was observed the
    regressed colour takes over."""
    gate = torch.sigmoid(regress[:, :, 3:4] + GATE_OFFSET)
    if coverage is not None:
        gate = gate * coverage
    return gate * geometric + (1 - gate) * torch.sigmoid(regress[:, :, :3])


def sweep_colours(
    c2w: Tensor,
    K_norm: Tensor,
    in_images: Tensor,
    in_c2w: Tensor,
    in_K_norm: Tensor,
    num_depths: int,
    near: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """Read the input views' colours at D depths along every target pixel's ray.

    Args:
        c2w, K_norm: (B, Vt, 4, 4), (B, Vt, 4) target cameras.
        in_images: (B, Vi, C, H, W) input views (C = 3 for RGB; any extra per-pixel channels are
            read the same way); in_c2w, in_K_norm their cameras. The targets are rendered at the
            inputs' size H × W.
        num_depths: D, uniform in inverse depth over [0, 1/near] (0 = the point at infinity).
        near: nearest depth, in the cameras' world units.
    Returns:
        colours (B, Vi, C, Vt, H·W, D); valid (B, Vi, Vt, H·W, D) — the sample is in front of
        the input camera and inside its image; cos (B, Vi, Vt, H·W, D) — the cosine between the
        target ray and the input view's ray to the sample (1 = the same ray).
    """
    b, vi, _, h, w = in_images.shape
    vt = c2w.shape[1]
    _, d_cam = camera_rays(
        torch.eye(4, dtype=c2w.dtype, device=c2w.device),
        K_norm,
        h,
        w,
        normalize_dirs=False,
        normalized_intrinsics=True,
    )  # (B, Vt, H, W, 3) camera-frame directions with z = 1
    d_cam = d_cam.flatten(2, 3)  # (B, Vt, HW, 3)
    inv = torch.linspace(1.0 / near, 0.0, num_depths, device=c2w.device, dtype=c2w.dtype)
    smp = project_ray_samples(c2w, d_cam, in_c2w, in_K_norm, inv)
    gx, gy = 2 * smp.u - 1, 2 * smp.v - 1  # grid_sample coordinates (align_corners=False)
    valid = (smp.z > MIN_DEPTH) & (gx.abs() <= 1) & (gy.abs() <= 1)
    grid = torch.stack((gx, gy), dim=-1).clamp(-2, 2)  # clamp keeps far-off samples finite
    col = F.grid_sample(
        in_images.flatten(0, 1),
        grid.reshape(b * vi, vt * h * w, num_depths, 2),
        mode="bilinear",
        # "border": a valid sample in the outer half-pixel must not blend in black padding.
        padding_mode="border",
        align_corners=False,
    )  # (B·Vi, C, Vt·HW, D)
    col = col.view(b, vi, -1, vt, h * w, num_depths)
    # cos(target ray, sample − input centre) from per-pixel scalars: the sample is ray + s·off.
    ray, off, s = smp.ray, smp.offset, inv.view(1, 1, 1, 1, -1)
    rr = ray.square().sum(-1, keepdim=True)  # (B, Vi, Vt, HW, 1)
    ro = (ray * off).sum(-1, keepdim=True)
    oo = off.square().sum(-1, keepdim=True)
    cos = (rr + s * ro) * torch.rsqrt(rr * (rr + 2 * s * ro + s.square() * oo).clamp_min(1e-12))
    return col, valid.to(col.dtype), cos


class SweepReadout(nn.Module):
    """Plane-sweep image-based rendering driven by the decoder (see the module docstring).

    Per target pixel and depth sample d, the views' colours are averaged with weights
    ``softmax_k(γ · cos_k)`` over the valid views (γ ≥ 0 learned: prefer the input view whose
    ray is closest to the target ray, as unstructured lumigraph rendering does); the depth
    distribution is ``softmax_d(logit_d − β · var_d + log valid_fraction_d)`` with ``logit_d``
    from the decoder and ``var_d`` the colour variance of the views at that depth (β ≥ 0
    learned). The result is mixed with the regressed colour through the gate.

    Args:
        num_depths: D depth samples per ray; near: nearest depth (world units).
        init_consistency: starting β; init_view_sharpness: starting γ.
    """

    def __init__(
        self,
        num_depths: int = 16,
        near: float = 0.5,
        init_consistency: float = 20.0,
        init_view_sharpness: float = 10.0,
    ) -> None:
        super().__init__()
        self.num_depths = num_depths
        self.near = near
        self.raw_consistency = nn.Parameter(torch.tensor(softplus_inverse(init_consistency)))
        self.raw_view_sharpness = nn.Parameter(torch.tensor(softplus_inverse(init_view_sharpness)))

    @property
    def regress_channels(self) -> int:
        """Channels of the regression head per pixel: RGB logits, gate, D depth logits."""
        return 4 + self.num_depths

    def forward(
        self,
        c2w: Tensor,
        K_norm: Tensor,
        in_images: Tensor,
        in_c2w: Tensor,
        in_K_norm: Tensor,
        regress: Tensor,
    ) -> Tensor:
        """Target cameras (B, Vt, …), input views and cameras, the regression head's raw output
        (B, Vt, 4 + D, H, W) → RGB (B, Vt, 3, H, W)."""
        b, vt, _, h, w = regress.shape
        col, valid, cos = sweep_colours(
            c2w, K_norm, in_images, in_c2w, in_K_norm, self.num_depths, self.near
        )  # views on dim 1: col (B, Vi, 3, Vt, HW, D); valid, cos (B, Vi, Vt, HW, D)
        # View weights per depth sample: closest ray first, invalid views excluded.
        view_logit = (F.softplus(self.raw_view_sharpness) * cos).masked_fill(valid == 0, -1e4)
        wv = (torch.softmax(view_logit, dim=1) * valid).unsqueeze(2)  # all-invalid → zeros
        colour = (wv * col).sum(1)  # (B, 3, Vt, HW, D)
        # Colour consistency of the valid views at each depth.
        n_valid = valid.sum(1)  # (B, Vt, HW, D)
        vcol = valid.unsqueeze(2) * col
        inv_n = 1.0 / n_valid.clamp_min(1)
        mean = vcol.sum(1) * inv_n.unsqueeze(1)  # (B, 3, Vt, HW, D)
        # Summed over RGB: E[c²] − E[c]², clamped against rounding.
        var = ((vcol * col).sum((1, 2)) * inv_n - mean.square().sum(1)).clamp_min(0)
        depth_logit = regress[:, :, 4:].flatten(-2).transpose(-1, -2)  # (B, Vt, HW, D)
        depth_logit = (
            depth_logit
            - F.softplus(self.raw_consistency) * var
            + torch.log(n_valid / valid.shape[1] + 1e-3)
        )
        prob = torch.softmax(depth_logit, dim=-1)  # (B, Vt, HW, D)
        # A target ray that leaves every input view's frustum reads nothing (black): the share
        # of the depth distribution on observed samples says how far to trust the sweep, and
        # the sweep colour is renormalised over that share.
        coverage = (prob * (n_valid > 0).to(prob.dtype)).sum(-1)  # (B, Vt, HW)
        sweep = (prob.unsqueeze(1) * colour).sum(-1) / coverage.clamp_min(1e-6).unsqueeze(1)
        sweep = sweep.transpose(1, 2).reshape(b, vt, 3, h, w)
        return _gated(sweep, regress, coverage.reshape(b, vt, 1, h, w))
