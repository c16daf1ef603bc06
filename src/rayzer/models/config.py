"""Typed model configuration shared by RayZer and the LVSM oracle.

Every size comes from here; presets live in ``configs/*.yaml`` (under the ``model`` key).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ModelConfig:
    """Sizes and switches of a latent-scene model.

    Attributes:
        name: ``"rayzer"`` (self-predicted cameras) or ``"lvsm"`` (ground-truth cameras).
        dim: token width d.
        num_heads: attention heads per block.
        mlp_ratio: hidden width of the block MLPs relative to d.
        patch_size: p; image sizes must be divisible by it.
        cam_layers, scene_layers, dec_layers: depths of the camera estimator, scene
            reconstructor and rendering decoder (LVSM uses scene_layers + dec_layers).
        num_scene_tokens: n learnable latent scene tokens.
        keep_input_tokens: the scene representation is the reconstructor's whole output — the
            n latent tokens *and* the processed input-view tokens — instead of the latent tokens
            alone. It removes the latent bottleneck (the decoder can read input-aligned tokens
            directly, as in LVSM's decoder-only variant) at the cost of a longer decoder context;
            ``num_scene_tokens`` may then be 0.
        pos_enc_dim: width of each sinusoidal part of the position embedding.
        index_scale: multiplier on the image index before its sinusoids.
        qk_norm: RMS-normalise queries and keys in every attention.
        focal_init: initial normalised focal ``fx / W`` (1.25 ≈ 44° horizontal FoV).
        pose_head_init_std: std of the last pose-head layer; small values start every view near
            the canonical (identity) pose.
        focal_head_init_std: std of the last focal-head layer.
        learn_focal: predict the shared focal; False holds it at ``focal_init`` (a lever against
            the focal turning into a per-clip latent code).
        cam_pair_canonical: the camera estimator tokenizes each view's patches together with
            the canonical view's patches at the same place (channel concat, 6 × p × p inputs),
            so every token sees local motion relative to the canonical view. A lever for
            small budgets (the paper tokenizes single images); the scene reconstructor still
            sees raw single-view tokens.
        cam_readout: what the pose and focal heads read per view: ``"token"`` (the camera token,
            as in the paper) or ``"token+pool"`` (camera token + the mean of the view's own
            output tokens) or ``"token+grid"`` (camera token + a linear read of the view's output
            tokens pooled to a 4 × 4 grid: position-aware, see
            :class:`rayzer.models.rayzer.GridReadout`).
        cam_conv_stem: the camera estimator tokenizes with a small convolutional stem instead of
            one linear patch layer (needs a power-of-two patch size).
        cam_correlation: add correlation tokens to the camera estimator's input: the cosine
            similarity of each view's local conv features with the canonical view's at
            (2·r + 1)² displacements, pooled per patch (:class:`rayzer.nn.CorrelationTokens`).
            Makes relative motion a first-order feature at initialisation — a lever against the
            estimator settling on an image-independent mean pose on small budgets.
        cam_correlation_radius: r, in stride-2 feature pixels with dilation 2 (r = 4 reaches
            ±16 image pixels).
        cam_attention: ``"global"`` (the paper: every camera-estimator layer attends across all
            views) or ``"alternating"`` (even layers within each view, odd layers across views).
        cam_unit_translation: rescale the predicted translations of each sample so that the
            non-canonical camera centres are at mean distance 1 from the canonical one. Removes
            the scale gauge (self-supervision cannot fix it) and starts the poses at the depth
            range of ``ray_near``; tiny initial translations otherwise make parallax, and the
            gradient on their direction, negligible.
        epipolar_bias: the rendering decoder adds :class:`rayzer.nn.EpipolarBias` to its
            attention logits: each target patch is biased towards the input-view tokens its ray
            projects into (needs ``keep_input_tokens``, which puts those tokens in the decoder's
            context). A geometric prior that a small budget cannot learn from scratch.
        ray_near: nearest depth sampled along the target rays by the epipolar bias and the
            blend / sweep readouts, in the world units of the cameras (RayZer: the canonical
            frame of the predicted cameras; LVSM: the data's normalised cameras). The samples
            are uniform in inverse depth out to infinity.
        decoder_readout: ``"regress"`` (the paper: each target token is mapped to its RGB
            patch) or ``"blend"`` (:class:`rayzer.models.readouts.BlendReadout`: each target
            patch is a learned, epipolar-biased blend of the input views' pixel patches, mixed
            with a regressed colour; needs ``keep_input_tokens``) or ``"sweep"``
            (:class:`rayzer.models.readouts.SweepReadout`: per-pixel plane-sweep image-based
            rendering, depth from the decoder plus the views' colour consistency).
        sweep_depths: depth samples per target pixel of the sweep readout.
        sense_head: RayZer only. Resolve the depth-reversal (Necker) ambiguity of orbits:
            training renders every sample with its predicted camera path and with the path's
            mirror image, keeps the better render, and trains a small CNN
            (:class:`rayzer.models.sense.SenseHead`) on which way each view turned; at
            inference the path is mirrored where the head disagrees with it. Self-supervised
            (no pose labels); costs a second reconstruction and render per training sample.
        sense_mirror: how training runs that mirror test. ``"both"``: render the estimator's
            path and its mirror, both with gradient, and keep the better render per sample.
            ``"resolved"``: render the path as the sense head resolves it (mirrored where the
            head disagrees), with gradient, and its mirror *without* gradient, only to label
            the head; a sample whose mirror renders better leaves the photometric loss. About
            0.8× the step time at the same renders per step (calibration notes, Session 9).
        cam_pair_cnn: RayZer only. Add to every view's pose-head output the output of a ReLU CNN
            on the [view ‖ canonical view] image pair (:class:`rayzer.models.sense.PairCNN`):
            a direct image-to-pose path beside the transformer's camera token.
        cam_chain: RayZer only. Predict the pose of each view relative to the *previous* view
            (views in frame order; the pose head reads [cam_i ‖ cam_i+1], the pair CNN
            [view_i+1 ‖ view_i]) and chain the steps outwards from the canonical view, instead
            of predicting every view against the canonical one directly. Each step is a
            narrow-baseline problem however wide the window.
        cam_pair_cnn_init_std: std of that CNN's last layer (None: PyTorch's default init).
        grad_checkpointing: recompute block activations in backward.
    """

    name: str = "rayzer"
    dim: int = 128
    num_heads: int = 4
    mlp_ratio: float = 4.0
    patch_size: int = 8
    cam_layers: int = 3
    scene_layers: int = 3
    dec_layers: int = 3
    num_scene_tokens: int = 64
    keep_input_tokens: bool = False
    pos_enc_dim: int = 64
    index_scale: float = 1.0
    qk_norm: bool = True
    focal_init: float = 1.25
    pose_head_init_std: float = 1e-3
    focal_head_init_std: float = 1e-3
    learn_focal: bool = True
    cam_pair_canonical: bool = False
    cam_attention: str = "global"
    cam_conv_stem: bool = False
    cam_readout: str = "token"
    cam_correlation: bool = False
    cam_correlation_radius: int = 4
    cam_unit_translation: bool = False
    epipolar_bias: bool = False
    ray_near: float = 0.5
    decoder_readout: str = "regress"
    sweep_depths: int = 16
    sense_head: bool = False
    sense_mirror: str = "both"
    cam_pair_cnn: bool = False
    cam_chain: bool = False
    cam_pair_cnn_init_std: float | None = None
    grad_checkpointing: bool = False

    def __post_init__(self) -> None:
        if self.name not in ("rayzer", "lvsm"):
            raise ValueError(f"model.name must be 'rayzer' or 'lvsm', got {self.name!r}")
        if self.cam_readout not in ("token", "token+pool", "token+grid"):
            raise ValueError(
                "model.cam_readout must be 'token', 'token+pool' or 'token+grid', got "
                f"{self.cam_readout!r}"
            )
        if self.cam_attention not in ("global", "alternating"):
            raise ValueError(
                f"model.cam_attention must be 'global' or 'alternating', got {self.cam_attention!r}"
            )
        if self.epipolar_bias and not self.keep_input_tokens:
            raise ValueError(
                "model.epipolar_bias needs model.keep_input_tokens=true (the bias relates target "
                "rays to the input-view tokens, which are otherwise not in the decoder's context)"
            )
        if self.decoder_readout not in ("regress", "blend", "sweep"):
            raise ValueError(
                "model.decoder_readout must be 'regress', 'blend' or 'sweep', got "
                f"{self.decoder_readout!r}"
            )
        if self.cam_pair_cnn_init_std is not None and not self.cam_pair_cnn_init_std > 0:
            raise ValueError(
                "model.cam_pair_cnn_init_std must be positive (or null for the default init), "
                f"got {self.cam_pair_cnn_init_std}"
            )
        if self.sense_mirror not in ("both", "resolved"):
            raise ValueError(
                f"model.sense_mirror must be 'both' or 'resolved', got {self.sense_mirror!r}"
            )
        if self.sweep_depths < 2:
            raise ValueError(f"model.sweep_depths must be at least 2, got {self.sweep_depths}")
        if self.decoder_readout == "blend" and not self.keep_input_tokens:
            raise ValueError(
                "model.decoder_readout=blend needs model.keep_input_tokens=true (it reads the "
                "input-view tokens in the decoder's context)"
            )
        if not self.ray_near > 0:
            raise ValueError(f"model.ray_near must be > 0, got {self.ray_near}")
        if self.dim % self.num_heads:
            raise ValueError(f"model.dim={self.dim} is not divisible by num_heads={self.num_heads}")
        if self.pos_enc_dim % 4:
            raise ValueError(f"model.pos_enc_dim={self.pos_enc_dim} must be divisible by 4")
        for key in ("patch_size", "dim"):
            if getattr(self, key) <= 0:
                raise ValueError(f"model.{key} must be positive, got {getattr(self, key)}")
        if self.num_scene_tokens < 0 or (self.num_scene_tokens == 0 and not self.keep_input_tokens):
            raise ValueError(
                f"model.num_scene_tokens must be positive (or 0 with keep_input_tokens), "
                f"got {self.num_scene_tokens}"
            )
