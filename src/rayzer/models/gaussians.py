"""Explicit-3D scene parts shared by E-RayZer and NAS3R: pixel-aligned 3D Gaussians.

Both models predict one Gaussian per input pixel, centred on the pixel's ray through the
*predicted* camera, and render target views with the differentiable rasterizer of
:mod:`rayzer.render`, so the photometric loss reaches cameras and depths through physics.

Conventions: OpenCV camera-to-world ``c2w`` (B, V, 4, 4); normalised intrinsics ``K_norm``
(B, V, 4) = (fx/W, fy/H, cx/W, cy/H) inside the models, pixels only at the rasterizer call;
quaternions (w, x, y, z); scales are standard deviations in world units (the model's own frame
and scale); colours as spherical-harmonic coefficients in the 3DGS layout (DC first; colour =
0.5 + SH·basis, so an all-zero SH is mid grey).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rayzer.geometry import (
    camera_rays,
    matrix_to_quaternion,
    quaternion_multiply,
    unproject_depth,
)
from rayzer.geometry.intrinsics import denormalize_intrinsics
from rayzer.models.base import CameraPrediction, ModelOutput, RayModel, Rendered
from rayzer.models.epipolar_loss import batch_epipolar_loss
from rayzer.models.losses import photometric_loss
from rayzer.models.pose_teacher_loss import batch_pose_teacher_terms
from rayzer.models.views import gather_views
from rayzer.models.warp_loss import input_warp_loss

#: Zeroth spherical-harmonic basis value 1 / (2·sqrt(pi)): colour = 0.5 + SH_C0 · dc.
SH_C0 = 0.28209479177387814


def sh_num_coeffs(degree: int) -> int:
    """Number of SH coefficients per colour channel for ``degree`` (0 → 1, 3 → 16, 4 → 25)."""
    if degree < 0:
        raise ValueError(f"SH degree must be >= 0, got {degree}")
    return (degree + 1) ** 2


def rgb_to_sh_dc(rgb: Tensor) -> Tensor:
    """RGB in [0, 1] (..., 3) → the DC SH coefficient (..., 3) that renders as that colour."""
    return (rgb - 0.5) / SH_C0


def sh_band_damping(degree: int, base: float = 0.1, decay: float = 0.25) -> Tensor:
    """Per-coefficient multipliers (K,) = 1 for the DC term, ``base · decay**l`` for band l ≥ 1.

    Why: view-dependent colour is a few-pixel effect that a freshly initialised network would
    otherwise use to explain geometry errors away; damped higher bands start near zero and are
    learned slowly (the pixelSplat / NAS3R practice).
    """
    mult = torch.ones(sh_num_coeffs(degree))
    for band in range(1, degree + 1):
        mult[band**2 : (band + 1) ** 2] = base * decay**band
    return mult


@dataclass
class GaussianScene:
    """A set of 3D Gaussians per sample, built from Vi input views of H × W pixels.

    Attributes:
        means: (B, N, 3) centres, world frame (the model's canonical frame and scale).
        quats: (B, N, 4) unit quaternions (w, x, y, z), Gaussian-to-world rotation.
        scales: (B, N, 3) standard deviations along the Gaussian's axes, world units.
        opacities: (B, N) in (0, 1).
        sh: (B, N, (d + 1)², 3) SH colour coefficients of degree d = ``sh_degree``.
        sh_degree: d.
        input_depth: (B, Vi, 1, H, W) camera z-depth of every input pixel's Gaussian centre.
        c2w: (B, Vi, 4, 4) the input cameras the Gaussians were lifted with.
        K_norm: (B, Vi, 4) their normalised intrinsics.
    Gaussians are ordered view-major then row-major (N = Vi·H·W): Gaussian ``(v·H + i)·W + j``
    sits on pixel (i, j) of input view v.
    """

    means: Tensor
    quats: Tensor
    scales: Tensor
    opacities: Tensor
    sh: Tensor
    sh_degree: int
    input_depth: Tensor
    c2w: Tensor
    K_norm: Tensor

    @property
    def num_gaussians(self) -> int:
        return self.means.shape[1]

    def to_render_args(self) -> dict[str, Any]:
        """Keyword arguments of :func:`rayzer.render.rasterize` describing the Gaussians."""
        return {
            "means": self.means,
            "quats": self.quats,
            "scales": self.scales,
            "opacities": self.opacities,
            "colors": self.sh,
            "sh_degree": self.sh_degree,
        }

    def detach(self) -> GaussianScene:
        """A copy with every tensor detached (e.g. for export or test-time refinement)."""
        return replace(
            self,
            **{
                f.name: getattr(self, f.name).detach()
                for f in fields(self)
                if isinstance(getattr(self, f.name), Tensor)
            },
        )


def fp32_geometry(like: Tensor) -> torch.autocast:
    """A context with autocast off on ``like``'s device: rays, Gaussian centres and the
    rasterizer run in fp32 even when the networks run under bf16 autocast (bf16 keeps ~3
    significant digits: sub-pixel geometry would be lost)."""
    return torch.autocast(like.device.type, enabled=False)


def pixel_rays(
    c2w: Tensor, K_norm: Tensor, height: int, width: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-pixel rays of cameras c2w (B, V, 4, 4), K_norm (B, V, 4).

    Returns:
        origins (B, V, H, W, 3), unit directions (B, V, H, W, 3) and ``cos_z`` (B, V, H, W),
        the cosine between each ray and its camera's optical axis: a point at distance ``t``
        along the unit ray has camera z-depth ``t · cos_z``.
    """
    origins, dirs = camera_rays(
        c2w, K_norm, height, width, normalized_intrinsics=True, normalize_dirs=False
    )
    # Un-normalised directions have camera-frame z = 1, so |dir| = 1 / cos(angle to the axis).
    norm = dirs.norm(dim=-1)
    return origins, dirs / norm[..., None], norm.reciprocal()


def flatten_pixels(x: Tensor) -> Tensor:
    """(B, V, C, H, W) per-pixel channels → (B, V·H·W, C), in :class:`GaussianScene` order."""
    b, v, c, h, w = x.shape
    return x.permute(0, 1, 3, 4, 2).reshape(b, v * h * w, c)


def pixel_quaternions(quat_raw: Tensor, c2w: Tensor) -> Tensor:
    """Per-pixel raw rotations (B, V, 4, H, W) in the camera frame → world unit quaternions
    (B, V·H·W, 4), (w, x, y, z).

    The raw output is biased towards the identity (+ (1, 0, 0, 0)) so that a near-zero output is
    a well-defined rotation, normalised, and rotated into the world by the camera's rotation: a
    Gaussian's shape is predicted relative to the camera that sees it.
    """
    b, v, _, h, w = quat_raw.shape
    quat_cam = F.normalize(
        flatten_pixels(quat_raw) + quat_raw.new_tensor([1.0, 0.0, 0.0, 0.0]), dim=-1
    )
    q_view = matrix_to_quaternion(c2w[..., :3, :3])  # (B, V, 4)
    q_view = q_view[:, :, None].expand(b, v, h * w, 4).reshape(b, v * h * w, 4)
    return F.normalize(quaternion_multiply(q_view, quat_cam), dim=-1)


def pixel_sh(sh_raw: Tensor, degree: int) -> Tensor:
    """Per-pixel SH channels (B, V, 3·(d+1)², H, W), colour-major → (B, V·H·W, (d+1)², 3)."""
    k = sh_num_coeffs(degree)
    if sh_raw.shape[2] != 3 * k:
        raise ValueError(f"expected {3 * k} SH channels for degree {degree}, got {sh_raw.shape[2]}")
    return flatten_pixels(sh_raw).unflatten(-1, (3, k)).transpose(-1, -2).contiguous()


def relift_scene(scene: GaussianScene, c2w: Tensor, K_norm: Tensor) -> GaussianScene:
    """``scene`` with its input views' Gaussians moved to new cameras of those views (e.g. the
    cameras after test-time refinement).

    Every Gaussian keeps its pixel and its camera z-depth (``scene.input_depth``, the model's
    depth): its centre is lifted again along that pixel's ray through the new camera, and its
    rotation turns with the camera (``R_new · R_oldᵀ``), so its shape relative to the camera
    that saw it is what the model predicted. Scales, opacities and colours are kept; the
    spherical-harmonic bands above the DC term are not rotated (the view-dependent part of the
    colour stays in world axes: a small error for the few degrees a refinement turns a camera).
    With the scene's own cameras the result is the scene (to float precision).

    Args:
        scene: a :class:`GaussianScene` of B samples, Vi input views of H × W.
        c2w: (B, Vi, 4, 4) new OpenCV camera-to-world of the input views; K_norm: (B, Vi, 4)
            their normalised intrinsics.
    Returns:
        a new :class:`GaussianScene` whose ``c2w`` / ``K_norm`` are the new cameras.
    """
    b, vi, _, h, w = scene.input_depth.shape
    if c2w.shape != (b, vi, 4, 4) or K_norm.shape != (b, vi, 4):
        raise ValueError(
            f"relift_scene: expected cameras c2w ({b}, {vi}, 4, 4) and K_norm ({b}, {vi}, 4) "
            f"for the scene's input views, got {tuple(c2w.shape)} and {tuple(K_norm.shape)}"
        )
    dev = scene.means.device
    c2w, K_norm = c2w.to(dev).float(), K_norm.to(dev).float()
    with fp32_geometry(scene.means):
        depth = scene.input_depth[:, :, 0].float()
        means = unproject_depth(depth, c2w, K_norm, normalized_intrinsics=True)
        turn = c2w[..., :3, :3] @ scene.c2w[..., :3, :3].float().transpose(-1, -2)
        q_turn = matrix_to_quaternion(turn)[:, :, None].expand(b, vi, h * w, 4)
        quats = quaternion_multiply(q_turn.reshape(b, vi * h * w, 4), scene.quats.float())
    return replace(
        scene,
        means=means.reshape(b, vi * h * w, 3),
        quats=F.normalize(quats, dim=-1),
        c2w=c2w,
        K_norm=K_norm,
    )


def render_gaussians(
    scene: GaussianScene,
    c2w: Tensor,
    K_norm: Tensor,
    height: int,
    width: int,
    background: Sequence[float] | Tensor | None,
    near: float,
    backend: str = "auto",
) -> Rendered:
    """Rasterize ``scene`` at cameras c2w (B, Vt, 4, 4), K_norm (B, Vt, 4) into H × W images.

    Any camera and any size: the Gaussians do not depend on the training resolution. RGB is
    clamped to [0, 1] (composited SH colours may leave it slightly); depth is the expected
    camera z of the visible surface (alpha-normalised, 0 where alpha ≈ 0). ``background``: RGB in [0, 1]
    (e.g. white ``(1, 1, 1)``, E-RayZer's choice) or None (the rasterizer's default, black).
    """
    from rayzer.render.rasterize import rasterize  # render ← models: imported where used

    bg = None
    if background is not None:
        bg = torch.as_tensor(background, dtype=torch.float32, device=scene.means.device)
    with fp32_geometry(scene.means):
        args = {
            k: v.float() if isinstance(v, Tensor) else v for k, v in scene.to_render_args().items()
        }
        out = rasterize(
            **args,
            c2w=c2w.float(),
            K=denormalize_intrinsics(K_norm.float(), height, width),
            width=width,
            height=height,
            background=bg,
            near=near,
            backend=backend,
        )
    # The rasterizer's depth is alpha-weighted (Σ w·z); the interface's depth is the z of what
    # is seen, so divide by alpha (0 where nothing is drawn).
    return Rendered(rgb=out.rgb.clamp(0.0, 1.0), depth=out.expected_depth(), alpha=out.alpha)


class PixelGaussianModel(RayModel):
    """What E-RayZer and NAS3R share: rasterized rendering of a :class:`GaussianScene`, the
    :class:`ModelOutput` of a training pass, and the photometric loss of the target renders.

    Subclasses provide the cameras and the scene; their ``cfg`` has ``background``,
    ``near_plane`` and ``render_backend`` (see :func:`render_gaussians`).
    """

    def render(
        self, scene: GaussianScene, c2w: Tensor, K_norm: Tensor, height: int, width: int
    ) -> Rendered:
        """Rasterize the Gaussians at any cameras c2w (B, Vt, 4, 4), K_norm (B, Vt, 4), any size."""
        return render_gaussians(
            scene,
            c2w,
            K_norm,
            height,
            width,
            background=self.cfg.background,
            near=self.cfg.near_plane,
            backend=self.cfg.render_backend,
        )

    def render_targets(
        self,
        cameras: CameraPrediction,
        scene: GaussianScene,
        input_index: Tensor,
        target_index: Tensor,
        height: int,
        width: int,
    ) -> ModelOutput:
        """Render the targets (B, Vt) at their predicted cameras: the pass's :class:`ModelOutput`
        (with the input views' depth)."""
        rendered = self.render(
            scene,
            gather_views(cameras.c2w, target_index),
            gather_views(cameras.K_norm, target_index),
            height,
            width,
        )
        return ModelOutput(
            cameras=cameras,
            scene=scene,
            rendered=rendered,
            input_index=input_index,
            target_index=target_index,
            input_depth=scene.input_depth,
        )

    def loss(
        self, output: ModelOutput, batch: Mapping[str, Tensor], perceptual: nn.Module | None
    ) -> dict[str, Tensor]:
        """MSE + λ·perceptual of the target renders (λ = ``perceptual.weight``, the recipe's
        ``train.perceptual_weight``; None: MSE only), plus ``cfg.warp_loss_weight`` × the
        depth-warping error between the input views (:func:`input_warp_loss`, logged as
        ``"warp"``; weight 0, the default: not computed), plus ``cfg.epipolar_loss_weight`` ×
        the epipolar error of the batch's matches under the predicted cameras of all views
        (:func:`rayzer.models.epipolar_loss.batch_epipolar_loss`, logged as ``"epipolar"``;
        weight 0, the default: not computed), plus ``cfg.pose_teacher_weight`` × the predicted
        relative poses' disagreement with the batch's label-free teacher cameras
        (:func:`rayzer.models.pose_teacher_loss.batch_pose_teacher_terms`, logged as
        ``"teacher"``, ``"teacher_rot_deg"``, ``"teacher_trans_deg"``; weight 0: not computed)."""
        target = gather_views(batch["image"], output.target_index)
        terms = photometric_loss(output.rendered.rgb, target, perceptual)
        weight = float(getattr(self.cfg, "warp_loss_weight", 0.0))
        if weight > 0 and output.cameras is not None and output.input_depth is not None:
            index = output.input_index
            warp = input_warp_loss(
                gather_views(batch["image"], index),
                output.input_depth,
                gather_views(output.cameras.c2w, index),
                gather_views(output.cameras.K_norm, index),
            )
            terms["warp"] = warp.detach()
            terms["loss"] = terms["loss"] + weight * warp
        weight = float(getattr(self.cfg, "epipolar_loss_weight", 0.0))
        if weight > 0 and output.cameras is not None:
            epipolar = batch_epipolar_loss(batch, output.cameras.c2w, output.cameras.K_norm)
            terms["epipolar"] = epipolar.detach()
            terms["loss"] = terms["loss"] + weight * epipolar
        weight = float(getattr(self.cfg, "pose_teacher_weight", 0.0))
        if weight > 0 and output.cameras is not None:
            teacher = batch_pose_teacher_terms(batch, output.cameras.c2w)
            terms["teacher"] = teacher["loss"].detach()
            terms["teacher_rot_deg"] = teacher["rot_deg"]
            terms["teacher_trans_deg"] = teacher["trans_deg"]
            terms["loss"] = terms["loss"] + weight * teacher["loss"]
        return terms
