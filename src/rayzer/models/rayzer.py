"""RayZer: self-supervised camera estimation + latent-scene novel-view synthesis (DESIGN §2).

Pipeline for a sample of V frame-ordered views (images (B, V, 3, H, W)):

1. **Tokenize** each image into p×p patch tokens plus a position embedding of
   [patch position ‖ image index].
2. **Camera estimator**: one learnable camera token per view (plus its index embedding) attends
   jointly with all image tokens. Pose of view i = MLP([cam_i ‖ cam_c]) → 6-D rotation and
   translation *added to identity*, relative to the canonical middle view c = V // 2, whose pose
   is exactly the identity. One shared focal for the sample: ``f = focal_init + MLP(mean cam)``,
   smoothly floored at 0.05.
3. **Scene reconstructor**: raw image tokens of the *input* views only, fused with tokens of
   their predicted Plücker rays, attend jointly with n learnable scene tokens.
4. **Rendering decoder**: target Plücker rays (from predicted target cameras) + scene tokens →
   RGB.

With ``sense_head`` a small CNN decides which way the camera path turned (the depth-reversal
ambiguity of orbits, :mod:`rayzer.models.sense`): in eval mode the estimator's path is
mirrored where the head disagrees with it; in training, ``forward(..., mirror_hypothesis=True)``
also renders the mirrored path and returns the head's logits (the trainer keeps the better
render and teaches the head its sense).

Predicted cameras: OpenCV camera-to-world matrices in the canonical view's frame, and
normalised intrinsics ``K_norm = (f, f·W/H, 0.5, 0.5)`` (``fx = fy`` in pixels, principal point
at the centre). The module is a pure function of tensors: no I/O, no config files.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rayzer.geometry import make_c2w, rot6d_to_matrix, se3_inverse
from rayzer.models.config import ModelConfig
from rayzer.models.latent_scene import (
    LatentScene,
    RayDecoder,
    SceneReconstructor,
    plucker_from_normalized,
)
from rayzer.models.sense import PairCNN, SenseHead, mirror_camera_path, paths_to_mirror
from rayzer.models.views import as_view_index, gather_views
from rayzer.nn import ConvStem, CorrelationTokens, PatchEmbed, Transformer, ViewPositionEmbedding
from rayzer.nn.transformer import INIT_STD

IDENTITY_6D = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
#: Smallest predicted normalised focal (≈ 169° horizontal field of view) and the softplus sharpness of the
#: floor: the focal equals its raw prediction to < 1e-3 above ~0.5.
FOCAL_FLOOR = 0.05
FOCAL_FLOOR_SHARPNESS = 10.0


@dataclass
class CameraPrediction:
    """Cameras predicted for every view of a sample.

    Attributes:
        c2w: (B, V, 4, 4) OpenCV camera-to-world, canonical view = identity.
        K_norm: (B, V, 4) normalised intrinsics (fx/W, fy/H, cx/W, cy/H).
        tokens: (B, V, d) camera-estimator output tokens (for pose probing).
        canonical: index of the canonical view.
        mirrored: (B,) bool, the samples whose estimated path the sense head mirrored (None:
            no sense decision was made).
    """

    c2w: Tensor
    K_norm: Tensor
    tokens: Tensor
    canonical: int
    mirrored: Tensor | None = None


@dataclass
class RayZerOutput:
    """Result of one RayZer call.

    Attributes:
        cameras: predictions for all V views.
        render: (B, Vt, 3, H, W) target renders in (0, 1).
        input_index, target_index: (B, Vi) and (B, Vt) view indices used.
        mirror_render: with ``mirror_hypothesis``: (B, Vt, 3, H, W) the targets rendered with
            the mirror image of the predicted path (:func:`rayzer.models.sense.mirror_camera_path`).
        sense_logits: with ``mirror_hypothesis``: (B, V - 1) the sense head's logits for the
            non-canonical views (> 0: positive yaw).
    """

    cameras: CameraPrediction
    render: Tensor
    input_index: Tensor
    target_index: Tensor
    mirror_render: Tensor | None = None
    sense_logits: Tensor | None = None


def two_layer_mlp(d_in: int, d_hidden: int, d_out: int, last_std: float) -> nn.Sequential:
    """Linear → GELU → Linear with a small-initialised last layer (zero bias)."""
    mlp = nn.Sequential(nn.Linear(d_in, d_hidden), nn.GELU(), nn.Linear(d_hidden, d_out))
    nn.init.normal_(mlp[0].weight, std=INIT_STD)
    nn.init.zeros_(mlp[0].bias)
    nn.init.normal_(mlp[2].weight, std=last_std)
    nn.init.zeros_(mlp[2].bias)
    return mlp


class ImageTokenizer(nn.Module):
    """Patches → tokens plus the [patch position ‖ image index] embedding: (B, V, 3, H, W) → (B, V, N, d)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.patch_size = cfg.patch_size
        self.patch = PatchEmbed(3, cfg.patch_size, cfg.dim)
        self.position = ViewPositionEmbedding(cfg.dim, cfg.pos_enc_dim, cfg.index_scale)

    def forward(self, images: Tensor, view_index: Tensor) -> Tensor:
        """images (B, V, 3, H, W), view_index (B, V) positions of the views in frame order."""
        h, w = images.shape[-2:]
        gh, gw = h // self.patch_size, w // self.patch_size
        return self.patch(images) + self.position.patch_embedding(view_index, gh, gw)


