"""Config overrides shared by the tests: a RayZer small enough for CPU tests.

Imported as ``from _tiny import …`` (``tests/`` is on pytest's ``pythonpath``).
"""

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
