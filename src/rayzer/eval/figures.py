"""Per-scene image grids of ``rayzer eval``: inputs, targets, renders and error maps.

Composed with numpy + Pillow (one PNG per scene, no matplotlib figure per scene: thousands of
scenes must stay cheap). Rows are labelled in a left margin; error maps show the per-pixel mean
absolute error over RGB on a fixed scale (black 0 → white :data:`ERROR_SCALE`, through the
``inferno`` colour map), so grids of different scenes and methods are comparable.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

ERROR_SCALE = 0.25  # |error| at which the colour map saturates
MAX_COLUMNS = 8  # at most this many views per row (evenly spaced subset beyond)
LABEL_WIDTH = 150
LINE_HEIGHT = 12  # of Pillow's default font, with spacing
GAP = 2


def _columns(n: int) -> list[int]:
    if n <= MAX_COLUMNS:
        return list(range(n))
    return sorted({round(float(x)) for x in np.linspace(0, n - 1, MAX_COLUMNS)})


def _to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) in [0, 1] → (N, H, W, 3) uint8."""
    x = images.detach().float().clamp(0, 1).mul(255).add(0.5).to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def error_map(render: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Colour-mapped mean absolute error: (N, 3, H, W) pair → (N, 3, H, W) in [0, 1]."""
    from matplotlib import colormaps

    err = (render.float() - target.float()).abs().mean(dim=-3).clamp(0, ERROR_SCALE) / ERROR_SCALE
    rgb = colormaps["inferno"](err.cpu().numpy())[..., :3]  # (N, H, W, 3)
    return torch.from_numpy(rgb).permute(0, 3, 1, 2).float()


def scene_grid(rows: Sequence[tuple[str, torch.Tensor]], title: str = "") -> np.ndarray:
    """Stack labelled rows of images into one picture.

    Args:
        rows: ``(label, images (N, 3, H, W))``; rows may have different N (more than
            :data:`MAX_COLUMNS` are subsampled evenly). Labels may have several lines.
        title: a line of text above the grid.
    Returns:
        (H_total, W_total, 3) uint8.
    """
    if not rows:
        raise ValueError("scene_grid: no rows")
    h, w = rows[0][1].shape[-2:]
    ncol = max(len(_columns(r[1].shape[0])) for r in rows)
    heights = [max(h, LINE_HEIGHT * (label.count("\n") + 1) + 4) for label, _ in rows]
    tops = np.cumsum([LINE_HEIGHT + 4 if title else 0] + [r + GAP for r in heights])
    canvas = np.full((int(tops[-1]), LABEL_WIDTH + ncol * (w + GAP), 3), 255, np.uint8)
    for top, (_, imgs) in zip(tops, rows):
        for c, img in enumerate(_to_uint8(imgs[_columns(imgs.shape[0])])):
            x = LABEL_WIDTH + c * (w + GAP)
            canvas[top : top + h, x : x + w] = img
    pil = Image.fromarray(canvas)
    draw = ImageDraw.Draw(pil)
    font = ImageFont.load_default()
    if title:
        draw.text((4, 2), title, fill=(0, 0, 0), font=font)
    for top, (label, _) in zip(tops, rows):
        draw.multiline_text((4, int(top) + 2), label, fill=(0, 0, 0), font=font, spacing=2)
    return np.asarray(pil)
