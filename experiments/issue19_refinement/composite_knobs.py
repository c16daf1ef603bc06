"""CPU seconds of one differentiable 2-view composite at a given size (forward + backward) for
the compositing knobs of :func:`rayzer.render.compositing.composite_torch` (tile size, Gaussians
per block, pairs per chunk), on a scene dumped by ``fit128.py dump``, at 1 thread.

    python composite_knobs.py nas3r_128.pt 128 [CAP_PX [default-only]]

Views 1 and 5; random colours; σ capped at CAP_PX (default 3) pixels of the scene's own grid,
as :func:`rayzer.refine.splat.fit_scene` caps them. Prints one JSON line per setting with the
composite's counts (intersections, candidate and composited Gaussian-pixel pairs).
"""

from __future__ import annotations

import json
import os
import sys
import time

import torch

from rayzer.geometry import denormalize_intrinsics
from rayzer.render.compositing import composite_torch
from rayzer.render.projection import project_gaussians

SETTINGS = [  # (tile_size, k_block, chunk_elements); the first is the module's default
    (4, 64, 1 << 18),
    (8, 64, 1 << 18),
    (4, 32, 1 << 18),
    (4, 128, 1 << 18),
    (4, 64, 1 << 20),
    (2, 64, 1 << 18),
    (8, 32, 1 << 18),
    (16, 32, 1 << 18),
]


def main() -> None:
    torch.set_num_threads(1)
    d = torch.load(sys.argv[1], weights_only=False)
    size = int(sys.argv[2])
    cap_px = float(sys.argv[3]) if len(sys.argv) > 3 else 3.0
    sc = d["scene"]
    depth = sc.input_depth[0, :, 0]
    _, _, w = depth.shape
    fx = sc.K_norm[0, :, 0, None, None] * w
    cap = (cap_px * depth / fx).reshape(-1, 1)
    scales = torch.minimum(sc.scales[0], cap)[None]
    K = denormalize_intrinsics(sc.K_norm[0], size, size)
    idx = [1, 5]
    means = sc.means.clone().requires_grad_()
    gen = torch.Generator().manual_seed(0)
    rgb = torch.rand(2, means.shape[1], 3, generator=gen)

    def one(ts: int, kb: int, ce: int, stats: dict | None = None) -> None:
        proj = project_gaussians(
            means, sc.quats, scales, sc.c2w[:, idx], K[None, idx], size, size,
            opacities=sc.opacities, near=d["near"],
        )  # fmt: skip
        feats = torch.cat((rgb, proj.depths[0, ..., None]), -1)
        opac = sc.opacities.expand(2, -1)
        out, alpha = composite_torch(
            proj.means2d[0], proj.conics[0], opac, feats, proj.depths[0], proj.extents[0],
            size, size, tile_size=ts, k_block=kb, chunk_elements=ce, stats=stats,
        )  # fmt: skip
        (out.sum() + alpha.sum()).backward()

    default_only = len(sys.argv) > 4 and sys.argv[4] == "default-only"
    for ts, kb, ce in SETTINGS[:1] if default_only else SETTINGS:
        one(ts, kb, ce)  # warm-up
        stats: dict = {}
        one(ts, kb, ce, stats)
        c0 = time.process_time()
        for _ in range(3):
            one(ts, kb, ce)
        cpu = (time.process_time() - c0) / 3
        row = {"tile": ts, "k_block": kb, "chunk": ce, "cpu_s": round(cpu, 3)}
        print(json.dumps({**row, "load": os.getloadavg()[0], **stats}), flush=True)


if __name__ == "__main__":
    main()
