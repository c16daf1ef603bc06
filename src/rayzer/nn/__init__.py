"""Neural-network building blocks shared by all rayzer models."""

from rayzer.nn.patch import PatchEmbed, PatchUnembed, patchify, unpatchify
from rayzer.nn.positional import (
    ViewPositionEmbedding,
    patch_grid_encoding,
    sinusoidal_encoding,
)
from rayzer.nn.transformer import MLP, Attention, Transformer, TransformerBlock

__all__ = [
    "MLP",
    "Attention",
    "PatchEmbed",
    "PatchUnembed",
    "Transformer",
    "TransformerBlock",
    "ViewPositionEmbedding",
    "patch_grid_encoding",
    "patchify",
    "sinusoidal_encoding",
    "unpatchify",
]
