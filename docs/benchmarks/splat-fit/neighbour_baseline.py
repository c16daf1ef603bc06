"""A no-3D baseline for the held-out figure of ``rayzer infer --fit``: the left-out photo
predicted by its neighbouring photos themselves (no model, no rendering).

For each image folder and size, the views are loaded as ``rayzer infer`` loads them (the same
loader, ``--max-views``, square crop) and the view the fit leaves out, ``(V // 2 + 1) % V``, is
compared with the photo before it, the photo after it and the mean of the two (whole image,
PSNR in dB). Prints JSON rows and a Markdown table.

    python docs/benchmarks/splat-fit/neighbour_baseline.py \
        --images fox_consec/images ../shared/data/real/fox_instantngp/images --size 64 128
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a - b) ** 2))
    return round(-10.0 * math.log10(max(mse, 1e-10)), 2)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=Path, nargs="+", required=True)
    p.add_argument("--size", type=int, nargs="+", default=[64])
    p.add_argument("--max-views", type=int, default=8)
    p.add_argument("--patch-size", type=int, default=8)
    args = p.parse_args()

    from rayzer.data.images import load_image_folder

    rows = []
    for size in args.size:
        for folder in args.images:
            views = load_image_folder(folder, size, args.patch_size, max_views=args.max_views)
            x = views.images.astype(np.float64) / 255.0  # (V, H, W, 3)
            v = x.shape[0]
            held = (v // 2 + 1) % v
            before, after = x[(held - 1) % v], x[(held + 1) % v]
            rows.append(
                {
                    "images": str(folder),
                    "size": size,
                    "views": v,
                    "held_out_view": held,
                    "psnr_previous_photo": _psnr(x[held], before),
                    "psnr_next_photo": _psnr(x[held], after),
                    "psnr_mean_of_both": _psnr(x[held], (before + after) / 2),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    print(
        "| images | px | left-out view | previous photo | next photo | mean of both |\n"
        "|---|---|---|---|---|---|"
    )
    for r in rows:
        name = f"{Path(r['images']).parent.name}/{Path(r['images']).name}"
        print(
            f"| {name} | {r['size']} | {r['held_out_view']} | {r['psnr_previous_photo']} | "
            f"{r['psnr_next_photo']} | {r['psnr_mean_of_both']} |"
        )


if __name__ == "__main__":
    main()
