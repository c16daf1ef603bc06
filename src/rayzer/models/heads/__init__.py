"""Prediction heads of the explicit-3D models (E-RayZer, NAS3R): cameras, focal, per-pixel maps."""

from rayzer.models.heads.camera import CameraTokenHead, PairwisePoseHead, pose_from_head
from rayzer.models.heads.dpt import DPTLiteHead
from rayzer.models.heads.focal import (
    SoftplusFocalHead,
    focal_from_fov_logit,
    inverse_softplus,
)
from rayzer.models.heads.pixel_decoder import PixelLinearDecoder

__all__ = [
    "CameraTokenHead",
    "DPTLiteHead",
    "PairwisePoseHead",
    "PixelLinearDecoder",
    "SoftplusFocalHead",
    "focal_from_fov_logit",
    "inverse_softplus",
    "pose_from_head",
]