class GridReadout(nn.Module):
    """Position-aware summary of one view's tokens: (B, V, gh, gw, d) → (B, V, d).

    The tokens are average-pooled to a fixed ``grid × grid`` layout (any image size or aspect)
    and read by one linear layer over the flattened grid, so every region gets its own weights.
    Why not a plain mean: around an orbit's fixation point, near and far content moves in
    opposite directions, so the mean of motion features cancels; a uniform attention at
    initialisation is such a mean (measured in ``experiments/issue3_calibration``).
    """

    def __init__(self, dim: int, grid: int = 4) -> None:
        super().__init__()
        self.grid = grid
        self.proj = nn.Linear(grid * grid * dim, dim, bias=False)
        nn.init.normal_(self.proj.weight, std=INIT_STD / grid)

    def forward(self, tokens: Tensor) -> Tensor:
        b, v, gh, gw, d = tokens.shape
        x = tokens.reshape(b * v, gh, gw, d).permute(0, 3, 1, 2)
        x = F.adaptive_avg_pool2d(x, self.grid)  # (B·V, d, grid, grid)
        return self.proj(x.flatten(1)).unflatten(0, (b, v))


def compose_steps(steps: Tensor, canonical: int) -> Tensor:
    """Chain per-step relative poses into poses relative to the canonical view.

    Args:
        steps: (B, V - 1, 4, 4); step i is camera i + 1's camera-to-world in camera i's frame.
        canonical: index c of the view whose pose is the identity.

    Returns:
        (B, V, 4, 4) camera-to-world matrices in camera c's frame (view c exactly identity).
    """
    b, n = steps.shape[:2]
    eye = torch.eye(4, device=steps.device, dtype=steps.dtype).expand(b, 4, 4)
    poses: list[Tensor | None] = [None] * (n + 1)
    poses[canonical] = eye
    for i in range(canonical + 1, n + 1):  # forwards: c2w_i = c2w_{i-1} · step_{i-1}
        poses[i] = poses[i - 1] @ steps[:, i - 1]
    for i in range(canonical - 1, -1, -1):  # backwards: c2w_i = c2w_{i+1} · step_i⁻¹
        poses[i] = poses[i + 1] @ se3_inverse(steps[:, i])
    return torch.stack(poses, dim=1)  # type: ignore[arg-type]


