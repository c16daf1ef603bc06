"""``--render-size``: novel views of an explicit-3D scene at any resolution, with memory checks.

A scene of 3D Gaussians (E-RayZer, NAS3R) does not depend on the resolution it was predicted
at: the novel-view cameras keep their normalised intrinsics (the same field of view) and are
rasterized on a larger or smaller pixel grid. The short side becomes ``render_size`` pixels, the
long side keeps the input's aspect ratio (rounded to an even number: H.264 needs even sides).
What stays at the model's input size: ``images/``, ``renders/`` and ``depth/`` (they pair
pixel for pixel with the views the model saw and ``cameras.json``) and the reconstruction PSNR.

Latent-scene models (RayZer, LVSM) decode fixed-size patches from a latent scene: asked for
another size they are refused with a message (an upscaled video would only pretend to have the
detail); ``--size`` changes their input, and so their output, resolution.

Memory is checked before the work that needs it: the frames (video, GIF) from the pixel count
alone, before any prediction (:func:`check_frames_memory`); the rasterizer's part, which grows
with each Gaussian's screen footprint, from the Gaussians' projected footprints before any
novel view is rendered (:func:`views_per_pass`, which also lowers the views rendered per pass).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from rayzer.infer.model import LoadedModel
from rayzer.infer.predict import Cameras
from rayzer.render.budget import (
    available_memory_bytes,
    count_intersections,
    render_bytes,
    tile_padded_pixels,
)
from rayzer.render.compositing_forward import forward_workers
from rayzer.render.rasterize import resolve_backend

MIN_RENDER_SIZE = 16
MAX_RENDER_SIZE = 8192
#: Fraction of the memory free at check time that the novel views may plan to use.
MEMORY_FRACTION = 0.7
#: Novel-view frames whose footprints are counted to plan the rasterizer's memory (evenly spaced;
#: the paths are smooth, so neighbouring frames have similar footprints).
SAMPLED_FRAMES = 16
_GIB = 2**30


def check_render_size(render_size: int | None) -> None:
    """The option alone (before any work): an even integer in ``[16, 8192]`` or None."""
    if render_size is None:
        return
    if isinstance(render_size, bool) or int(render_size) != render_size:
        raise ValueError(f"--render-size must be an integer, got {render_size!r}")
    if not MIN_RENDER_SIZE <= render_size <= MAX_RENDER_SIZE or render_size % 2:
        raise ValueError(
            f"--render-size must be an even number of pixels in {MIN_RENDER_SIZE}.."
            f"{MAX_RENDER_SIZE} (H.264 video needs even sides), got {render_size}"
        )


def render_dims(height: int, width: int, render_size: int | None) -> tuple[int, int]:
    """``(H, W)`` of the novel views: the input's, or short side ``render_size`` and the long
    side scaled to keep the aspect ratio, rounded to an even number."""
    if render_size is None:
        return height, width
    scale = render_size / min(height, width)

    def side(n: int) -> int:
        return render_size if n == min(height, width) else max(2, 2 * round(n * scale / 2))

    return side(height), side(width)


def at_size(cameras: Cameras, height: int, width: int) -> Cameras:
    """The same cameras (same normalised intrinsics, so the same field of view) for
    ``height x width`` images: pixel intrinsics scaled by the size ratio."""
    if (height, width) == (cameras.height, cameras.width):
        return cameras
    sx, sy = width / cameras.width, height / cameras.height
    K = cameras.K * cameras.K.new_tensor([sx, sy, sx, sy])
    return Cameras(cameras.c2w, K, height, width, cameras.canonical)


def check_model_renders_any_size(
    model: LoadedModel, render_size: int | None, height: int, width: int
) -> None:
    """Refuse ``render_size`` for a model whose scene renders only at its input size."""
    if render_size is None or render_dims(height, width, render_size) == (height, width):
        return
    if not model.model.capabilities.outputs_gaussians:
        raise ValueError(
            f"--render-size {render_size}: {model.model.title()} renders only at its input size "
            f"({width}x{height}); a model with 3D Gaussians (E-RayZer, NAS3R) renders at any "
            "size. Use --size to change this model's input (and output) size."
        )


def frames_bytes(height: int, width: int, frames: int, largest_segment: int) -> int:
    """Peak bytes the novel-view frames take on the CPU: one segment's float RGB and depth
    (16 B per pixel) before conversion, every frame as uint8 RGB, the joined video array and the
    GIF's copy (3 x 3 B per pixel)."""
    pixels = height * width
    return pixels * (16 * largest_segment + 9 * frames)


