"""Config overrides shared by the tests: a RayZer small enough for CPU tests.

Imported as ``from _tiny import …`` (``tests/`` is on pytest's ``pythonpath``).
"""

#: dim 32, 1+1+1 layers, 8 latent tokens, patch 8 (the tiny-cpu preset's patch).
TINY_MODEL = [
    "model.dim=32",
    "model.num_heads=2",
    "model.patch_size=8",
    "model.cam_layers=1",
    "model.scene_layers=1",
    "model.dec_layers=1",
    "model.num_scene_tokens=8",
    "model.pos_enc_dim=16",
]


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
