"""How much of the pose-teacher term's gradient on the views' translations survives a sum over the
views of a sample (what a bias shared by all views receives), at cameras near the identity.

For each sample of the teacher run's stream (its saved config: walk, clip pool 32, the cache),
non-canonical translations ~1e-4 (the tiny E-RayZer's start), canonical view fixed at I; ratio =
|Σ_i g_i| / Σ_i |g_i| over the views i of g_i = d(term)/d(t_i). Near 0: the views pull a shared
output in opposite directions (views before the canonical one backwards, after it forwards).

Usage: PYTHONPATH=<tree>/src python probe_teacher_cancel.py [RUN_CONFIG]
"""

import sys

import torch

from rayzer.config import load_config
from rayzer.data.stream import BatchLayout, TrainStream
from rayzer.models.pose_teacher_loss import pose_teacher_terms

cfg = load_config(sys.argv[1] if len(sys.argv) > 1 else "/work/runs/h2/teacher/config.yaml", [])
stream = TrainStream(cfg.data, 0, BatchLayout(8))
gen = torch.Generator().manual_seed(0)
ratios = []
for n in range(8):
    b = stream.micro_batch(n)
    B, V = b["teacher_valid"].shape
    c2w = torch.eye(4).repeat(B, V, 1, 1)
    c2w[..., :3, 3] = 1e-4 * torch.randn(B, V, 3, generator=gen)
    c2w[:, V // 2] = torch.eye(4)
    c2w.requires_grad_(True)
    pose_teacher_terms(c2w, b["teacher_c2w"], b["teacher_valid"])["loss"].backward()
    g = c2w.grad[..., :3, 3].clone()  # (B, V, 3)
    g[:, V // 2] = 0  # the canonical view is fixed
    for s in range(B):
        ratios.append(float(g[s].sum(0).norm() / g[s].norm(dim=-1).sum().clamp_min(1e-12)))
t = torch.tensor(ratios)
print(
    f"samples {len(t)}: |sum_i g_i| / sum_i |g_i| median {t.median():.3f}, "
    f"mean {t.mean():.3f}, max {t.max():.3f}"
)
