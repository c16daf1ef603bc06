"""Neural-network building blocks shared by all rayzer models."""

from rayzer.nn.correlation import CorrelationTokens
from rayzer.nn.epipolar import EpipolarBias, epipolar_log_counts
from rayzer.nn.patch import ConvStem, PatchEmbed, PatchUnembed, patchify, unpatchify
from rayzer.nn.positional import (
    ViewPositionEmbedding,
    patch_grid_encoding,
    sinusoidal_encoding,
)
from rayzer.nn.transformer import MLP, Attention, Transformer, TransformerBlock

__all__ = [
    "MLP",
    "Attention",
    "ConvStem",
    "CorrelationTokens",
    "EpipolarBias",
    "PatchEmbed",
    "PatchUnembed",
    "Transformer",
    "TransformerBlock",
    "ViewPositionEmbedding",
    "epipolar_log_counts",
    "patch_grid_encoding",
    "patchify",
    "sinusoidal_encoding",
    "unpatchify",
]
