"""The model interface: what every rayzer model provides, and all that the trainer, evaluation,
inference, the demo, the server and the benchmarks may know about a model.

A model is a pure function of tensors (no file I/O, no config parsing in ``forward``) with four
stages, each usable on its own:

* :meth:`RayModel.predict_cameras` — images of all views → cameras of all views (models whose
  ``capabilities.predicts_cameras`` is False raise :class:`NotImplementedError`);
* :meth:`RayModel.reconstruct` — input views + their cameras → a scene (a latent token set, a
  set of 3D Gaussians, …: whatever the model renders from);
* :meth:`RayModel.render` — a scene + any cameras → :class:`Rendered` (RGB, and depth / alpha
  where the model has them);
* :meth:`RayModel.forward` — one self-supervised (or, for oracles, supervised-camera) pass over
  a batch: cameras for all views, the scene from the input views, renders of the target views.

and it owns its training objective (:meth:`RayModel.loss`, named terms), its optimiser parameter
groups (:meth:`RayModel.param_groups`) and its training-time schedules
(:meth:`RayModel.on_train_step`).

Conventions (:mod:`rayzer`): images (B, V, 3, H, W) in [0, 1], views in frame order; cameras are
OpenCV camera-to-world (B, V, 4, 4) and intrinsics are *normalised* by the image size,
``K_norm = (fx/W, fy/H, cx/W, cy/H)`` (B, V, 4); view index tensors are (B, Vi) / (B, Vt) long.
Batches are dicts with the documented keys of :mod:`rayzer.data` (``image``, and ``c2w`` / ``K``
in pixels when the data is posed).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from torch import Tensor, nn

from rayzer.nn.param_groups import decay_groups


@dataclass(frozen=True)
class Capabilities:
    """What a model can do; consumers branch on these flags, never on a model's name or class.

    A model with neither ``predicts_cameras`` nor ``needs_gt_cameras`` renders its targets
    from its own non-geometric view codes: it is evaluated through ``forward`` (no pose
    metrics) and cannot serve inference, which needs cameras.

    Attributes:
        predicts_cameras: :meth:`RayModel.predict_cameras` works (self-supervised models).
        needs_gt_cameras: ``forward`` reads ``batch["c2w"]`` / ``batch["K"]`` (oracles: posed data
            only).
        outputs_depth: :meth:`RayModel.render` returns depth, and the scene has per-input-view
            depth (:attr:`ModelOutput.input_depth`).
        outputs_gaussians: the scene is a set of 3D Gaussians that can be exported (``.ply``).
    """

    predicts_cameras: bool
    needs_gt_cameras: bool = False
    outputs_depth: bool = False
    outputs_gaussians: bool = False


@dataclass
class CameraPrediction:
    """Cameras of every view of a sample.

    Attributes:
        c2w: (B, V, 4, 4) OpenCV camera-to-world in the model's own frame (its canonical view at
            the identity where it has one).
        K_norm: (B, V, 4) normalised intrinsics (fx/W, fy/H, cx/W, cy/H).
        tokens: (B, V, d) per-view camera features (for pose probing), or None.
        canonical: index of the view at the identity, or None.
        extras: model-specific outputs of the estimator (e.g. a sense head's decision).
    """

    c2w: Tensor
    K_norm: Tensor
    tokens: Tensor | None = None
    canonical: int | None = None
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass
class Rendered:
    """Views rendered from a scene.

    Attributes:
        rgb: (B, Vt, 3, H, W) in [0, 1].
        depth: (B, Vt, 1, H, W) camera z-depth (None: the model has no depth).
        alpha: (B, Vt, 1, H, W) accumulated opacity (None: not defined for the model).
    """

    rgb: Tensor
    depth: Tensor | None = None
    alpha: Tensor | None = None


@dataclass
class ModelOutput:
    """Result of :meth:`RayModel.forward`.

    Attributes:
        cameras: cameras of all V views (predicted, or the ground truth for oracles); None for
            a model without geometric cameras (``predicts_cameras`` and ``needs_gt_cameras``
            both False, e.g. a latent-camera ablation: its own view codes, in ``extras``).
        scene: what :meth:`RayModel.reconstruct` built from the input views.
        rendered: the target views rendered at their cameras (``rendered.rgb`` (B, Vt, 3, H, W)).
        input_index: (B, Vi) views that built the scene; target_index: (B, Vt) views rendered.
        input_depth: (B, Vi, 1, H, W) per-pixel depth of the input views (models with depth).
        extras: model-specific tensors its own :meth:`RayModel.loss` reads.
    """

    cameras: CameraPrediction | None
    scene: Any
    rendered: Rendered
    input_index: Tensor
    target_index: Tensor
    input_depth: Tensor | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def render(self) -> Tensor:
        """(B, Vt, 3, H, W) the target renders (``rendered.rgb``)."""
        return self.rendered.rgb


class RayModel(nn.Module, abc.ABC):
    """Base class of every registered model (see :mod:`rayzer.models.registry`).

    Subclasses set ``capabilities`` and ``config_class`` (their typed config dataclass, with a
    ``name`` field), take that config as the only constructor argument and keep it as
    ``self.cfg``. :func:`rayzer.models.registry.register_model` sets ``name`` (the registry
    key, = ``cfg.name``).
    """

    capabilities: ClassVar[Capabilities]
    config_class: ClassVar[type]
    name: ClassVar[str] = ""
    #: The method's name as papers write it, for figures and messages ("" = the class name).
    display_name: ClassVar[str] = ""
    cfg: Any

    @classmethod
    def title(cls) -> str:
        """The name shown to users: ``display_name`` or the class name."""
        return cls.display_name or cls.__name__

    def gaussians(self, scene: Any, index: int = 0) -> dict[str, Tensor]:
        """The 3D Gaussians of sample ``index`` of ``scene`` (``capabilities.outputs_gaussians``).

        Returns the keyword arguments of :func:`rayzer.render.save_ply`: ``means`` (N, 3),
        ``quats`` (N, 4) (w, x, y, z), ``scales`` (N, 3), ``opacities`` (N,), ``colors``
        (N, K, 3) SH coefficients or (N, 3) RGB, in the model's own frame and scale. The default
        reads a scene with a ``to_render_args()`` method (:class:`rayzer.models.gaussians.
        GaussianScene`); a model with another scene type overrides this.
        """
        if not self.capabilities.outputs_gaussians:
            raise NotImplementedError(f"{self.title()} does not output Gaussians")
        args = scene.to_render_args()
        keys = ("means", "quats", "scales", "opacities")
        return {k: args[k][index] for k in keys} | {"colors": args["colors"][index]}

    @property
    def image_multiple(self) -> int:
        """Image sides must be divisible by this (the patch size; 1 for models without one)."""
        return int(getattr(self.cfg, "patch_size", 1))

    # -- stages ---------------------------------------------------------------------------------

    def predict_cameras(self, images: Tensor) -> CameraPrediction:
        """images (B, V, 3, H, W), views in frame order → cameras of all V views."""
        raise NotImplementedError(f"{type(self).__name__} does not predict cameras")

    @abc.abstractmethod
    def reconstruct(
        self, images: Tensor, c2w: Tensor, K_norm: Tensor, view_positions: Tensor | None = None
    ) -> Any:
        """Input views (B, Vi, 3, H, W) with cameras c2w (B, Vi, 4, 4), K_norm (B, Vi, 4) → the
        scene. ``view_positions`` (B, Vi): the views' positions in the frame-ordered set, for
        models that embed them (default 0 … Vi − 1)."""

    @abc.abstractmethod
    def render(self, scene: Any, c2w: Tensor, K_norm: Tensor, height: int, width: int) -> Rendered:
        """A scene and target cameras c2w (B, Vt, 4, 4), K_norm (B, Vt, 4) → :class:`Rendered`."""

    @abc.abstractmethod
    def forward(
        self, batch: Mapping[str, Tensor], input_index: Tensor, target_index: Tensor
    ) -> ModelOutput:
        """One pass over a batch (``batch["image"]`` (B, V, 3, H, W); oracles also read
        ``batch["c2w"]`` and pixel ``batch["K"]``): cameras of all views, the scene from the
        input views only, the target views rendered at their cameras."""

    # -- training -------------------------------------------------------------------------------

    @abc.abstractmethod
    def loss(
        self, output: ModelOutput, batch: Mapping[str, Tensor], perceptual: nn.Module | None
    ) -> dict[str, Tensor]:
        """Named loss terms of one micro-batch. ``"loss"`` is the differentiable total; every
        other entry is a detached scalar for logging (e.g. ``"mse"``, ``"psnr"``,
        ``"perceptual"``). ``perceptual`` is the frozen perceptual network the trainer built
        (None when the recipe's perceptual weight is 0): ``perceptual(render, target,
        reduce=False)`` gives one distance per image and its ``weight`` attribute is λ
        (:func:`rayzer.models.losses.photometric_loss` uses both)."""

    def param_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        """Optimiser parameter groups. Default (:func:`rayzer.nn.param_groups.decay_groups`):
        ``"decay"`` with ``weight_decay`` on weight matrices, ``"no_decay"`` with 0 on norms,
        biases, embeddings, learned tokens and positional embeddings."""
        return decay_groups(self, weight_decay)

    def on_train_step(self, step: int, total_steps: int) -> None:
        """Called by the trainer before each optimiser step (0-based ``step``): the place for
        training-time schedules (a focal frozen for the first steps, a warm-up). Default: none."""
