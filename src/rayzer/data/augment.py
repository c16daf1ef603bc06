"""Training-time augmentations that keep images, intrinsics and cameras consistent."""

from __future__ import annotations

import dataclasses

import torch

from rayzer.data.clip_sources import Clip

#: Mirrors x: applied on both sides of c2w it mirrors the world and the camera axes together.
_MIRROR_X = torch.diag(torch.tensor([-1.0, 1.0, 1.0, 1.0]))


def flip_clip(clip: Clip) -> Clip:
    """The clip mirrored left–right (NAS3R's augmentation).

    Images are flipped along their width; the principal point becomes ``cx' = W − cx``; each
    camera becomes ``c2w' = S · c2w · S`` with ``S = diag(−1, 1, 1, 1)``: the mirror image of the
    scene seen by mirrored cameras, so a world point that projected to pixel column ``u`` now
    projects to ``W − u`` (the rotations stay proper: ``det(S R S) = det R``). Unposed clips
    (``c2w`` None) only flip their images.
    """
    images = clip.images.flip(-1)
    if clip.c2w is None or clip.K is None:
        return dataclasses.replace(clip, images=images)
    width = images.shape[-1]
    s = _MIRROR_X.to(clip.c2w)
    K = clip.K.clone()
    K[..., 2] = width - K[..., 2]
    return Clip(images, s @ clip.c2w @ s, K)
