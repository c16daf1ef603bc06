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
from torch.utils.checkpoint import checkpoint

from rayzer.geometry import camera_rays
from rayzer.nn.epipolar import MIN_DEPTH, relative_poses, softplus_inverse

#: Gate logit offset of the readout: the mix starts at sigmoid(2) ≈ 0.88 of the geometric
#: render and 0.12 of the regressed colour.
GATE_OFFSET = 2.0
#: Elements of one chunk of the sweep's (B, Vi, T, P, D) tensors: 2^18 floats (1 MiB). Smaller
#: chunks keep their temporaries in cache and out of fresh memory mappings (page faults), at a
#: fixed cost per chunk in Python and dispatch overhead; 2^17..2^18 measured fastest on 2 cores.
SWEEP_CHUNK_ELEMENTS = 1 << 18
#: Above this many sweep samples (B·Vi·Vt·H·W·D) a training step recomputes each chunk in its
#: backward pass instead of keeping the chunk's tensors (about 20 floats per sample), so the
#: readout's memory stays bounded (~0.7 GB) at any number of views, for ~30% more readout time.
SWEEP_STORE_ELEMENTS = 1 << 23


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
    h, w = in_images.shape[-2:]
    inv = sweep_inverse_depths(num_depths, near, c2w)
    return _sample_input_views(
        c2w, target_directions(K_norm, h, w), in_images, in_c2w, in_K_norm, inv
    )


def target_directions(K_norm: Tensor, height: int, width: int) -> Tensor:
    """Camera-frame ray directions (z = 1) of every pixel: K_norm (B, Vt, 4) → (B, Vt, H·W, 3)."""
    eye = torch.eye(4, dtype=K_norm.dtype, device=K_norm.device)
    _, d_cam = camera_rays(
        eye, K_norm, height, width, normalize_dirs=False, normalized_intrinsics=True
    )
    return d_cam.flatten(2, 3)


def sweep_inverse_depths(num_depths: int, near: float, like: Tensor) -> Tensor:
    """(D,) inverse depths uniform over [1/near, 0] (0 = the point at infinity)."""
    return torch.linspace(1.0 / near, 0.0, num_depths, device=like.device, dtype=like.dtype)