def check_frames_memory(
    height: int, width: int, frames: int, largest_segment: int, render_size: int | None
) -> None:
    """Refuse, before any work, a render size whose frames alone would not fit in the memory
    free now (only checked when ``--render-size`` is given)."""
    if render_size is None or frames == 0:
        return
    need = frames_bytes(height, width, frames, largest_segment)
    free = available_memory_bytes("cpu")
    if free is not None and need > MEMORY_FRACTION * free:
        raise ValueError(
            f"--render-size {render_size}: {frames} novel-view frames of {width}x{height} need "
            f"about {need / _GIB:.1f} GiB but {free / _GIB:.1f} GiB of memory are free; use a "
            "smaller --render-size or fewer --path-frames / --spiral-frames"
        )


def _memory_name(model: LoadedModel) -> str:
    return "GPU memory" if model.device.type == "cuda" else "memory"


def views_per_pass(
    model: LoadedModel, scene: Any, cameras: Cameras, chunk: int, render_size: int | None
) -> int:
    """Views per rasterizer pass for ``cameras`` so one pass fits in the memory free now, from
    the Gaussians' projected footprints (a sample of :data:`SAMPLED_FRAMES` frames).

    Returns ``chunk`` for models without Gaussians or when ``render_size`` is None (the renders
    then have the input's size, as the model was built for).

    Raises:
        ValueError: a single frame would not fit (names the size, the need and what is free).
    """
    if render_size is None or not model.model.capabilities.outputs_gaussians or not len(cameras):
        return chunk
    g = model.model.gaussians(scene)
    step = max(1, math.ceil(len(cameras) / SAMPLED_FRAMES))
    idx = torch.arange(0, len(cameras), step)
    counts = count_intersections(
        g["means"],
        g["quats"],
        g["scales"],
        g["opacities"],
        cameras.c2w[idx].to(g["means"].device),
        cameras.K[idx].to(g["means"].device),
        cameras.width,
        cameras.height,
        near=float(getattr(model.model.cfg, "near_plane", 0.01)),
    )
    # The device that renders and its backend: CPU RAM for the torch backend on the CPU, GPU
    # memory on CUDA (gsplat there when installed, with fewer bytes per intersection).
    backend = resolve_backend(getattr(model.model.cfg, "render_backend", "auto"), model.device)
    # the pixels of whole tiles: the renderer composites those, then crops the image
    most, pixels = int(counts.max()), tile_padded_pixels(cameras.height, cameras.width)

    def pass_bytes(views: int) -> int:  # the threads compositing the pass included
        workers = forward_workers(model.device, views)
        return render_bytes(views * most, views * pixels, backend, workers)

    one_view = pass_bytes(1)
    free = available_memory_bytes(model.device)
    if free is None:
        return chunk
    budget = MEMORY_FRACTION * free
    if one_view > budget:
        raise ValueError(
            f"--render-size {render_size}: rasterizing one {cameras.width}x{cameras.height} "
            f"frame needs about {one_view / _GIB:.2f} GiB ({most / 1e6:.1f} million "
            f"Gaussian-tile intersections and the compositing blocks) but {free / _GIB:.1f} GiB "
            f"of {_memory_name(model)} are free; use a smaller --render-size"
        )
    views = max(1, chunk)
    while views > 1 and pass_bytes(views) > budget:
        views -= 1
    return views
