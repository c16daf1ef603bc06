"""Typed model configurations and the table of config classes by model name.

A leaf module (standard library only): the data pipeline and config validation import it
without loading any model code. Each model owns one config dataclass; a model registered with
:func:`rayzer.models.registry.register_model` puts its ``config_class`` here too, so that
``model.name`` in a YAML file or a ``model.name=…`` override selects the class that validates
the rest of the ``model`` section.

The latent-scene models share :class:`LatentSceneConfig` (trunk sizes, ``scene`` and
``decoder`` parts); RayZer adds its ``camera`` estimator and ``sense`` head.

Configs written before the per-model classes (one flat ``model`` section with ``cam_layers``,
``decoder_readout``, …, shared by RayZer and LVSM) are read through :meth:`ModelConfig.migrate`:
flat keys move to their nested place, settings another model ignored are dropped, and switches
that were deleted (see ``docs/decisions.md``) are accepted at their old default value only.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from typing import Any, ClassVar

#: Switches deleted from RayZer with the default they had; an old config may still name them
#: at that value (a run that never used them), any other value is an error.
REMOVED_SWITCHES: dict[str, Any] = {
    "learn_focal": True,
    "cam_pair_canonical": False,
    "cam_attention": "global",
    "cam_conv_stem": False,
    "cam_readout": "token",
    "cam_correlation": False,
    "cam_correlation_radius": 4,
    "cam_unit_translation": False,
    "epipolar_bias": False,
    "cam_pair_cnn": False,
    "cam_chain": False,
    "cam_pair_cnn_init_std": None,
}


@dataclass
class ModelConfig:
    """Base of every model config: ``name`` is the registry key of the model it builds."""

    name: str = ""
    #: Old flat keys → (part, field), applied by :meth:`migrate`.
    legacy_keys: ClassVar[dict[str, tuple[str, str]]] = {}
    #: Old flat keys this model never read (dropped by :meth:`migrate`).
    ignored_keys: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def migrate(cls, section: dict[str, Any]) -> dict[str, Any]:
        """A ``model`` section in the old flat layout → this class's layout (a new dict).

        Sections already in the new layout pass unchanged.

        Raises:
            ValueError: a removed switch at a value other than its old default.
        """
        out: dict[str, Any] = {}
        for key, value in section.items():
            if key in REMOVED_SWITCHES:
                if value != REMOVED_SWITCHES[key]:
                    raise ValueError(
                        f"model.{key}={value!r}: this switch was removed (no preset used it and "
                        "the experiments recorded no gain; see docs/decisions.md)"
                    )
                continue
            if key in cls.ignored_keys:
                continue
            if key in cls.legacy_keys:
                part, name = cls.legacy_keys[key]
                out.setdefault(part, {})
                if not isinstance(out[part], dict):
                    raise ValueError(f"model.{part} must be a mapping, got {out[part]!r}")
                out[part].setdefault(name, value)
                continue
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = {**out[key], **value}  # a nested part given both ways: new keys win
            else:
                out[key] = value
        return out


@dataclass
class SceneConfig:
    """The scene reconstructor (:class:`rayzer.models.latent_scene.SceneReconstructor`).

    Attributes:
        layers: transformer depth.
        num_tokens: n learnable latent scene tokens.
        keep_input_tokens: the scene is the reconstructor's whole output — the n latent tokens
            *and* the processed input-view tokens — so the decoder can read input-aligned
            tokens directly (no latent bottleneck) at the cost of a longer decoder context;
            ``num_tokens`` may then be 0.
    """

    layers: int = 3
    num_tokens: int = 64
    keep_input_tokens: bool = False


@dataclass
class DecoderConfig:
    """The rendering decoder (:class:`rayzer.models.latent_scene.RayDecoder`).

    Attributes:
        layers: transformer depth.
        readout: ``"regress"`` (the paper: each target token → its RGB patch) or ``"sweep"``
            (:class:`rayzer.models.readouts.SweepReadout`: per-pixel plane-sweep image-based
            rendering from the input views, depth from the decoder plus colour consistency).
        sweep_depths: depth samples per target pixel of the sweep readout.
        ray_near: nearest depth the sweep samples (uniform in inverse depth out to infinity),
            in the cameras' world units.
    """

    layers: int = 3
    readout: str = "regress"
    sweep_depths: int = 16
    ray_near: float = 0.5


@dataclass
class LatentSceneConfig(ModelConfig):
    """Sizes shared by the latent-scene models (RayZer and LVSM).

    Attributes:
        dim: token width d; num_heads: attention heads; mlp_ratio: block MLP width / d.
        patch_size: p; image sides must be divisible by it.
        qk_norm: RMS-normalise queries and keys in every attention.
        grad_checkpointing: recompute block activations in backward.
        scene, decoder: the two halves (:class:`SceneConfig`, :class:`DecoderConfig`).
    """

    dim: int = 128
    num_heads: int = 4
    mlp_ratio: float = 4.0
    patch_size: int = 8
    qk_norm: bool = True
    grad_checkpointing: bool = False
    scene: SceneConfig = field(default_factory=SceneConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)

    legacy_keys: ClassVar[dict[str, tuple[str, str]]] = {
        "scene_layers": ("scene", "layers"),
        "num_scene_tokens": ("scene", "num_tokens"),
        "keep_input_tokens": ("scene", "keep_input_tokens"),
        "dec_layers": ("decoder", "layers"),
        "decoder_readout": ("decoder", "readout"),
        "sweep_depths": ("decoder", "sweep_depths"),
        "ray_near": ("decoder", "ray_near"),
    }

    def __post_init__(self) -> None:
        for key in ("patch_size", "dim", "num_heads"):
            if getattr(self, key) <= 0:
                raise ValueError(f"model.{key} must be positive, got {getattr(self, key)}")
        if self.dim % self.num_heads:
            raise ValueError(f"model.dim={self.dim} is not divisible by num_heads={self.num_heads}")
        scene, dec = self.scene, self.decoder
        if scene.num_tokens < 0 or (scene.num_tokens == 0 and not scene.keep_input_tokens):
            raise ValueError(
                "model.scene.num_tokens must be positive (or 0 with keep_input_tokens), got "
                f"{scene.num_tokens}"
            )
        if dec.readout not in ("regress", "sweep"):
            raise ValueError(
                f"model.decoder.readout must be 'regress' or 'sweep', got {dec.readout!r}"
            )
        if dec.sweep_depths < 2:
            raise ValueError(f"model.decoder.sweep_depths must be >= 2, got {dec.sweep_depths}")
        if not dec.ray_near > 0:
            raise ValueError(f"model.decoder.ray_near must be > 0, got {dec.ray_near}")


@dataclass
class CameraConfig:
    """RayZer's camera estimator (:class:`rayzer.models.camera.CameraEstimator`).

    Attributes:
        layers: transformer depth (full self-attention over all views).
        focal_init: initial normalised focal ``fx / W`` (1.25 ≈ 44° horizontal FoV).
        pose_head_init_std: std of the pose head's last layer; small values start every view
            near the canonical (identity) pose.
        focal_head_init_std: std of the focal head's last layer.
    """

    layers: int = 3
    focal_init: float = 1.25
    pose_head_init_std: float = 1e-3
    focal_head_init_std: float = 1e-3


@dataclass
class SenseConfig:
    """RayZer's sense head against the depth-reversal (Necker) ambiguity of orbits
    (:mod:`rayzer.models.sense`).

    Attributes:
        enabled: training renders every sample with its camera path and the path's mirror
            image, and a small CNN learns from the better render which way each view turned; at
            inference the path is mirrored where the head disagrees. Costs a second render.
        mirror: ``"both"``: both renders carry gradient and the better one is kept per sample;
            ``"resolved"``: the head-resolved path is rendered with gradient and its mirror
            without (only to label the head); a sample whose mirror renders better leaves the
            photometric loss. ``"resolved"`` costs about 0.8× the step time.
        weight: weight of the head's cross-entropy in the loss.
    """

    enabled: bool = False
    mirror: str = "both"
    weight: float = 1.0


@dataclass
class RayZerConfig(LatentSceneConfig):
    """RayZer (the paper's model): latent-scene sizes plus the camera estimator and the sense head.

    Attributes:
        pos_enc_dim: width of each sinusoidal part of the [patch position ‖ image index]
            embedding; index_scale: multiplier on the image index before its sinusoids.
        camera: :class:`CameraConfig`; sense: :class:`SenseConfig`.
    """

    name: str = "rayzer"
    pos_enc_dim: int = 64
    index_scale: float = 1.0
    camera: CameraConfig = field(default_factory=CameraConfig)
    sense: SenseConfig = field(default_factory=SenseConfig)

    legacy_keys: ClassVar[dict[str, tuple[str, str]]] = {
        **LatentSceneConfig.legacy_keys,
        "cam_layers": ("camera", "layers"),
        "focal_init": ("camera", "focal_init"),
        "pose_head_init_std": ("camera", "pose_head_init_std"),
        "focal_head_init_std": ("camera", "focal_head_init_std"),
        "sense_head": ("sense", "enabled"),
        "sense_mirror": ("sense", "mirror"),
        "sense_weight": ("sense", "weight"),
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.pos_enc_dim % 4:
            raise ValueError(f"model.pos_enc_dim={self.pos_enc_dim} must be divisible by 4")
        if self.sense.mirror not in ("both", "resolved"):
            raise ValueError(
                f"model.sense.mirror must be 'both' or 'resolved', got {self.sense.mirror!r}"
            )
        if self.sense.weight < 0:
            raise ValueError(f"model.sense.weight must be >= 0, got {self.sense.weight}")


@dataclass
class LVSMConfig(LatentSceneConfig):
    """The LVSM encoder–decoder oracle: latent-scene sizes only (its cameras are given)."""

    name: str = "lvsm"

    #: RayZer's settings in an old shared section (LVSM ignored them), and RayZer's parts in a
    #: preset switched to LVSM with ``model.name=lvsm``.
    ignored_keys: ClassVar[frozenset[str]] = frozenset(
        (RayZerConfig.legacy_keys.keys() - LatentSceneConfig.legacy_keys.keys())
        | {"pos_enc_dim", "index_scale", "camera", "sense"}
    )


# -- the table of config classes -----------------------------------------------------------------

_CONFIGS: dict[str, type] = {"rayzer": RayZerConfig, "lvsm": LVSMConfig}


def register_config(name: str, cls: type, replace: bool = False) -> None:
    """Make ``model.name=<name>`` validate with dataclass ``cls`` (done by
    :func:`rayzer.models.registry.register_model`; ``replace``: a re-registration of the same
    model, e.g. its module reloaded)."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"the config of model {name!r} must be a dataclass, got {cls!r}")
    known = _CONFIGS.get(name)
    if known is not None and known is not cls and not replace:
        raise ValueError(f"model {name!r} is already registered with config {known.__name__}")
    _CONFIGS[name] = cls


def config_names() -> list[str]:
    """Names with a registered config class (the models ``model.name`` may select)."""
    return sorted(_CONFIGS)


def config_class(name: str) -> type:
    """The config dataclass of model ``name``.

    Raises:
        ValueError: no model of that name (the message lists the known ones).
    """
    if not isinstance(name, str):  # e.g. a list from a damaged YAML: unhashable, no lookup
        raise ValueError(f"model.name must be one of {config_names()}, got {name!r}")
    if name not in _CONFIGS:
        # The built-in models outside this module (erayzer, nas3r) register their configs when
        # rayzer.models is imported; imported here, on demand, so that reading a config does
        # not need the caller to have imported the models first (and config stays light).
        importlib.import_module("rayzer.models")
    if name not in _CONFIGS:
        raise ValueError(f"model.name must be one of {config_names()}, got {name!r}")
    return _CONFIGS[name]


def migrate_model_section(section: dict[str, Any]) -> dict[str, Any]:
    """The ``model`` section (old flat layout or new) in the layout of its model's config
    class, ``name`` included (default ``"rayzer"``, the only name before the registry)."""
    name = section.get("name") or "rayzer"
    cls = config_class(name)
    migrate = getattr(cls, "migrate", None)
    out = migrate(section) if migrate is not None else dict(section)
    out["name"] = name
    return out


def model_config(**fields: Any) -> Any:
    """A typed model config from keyword fields in either layout, e.g.
    ``model_config(name="lvsm", dim=32, scene_layers=1)`` (unknown keys are errors)."""
    section = migrate_model_section(fields)
    cls = config_class(section["name"])
    return _build(cls, section)


def _build(cls: type, values: dict[str, Any]) -> Any:
    """Instantiate dataclass ``cls`` from a dict, nested dataclass parts from nested dicts."""
    kwargs = {}
    known = {f.name: f for f in dataclasses.fields(cls)}
    for key, value in values.items():
        if key not in known:
            raise ValueError(f"{cls.__name__} has no field {key!r}")
        sub = known[key].default_factory  # type: ignore[misc]
        if isinstance(value, dict) and dataclasses.is_dataclass(sub):
            value = _build(sub, value)  # type: ignore[arg-type]
        kwargs[key] = value
    return cls(**kwargs)