def _sample_input_views(
    c2w: Tensor, d_cam: Tensor, in_images: Tensor, in_c2w: Tensor, in_K_norm: Tensor, inv: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`sweep_colours` for the rays d_cam (B, Vt, P, 3) (camera frame, z = 1) of the
    targets c2w (B, Vt, 4, 4) at inverse depths inv (D,) → colours (B, Vi, C, Vt, P, D),
    valid (bool) and cos (B, Vi, Vt, P, D).

    The same projection as :func:`rayzer.nn.epipolar.project_ray_samples`, written for few
    passes over the (B, Vi, Vt, P, D) samples (they are the largest tensors of the decoder):
    all three coordinates in one op, the grid_sample coordinates straight from the projected
    ones, in the (…, 2) layout grid_sample reads."""
    b, vi = in_images.shape[:2]
    vt, n = d_cam.shape[1:3]
    num_depths = inv.shape[0]
    rot, off = relative_poses(c2w, in_c2w)  # (B, Vt, Vi, 3, 3), (B, Vt, Vi, 3)
    # Coordinates as planes (B, Vi, Vt, 3, P): elementwise ops run fastest over long
    # contiguous runs, and the per-sample tensors below inherit this layout.
    ray = (rot @ d_cam.transpose(-1, -2)[:, :, None]).transpose(1, 2).contiguous()
    off = off.transpose(1, 2)  # (B, Vi, Vt, 3)
    # Homogeneous sample at inverse depth s in the input camera: ray + s · off.
    step = (off[..., None] * inv)[..., None, :]  # (B, Vi, Vt, 3, 1, D)
    xy = ray[:, :, :, :2, :, None] + step[:, :, :, :2]  # (B, Vi, Vt, 2, P, D)
    z = ray[:, :, :, 2, :, None] + step[:, :, :, 2]  # (B, Vi, Vt, P, D)
    inv_z = z.clamp_min(MIN_DEPTH).reciprocal()
    K = in_K_norm[:, :, None, :, None, None]  # (B, Vi, 1, 4, 1, 1)
    # grid_sample coordinates (align_corners=False): 2 (f · x/z + c) − 1 per axis.
    g = torch.addcmul(2 * K[:, :, :, 2:] - 1, xy * inv_z[:, :, :, None], 2 * K[:, :, :, :2])
    valid = (z > MIN_DEPTH) & (g.abs() <= 1).all(3)  # (B, Vi, Vt, P, D)
    # the clamp keeps far-off samples finite
    grid = g.clamp(-2, 2).permute(0, 1, 2, 4, 5, 3).reshape(b * vi, vt * n, num_depths, 2)
    col = F.grid_sample(
        in_images.flatten(0, 1),
        grid,
        mode="bilinear",
        # "border": a valid sample in the outer half-pixel must not blend in black padding.
        padding_mode="border",
        align_corners=False,
    )  # (B·Vi, C, Vt·P, D)
    col = col.view(b, vi, -1, vt, n, num_depths)
    # cos(target ray, sample − input centre) from per-pixel scalars: the sample is ray + s·off.
    rr = ray.square().sum(3)[..., None]  # (B, Vi, Vt, P, 1)
    ro = (ray * off[..., None]).sum(3)[..., None]
    oo = off.square().sum(-1)[..., None, None]  # (B, Vi, Vt, 1, 1)
    along = torch.addcmul(rr, inv, ro)  # rr + s·ro
    sq = torch.addcmul(torch.addcmul(along, inv, ro), inv.square(), oo)  # |ray + s·off|²
    cos = along * torch.rsqrt(rr * sq.clamp_min(1e-12))
    return col, valid, cos


def _mix_views_and_depths(
    col: Tensor,
    valid: Tensor,
    cos: Tensor,
    depth_logit: Tensor,
    raw_view_sharpness: Tensor,
    raw_consistency: Tensor,
) -> tuple[Tensor, Tensor]:
    """The sweep's blend (:class:`SweepReadout`) of colours (B, Vi, 3, Vt, P, D), valid (bool)
    and cos (B, Vi, Vt, P, D), with the decoder's depth logits (B, Vt, P, D) → sweep colour
    (B, 3, Vt, P) and coverage (B, Vt, P)."""
    # Invalid samples are zeroed once (valid ∈ {0, 1}, so every product below equals the one
    # with the mask applied to the weights instead).
    vcol = valid.unsqueeze(2) * col  # (B, Vi, 3, Vt, P, D)
    # Colour consistency of the valid views at each depth.
    n_valid = valid.sum(1, dtype=col.dtype)  # (B, Vt, P, D)
    inv_n = 1.0 / n_valid.clamp_min(1)
    mean = vcol.sum(1) * inv_n.unsqueeze(1)  # (B, 3, Vt, P, D)
    # Summed over RGB: E[c²] − E[c]², clamped against rounding.
    var = (vcol.square().sum((1, 2)) * inv_n - mean.square().sum(1)).clamp_min(0)
    depth_logit = (
        depth_logit - F.softplus(raw_consistency) * var + torch.log(n_valid / valid.shape[1] + 1e-3)
    )
    prob = torch.softmax(depth_logit, dim=-1)  # (B, Vt, P, D)
    # A target ray that leaves every input view's frustum reads nothing (black): the share
    # of the depth distribution on observed samples says how far to trust the sweep, and
    # the sweep colour is renormalised over that share.
    coverage = (prob * (n_valid > 0).to(prob.dtype)).sum(-1)  # (B, Vt, P)
    # View weights per depth sample: closest ray first, invalid views excluded (an
    # all-invalid sample weighs its zeroed colours uniformly: zero).
    view_logit = (F.softplus(raw_view_sharpness) * cos).masked_fill(~valid, -1e4)
    weight = torch.softmax(view_logit, dim=1) * prob.unsqueeze(1)  # (B, Vi, Vt, P, D)
    sweep = (weight.unsqueeze(2) * vcol).sum((1, -1)) / coverage.clamp_min(1e-6).unsqueeze(1)
    return sweep, coverage


def _sweep_chunk(
    c2w: Tensor,
    d_cam: Tensor,
    in_images: Tensor,
    in_c2w: Tensor,
    in_K_norm: Tensor,
    inv: Tensor,
    depth_logit: Tensor,
    raw_view_sharpness: Tensor,
    raw_consistency: Tensor,
) -> tuple[Tensor, Tensor]:
    """One chunk of target rays d_cam (B, T, P, 3) → sweep colour (B, 3, T, P), coverage (B, T, P)."""
    col, valid, cos = _sample_input_views(c2w, d_cam, in_images, in_c2w, in_K_norm, inv)
    return _mix_views_and_depths(col, valid, cos, depth_logit, raw_view_sharpness, raw_consistency)


def sweep_chunks(
    batch: int, input_views: int, target_views: int, pixels: int, depths: int, budget: int
) -> tuple[int, int]:
    """Chunk sizes (target views, pixels) such that a chunk's (B, Vi, T, P, D) tensors have at
    most ``budget`` elements (at least one pixel of one view): whole target views together
    when one view fits, else runs of pixels of one view."""
    per_pixel = batch * input_views * depths
    px = max(1, min(pixels, budget // per_pixel))
    if px < pixels:
        return 1, px
    return max(1, budget // (per_pixel * pixels)), pixels


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
        #: Elements of one chunk's (B, Vi, T, P, D) tensors (see :meth:`forward`).
        self.chunk_elements = SWEEP_CHUNK_ELEMENTS
        #: Under autograd, chunks are recomputed in the backward pass instead of stored when
        #: all of them together have more than this many (B, Vi, Vt, H·W, D) elements.
        self.store_elements = SWEEP_STORE_ELEMENTS

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
        (B, Vt, 4 + D, H, W) → RGB (B, Vt, 3, H, W).

        The sweep's per-sample tensors are (B, Vi, Vt, H·W, D): they are computed in chunks of
        target rays (:attr:`chunk_elements` elements each) small enough to stay in a core's
        cache, and under autograd each chunk is recomputed in the backward pass instead of
        stored, so memory stays bounded at any number of views (the cost stays proportional to
        Vt · Vi · H·W · D)."""
        b, vt, _, h, w = regress.shape
        vi = in_images.shape[1]
        d_cam = target_directions(K_norm, h, w)  # (B, Vt, HW, 3)
        inv = sweep_inverse_depths(self.num_depths, self.near, c2w)
        depth_logit = regress[:, :, 4:].flatten(-2).transpose(-1, -2)  # (B, Vt, HW, D)
        samples = b * vi * vt * h * w * self.num_depths
        recompute = torch.is_grad_enabled() and samples > self.store_elements
        rows: list[list[tuple[Tensor, Tensor]]] = []
        views, pixels = sweep_chunks(b, vi, vt, h * w, self.num_depths, self.chunk_elements)
        # split (not indexing): its backward is one concatenation of the chunks' gradients
        for c2w_t, d_t, logit_t in zip(
            c2w.split(views, dim=1), d_cam.split(views, dim=1), depth_logit.split(views, dim=1)
        ):
            rows.append([])
            for d_p, logit_p in zip(d_t.split(pixels, dim=2), logit_t.split(pixels, dim=2)):
                args = (
                    c2w_t,
                    d_p,
                    in_images,
                    in_c2w,
                    in_K_norm,
                    inv,
                    logit_p,
                    self.raw_view_sharpness,
                    self.raw_consistency,
                )
                out = (
                    checkpoint(_sweep_chunk, *args, use_reentrant=False)
                    if recompute
                    else _sweep_chunk(*args)
                )
                rows[-1].append(out)
        sweep = torch.cat([torch.cat([o[0] for o in row], dim=-1) for row in rows], dim=2)
        coverage = torch.cat([torch.cat([o[1] for o in row], dim=-1) for row in rows], dim=1)
        sweep = sweep.transpose(1, 2).reshape(b, vt, 3, h, w)
        return _gated(sweep, regress, coverage.reshape(b, vt, 1, h, w))
