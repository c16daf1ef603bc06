"""Config overrides shared by the tests: a RayZer small enough for CPU tests.

Imported as ``from _tiny import …`` (``tests/`` is on pytest's ``pythonpath``).
"""

from pathlib import Path

from rayzer.model_config import model_config

#: dim 32, 1+1+1 layers, 8 latent tokens, patch 8 (the tiny-cpu preset's patch).
TINY_SIZES = {
    "dim": 32,
    "num_heads": 2,
    "patch_size": 8,
    "cam_layers": 1,
    "scene_layers": 1,
    "dec_layers": 1,
    "num_scene_tokens": 8,
    "pos_enc_dim": 16,
}
#: The same as ``key=value`` config overrides.
TINY_MODEL = [f"model.{key}={value}" for key, value in TINY_SIZES.items()]


def tiny_model_config(**changes):
    """A typed model config of the tiny sizes (``changes`` override fields in the flat or the
    nested layout, e.g. ``name="lvsm"``)."""
    return model_config(**{**TINY_SIZES, **changes})


def tiny_data(image_size: int, span_start_max: int = 5) -> list[str]:
    """2 + 2 views from 8-frame clips at ``image_size`` px, windows of 4 … 8 frames."""
    return [
        f"data.image_size={image_size}",
        "data.frames_per_clip=8",
        "data.num_input_views=2",
        "data.num_target_views=2",
        "data.span_min=4",
        f"data.span_start_max={span_start_max}",
        "data.span_end_max=8",
    ]


def orbit_photos(folder: Path, size: int, views: int = 4) -> Path:
    """``views`` PNG photos ``000.png`` … of a synthetic orbit clip at ``size`` px in ``folder``
    (created): a scene with real parallax for inference tests."""
    import numpy as np
    from PIL import Image

    from rayzer.data.synthetic.clip import SynthConfig, render_clip

    clip = render_clip(
        21, SynthConfig(family="orbit", frames=24, height=size, width=size), list(range(views))
    )
    folder.mkdir(parents=True)
    for i, img in enumerate(clip.images):
        array = (img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        Image.fromarray(array).save(folder / f"{i:03d}.png")
    return folder


#: Tiny E-RayZer and NAS3R config fields (the explicit-3D models' loss-term tests).
EXPLICIT_TINY = {
    "erayzer": {"dim": 32, "num_heads": 2, "pose_depth": 1, "scene_depth": 1, "pos_enc_dim": 16},
    "nas3r": {
        "dim": 32,
        "num_heads": 2,
        "depth": 2,
        "head_taps": (0, 1),
        "head_features": 16,
        "rgb_skip_channels": 8,
        "pos_enc_dim": 16,
    },
}


def build_explicit(kind: str, **changes):
    """A tiny ``"erayzer"`` or ``"nas3r"`` model (seed 0), config fields ``changes`` on top."""
    import torch

    from rayzer.models.erayzer import ERayZer, ERayZerConfig
    from rayzer.models.nas3r import NAS3R, NAS3RConfig

    torch.manual_seed(0)
    model, config = (ERayZer, ERayZerConfig) if kind == "erayzer" else (NAS3R, NAS3RConfig)
    return model(config(**{**EXPLICIT_TINY[kind], **changes}))


def pose_parameters(model) -> list:
    """The parameters of an explicit model's camera head (E-RayZer ``pose_head``, NAS3R
    ``camera_head``)."""
    head = model.pose_head if hasattr(model, "pose_head") else model.camera_head
    return list(head.parameters())


def assert_aux_term_reaches_poses(model, batch, out, terms: dict, name: str, weight: float) -> None:
    """An explicit model's auxiliary loss term ``name`` (``terms = model.loss(out, batch, None)``):
    positive, added to the photometric loss with ``weight``, and its gradient reaches the camera
    head (finite, not all zero)."""
    import torch

    from rayzer.models.losses import photometric_loss
    from rayzer.models.views import gather_views

    mse = photometric_loss(out.render, gather_views(batch["image"], out.target_index))["loss"]
    assert torch.isfinite(terms[name]) and terms[name] > 0
    torch.testing.assert_close(terms["loss"], mse + weight * terms[name])
    (terms["loss"] - mse).backward()
    grads = [p.grad for p in pose_parameters(model) if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0


#: A small training stream: 32 px, 24-frame clips, 2 + 2 views over a 4-6 frame span
#: (the data-stream tests' settings, as ``key=value`` overrides of any preset).
SMALL_STREAM = [
    "data.image_size=32",
    "data.frames_per_clip=24",
    "data.num_input_views=2",
    "data.num_target_views=2",
    "data.span_min=4",
    "data.span_start_max=6",
    "data.span_end_max=6",
]
