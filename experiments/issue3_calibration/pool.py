"""Render a pool of synthetic clips to a cache file (uint8 images) for fast experiments."""

import sys
import time

import torch

from rayzer.data.synthetic import TEST_SEEDS, SynthConfig, render_clip

fam, size, n, split = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
frames = int(sys.argv[5]) if len(sys.argv) > 5 else 24
extra = eval(sys.argv[6]) if len(sys.argv) > 6 else {}
torch.set_num_threads(1)
base = 0 if split == "train" else TEST_SEEDS.start
imgs, c2w, K = [], [], []
t0 = time.time()
for i in range(n):
    c = render_clip(
        base + i, SynthConfig(family=fam, frames=frames, height=size, width=size, **extra)
    )
    imgs.append((c.images * 255).round().to(torch.uint8))
    c2w.append(c.c2w)
    K.append(c.K)
    if i % 100 == 0:
        print(i, time.time() - t0, flush=True)
tag = "_".join(f"{k}{v}" for k, v in extra.items())
torch.save(
    {"images": torch.stack(imgs), "c2w": torch.stack(c2w), "K": torch.stack(K)},
    f"cache/{fam}_{size}_{split}_{n}_{frames}{tag}.pt",
)
print("done", time.time() - t0)