class CameraEstimator(nn.Module):
    """Predicts relative poses and a shared focal from all views (DESIGN §2)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.cam_token = nn.Parameter(torch.randn(cfg.dim) * INIT_STD)
        self.transformer = Transformer(
            cfg.dim,
            cfg.cam_layers,
            cfg.num_heads,
            cfg.mlp_ratio,
            cfg.qk_norm,
            grad_checkpointing=cfg.grad_checkpointing,
        )
        self.pose_head = two_layer_mlp(2 * cfg.dim, cfg.dim, 9, cfg.pose_head_init_std)
        self.focal_head = (
            two_layer_mlp(cfg.dim, cfg.dim, 1, cfg.focal_head_init_std) if cfg.learn_focal else None
        )
        self.patch = cfg.patch_size
        self.grid_readout = GridReadout(cfg.dim) if cfg.cam_readout == "token+grid" else None
        self.register_buffer("identity_6d", torch.tensor(IDENTITY_6D), persistent=False)
        # Multiplies the predicted translations (rotation-first schedule of the trainer, see
        # ``rayzer.train.optim.translation_gain``). The trainer resets it to 1 when ``train()``
        # ends; ``rayzer.infer.model.load_model`` sets it to the schedule's value at the
        # checkpoint's step, so a checkpoint from inside the schedule runs as it was trained.
        self.translation_gain = 1.0

    def forward(
        self,
        image_tokens: Tensor,
        index_embedding: Tensor,
        height: int,
        width: int,
        canonical: int,
        pose_offset: Tensor | None = None,
    ) -> CameraPrediction:
        """image_tokens (B, V, N, d), index_embedding (B, V, d) → cameras of all V views.

        ``pose_offset`` (B, V, 9), optional: added to the pose head's output (rot6d delta ‖
        translation), e.g. from :class:`rayzer.models.sense.PairCNN`."""
        b, v = image_tokens.shape[:2]
        cam = self.cam_token + index_embedding  # (B, V, d)
        if self.cfg.cam_attention == "alternating":
            seq = torch.cat((cam.unsqueeze(2), image_tokens), dim=2)  # (B, V, 1 + N, d)
            out = self.transformer.forward_alternating(seq)
            cam, view_tokens = out[:, :, 0], out[:, :, 1:]
        else:
            seq = torch.cat((cam, image_tokens.flatten(1, 2)), dim=1)
            out = self.transformer(seq)
            cam = out[:, :v]  # (B, V, d)
            view_tokens = out[:, v:].unflatten(1, (v, -1))  # (B, V, N, d)
        if self.cfg.cam_readout == "token+pool":
            # Add each view's own pooled output tokens: image-derived features (the camera
            # token starts as a learned constant plus its index embedding).
            cam = cam + view_tokens.mean(dim=2)
        elif self.grid_readout is not None:
            cam = cam + self.grid_readout(view_tokens.unflatten(2, (height // self.patch, -1)))

        if self.cfg.cam_chain:
            # Step i: camera i + 1 in camera i's frame, from [cam_i ‖ cam_i+1] (B, V - 1, 2d).
            pair = torch.cat((cam[:, :-1], cam[:, 1:]), dim=-1)
        else:
            pair = torch.cat((cam, cam[:, canonical : canonical + 1].expand(-1, v, -1)), dim=-1)
        delta = self.pose_head(pair)  # (B, V, 9), or (B, V - 1, 9) steps with cam_chain
        if pose_offset is not None:
            delta = delta + pose_offset
        rotation = rot6d_to_matrix(self.identity_6d + delta[..., :6])
        translation = delta[..., 6:]
        if self.cfg.cam_chain:
            path = compose_steps(make_c2w(rotation, translation), canonical)
            rotation, translation = path[..., :3, :3], path[..., :3, 3]
        if self.cfg.cam_unit_translation:
            # Fix the scale gauge: camera centres at mean distance 1 from the canonical one (the
            # scale LVSM's data uses), so the renderer's depth range matches from step 0 and
            # the translation's direction, not its size, is what the loss shapes.
            others = torch.arange(v, device=translation.device) != canonical
            scale = translation[:, others].norm(dim=-1).mean(dim=1).clamp_min(1e-6)
            translation = translation / scale[:, None, None]
        # After the unit rescaling, which would otherwise undo any gain above 0.
        translation = translation * self.translation_gain
        c2w = make_c2w(rotation, translation)
        # The canonical view defines the frame: exactly identity, with no gradient into it.
        is_canonical = torch.arange(v, device=c2w.device) == canonical
        eye = torch.eye(4, device=c2w.device, dtype=c2w.dtype)
        c2w = torch.where(is_canonical[None, :, None, None], eye, c2w)

        # One focal for the whole sample (all views share the camera), kept above a floor to
        # stay a camera. A smooth floor, not a clamp: a clamped focal that once hit the floor
        # got no gradient again (seen in experiments/issue3_calibration, session 5);
        # above ~0.5 this equals the raw value to < 1e-3.
        if self.focal_head is not None:
            raw = self.cfg.focal_init + self.focal_head(cam.mean(dim=1))
            focal = FOCAL_FLOOR + F.softplus(raw - FOCAL_FLOOR, beta=FOCAL_FLOOR_SHARPNESS)
        else:
            focal = cam.new_full((b, 1), self.cfg.focal_init)
        fx = focal.expand(b, v)
        fy = fx * (width / height)  # same pixel focal: fy/H = (fx/W)·(W/H)
        half = torch.full_like(fx, 0.5)
        K_norm = torch.stack((fx, fy, half, half), dim=-1)
        return CameraPrediction(c2w=c2w, K_norm=K_norm, tokens=cam, canonical=canonical)


class RayZer(nn.Module):
    """The RayZer model. See the module docstring for the pipeline and conventions."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.dim
        self.tokenizer = ImageTokenizer(cfg)
        self.camera_estimator = CameraEstimator(cfg)
        # Optional own tokenizer of the camera estimator: [view ‖ canonical view] patches and/or
        # a convolutional stem (None: it shares the scene's single-view patch tokens).
        in_ch = 6 if cfg.cam_pair_canonical else 3
        self.cam_patch: nn.Module | None = None
        if cfg.cam_conv_stem:
            self.cam_patch = ConvStem(in_ch, cfg.patch_size, d)
        elif cfg.cam_pair_canonical:
            self.cam_patch = PatchEmbed(in_ch, cfg.patch_size, d)
        self.cam_correlation = (
            CorrelationTokens(cfg.patch_size, d, radius=cfg.cam_correlation_radius)
            if cfg.cam_correlation
            else None
        )
        self.input_ray_embed = PatchEmbed(6, cfg.patch_size, d)
        # 2-layer MLP fusing [raw image token ‖ ray token] of each input patch (DESIGN §2).
        self.fuse = nn.Sequential(
            nn.Linear(2 * d, d, bias=False), nn.GELU(), nn.Linear(d, d, bias=False)
        )
        for layer in (self.fuse[0], self.fuse[2]):
            nn.init.normal_(layer.weight, std=INIT_STD)
        self.reconstructor = SceneReconstructor.from_config(cfg)
        self.decoder = RayDecoder.from_config(cfg)
        self.sense_head = SenseHead() if cfg.sense_head else None
        self.pose_cnn = (
            PairCNN(9, out_init_std=cfg.cam_pair_cnn_init_std) if cfg.cam_pair_cnn else None
        )

    def set_translation_gain(self, gain: float) -> None:
        """Scale the predicted translations by ``gain`` in [0, 1] (0: rotation-only cameras)."""
        if not 0.0 <= gain <= 1.0:
            raise ValueError(f"translation gain must be in [0, 1], got {gain}")
        self.camera_estimator.translation_gain = float(gain)

    # -- stages -------------------------------------------------------------------------------

    def _check_images(self, images: Tensor) -> None:
        if images.ndim != 5 or images.shape[2] != 3:
            raise ValueError(f"images must have shape (B, V, 3, H, W), got {tuple(images.shape)}")
        h, w = images.shape[-2:]
        p = self.cfg.patch_size
        if h % p or w % p:
            raise ValueError(f"image size {h}x{w} is not divisible by the patch size {p}")
        if images.shape[1] < 2:
            raise ValueError(f"RayZer needs at least 2 views, got {images.shape[1]}")

    @staticmethod
    def _positions(batch: int, num_views: int, device: torch.device) -> Tensor:
        return torch.arange(num_views, device=device).unsqueeze(0).expand(batch, -1)

    def predict_cameras(
        self, images: Tensor, resolve_sense: bool | None = None
    ) -> CameraPrediction:
        """images (B, V, 3, H, W), views in frame order → cameras of all views (canonical V // 2).

        ``resolve_sense`` (default: in eval mode): with a sense head, mirror the paths the head
        disagrees with (``CameraPrediction.mirrored`` says which)."""
        self._check_images(images)
        b, v, _, h, w = images.shape
        positions = self._positions(b, v, images.device)
        tokens = self.camera_input_tokens(images, positions)
        index_emb = self.tokenizer.position.index_embedding(positions)
        offset = None
        if self.pose_cnn is not None:
            offset = (
                self.pose_cnn.forward_pairs(images[:, 1:], images[:, :-1])
                if self.cfg.cam_chain
                else self.pose_cnn(images, list(range(v)))
            )
        cams = self.camera_estimator(tokens, index_emb, h, w, canonical=v // 2, pose_offset=offset)
        if resolve_sense is None:
            resolve_sense = not self.training
        if self.sense_head is not None and resolve_sense:
            self._resolve_sense(cams, self.sense_head(images))
        return cams

    @staticmethod
    def _resolve_sense(cams: CameraPrediction, logits: Tensor) -> None:
        """Mirror, in place, the paths whose sense the head's logits (B, V − 1) contradict. The
        decision carries no gradient; the mirrored path is differentiable."""
        flip = paths_to_mirror(cams.c2w, logits)
        cams.c2w = torch.where(flip[:, None, None, None], mirror_camera_path(cams.c2w), cams.c2w)
        cams.mirrored = flip

    def camera_input_tokens(self, images: Tensor, positions: Tensor) -> Tensor:
        """Image tokens (B, V, N, d) the camera estimator reads: single-view patches, or
        [view ‖ canonical view] patches with ``cam_pair_canonical``; plus correlation tokens
        against the canonical view with ``cam_correlation``."""
        c = images.shape[1] // 2
        if self.cam_patch is None:
            tokens = self.tokenizer(images, positions)
        else:
            h, w = images.shape[-2:]
            p = self.cfg.patch_size
            pixels = images
            if self.cfg.cam_pair_canonical:
                pixels = torch.cat((images, images[:, c : c + 1].expand_as(images)), dim=2)
            tokens = self.cam_patch(pixels) + self.tokenizer.position.patch_embedding(
                positions, h // p, w // p
            )
        if self.cam_correlation is not None:
            tokens = tokens + self.cam_correlation(images, reference=c)
        return tokens

    def reconstruct(
        self, images: Tensor, c2w: Tensor, K_norm: Tensor, view_positions: Tensor | None = None
    ) -> LatentScene:
        """Build the latent scene from input views.

        Args:
            images: (B, Vi, 3, H, W) input views.
            c2w: (B, Vi, 4, 4) their cameras; K_norm: (B, Vi, 4) normalised intrinsics.
            view_positions: (B, Vi) their positions in the full frame-ordered set (defaults to
                0 … Vi−1); it selects the image-index embedding.
        Returns:
            the scene: tokens (B, n [+ M], d) and the input views with their cameras.
        """
        b, vi, _, h, w = images.shape
        if view_positions is None:
            view_positions = self._positions(b, vi, images.device)
        image_tokens = self.tokenizer(images, view_positions)
        ray_tokens = self.input_ray_embed(plucker_from_normalized(c2w, K_norm, h, w))
        tokens = self.fuse(torch.cat((image_tokens, ray_tokens), dim=-1))
        return LatentScene(self.reconstructor(tokens.flatten(1, 2)), images, c2w, K_norm)

    def render(
        self, scene: LatentScene, c2w: Tensor, K_norm: Tensor, height: int, width: int
    ) -> Tensor:
        """Target cameras c2w (B, Vt, 4, 4) and K_norm (B, Vt, 4) → RGB (B, Vt, 3, H, W)."""
        return self.decoder(scene, c2w, K_norm, height, width)

    # -- full self-supervised pass ----------------------------------------------------------------

    def forward(
        self,
        images: Tensor,
        input_index: Tensor,
        target_index: Tensor,
        mirror_hypothesis: bool = False,
    ) -> RayZerOutput:
        """Predict cameras for all views, build the scene from the inputs, render the targets.

        Args:
            images: (B, V, 3, H, W) in [0, 1], views in frame order.
            input_index: (Vi,) or (B, Vi) views that build the scene.
            target_index: (Vt,) or (B, Vt) views to render (their images are seen by the camera
                estimator only, never by the scene reconstructor).
            mirror_hypothesis: training with a sense head: render the targets with a path and
                with its mirror image, and return both renders and the sense head's logits.
                With ``model.sense_mirror="both"`` the path is the estimator's own and both
                renders carry gradient; with ``"resolved"`` it is the path the head resolves
                (``cameras.mirrored`` says where) and the mirror render is made without
                gradient, only to label the head.
        """
        self._check_images(images)
        b, v = images.shape[:2]
        input_index = as_view_index(input_index, b, v).to(images.device)
        target_index = as_view_index(target_index, b, v).to(images.device)
        if mirror_hypothesis and self.sense_head is None:
            raise ValueError("mirror_hypothesis needs a model with model.sense_head=true")
        logits = None
        if mirror_hypothesis:  # the trainer labels the head from the estimator's path
            assert self.sense_head is not None
            cams = self.predict_cameras(images, resolve_sense=False)
            logits = self.sense_head(images)
            if self.cfg.sense_mirror == "resolved":
                self._resolve_sense(cams, logits)
        else:
            cams = self.predict_cameras(images)
        render = self._render_path(images, cams.c2w, cams.K_norm, input_index, target_index)
        out = RayZerOutput(cams, render, input_index, target_index)
        if mirror_hypothesis:
            mirrored = mirror_camera_path(cams.c2w)
            # "resolved": the mirror only labels the head, so its render needs no graph (the
            # saving is its backward pass).
            with torch.set_grad_enabled(
                torch.is_grad_enabled() and self.cfg.sense_mirror == "both"
            ):
                out.mirror_render = self._render_path(
                    images, mirrored, cams.K_norm, input_index, target_index
                )
            out.sense_logits = logits
        return out

    def _render_path(
        self, images: Tensor, c2w: Tensor, K_norm: Tensor, input_index: Tensor, target_index: Tensor
    ) -> Tensor:
        """Build the scene from the input views with cameras ``c2w`` (B, V, 4, 4) and render the
        target views: (B, Vt, 3, H, W)."""
        h, w = images.shape[-2:]
        scene = self.reconstruct(
            gather_views(images, input_index),
            gather_views(c2w, input_index),
            gather_views(K_norm, input_index),
            view_positions=input_index,
        )
        return self.render(
            scene, gather_views(c2w, target_index), gather_views(K_norm, target_index), h, w
        )


def photometric_mse(render: Tensor, target: Tensor) -> Tensor:
    """Mean squared error over all pixels of all target views."""
    return F.mse_loss(render, target)
