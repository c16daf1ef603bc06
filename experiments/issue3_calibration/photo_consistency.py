"""Diagnostic: classical plane-sweep photo-consistency of camera sets (no learning).

For 32 held-out orbit test clips (even protocol, span 12), every target pixel's ray is swept over
32 depths through the input views (``sweep_colours``); the score is the mean over pixels of the
minimum over depths of the input views' colour variance, plus the colour error of the mean colour
at that best depth against the true target pixel. Camera sets: the ground truth (relative to the
canonical view, unit mean distance), variants of it, and two saved ``learn.py --save`` models'
own predictions (32 px).

python photo_consistency.py [model.pt ...]
"""

import sys

import torch
import torch.nn.functional as F

from rayzer.geometry import relative_to_canonical
from rayzer.models import ModelConfig, RayZer
from rayzer.models.readouts import sweep_colours

torch.set_num_threads(2)
d = torch.load("cache/orbit_64_test_64_24.pt")
n = 32
V = 8
span = 12
size = 64
imgs = d["images"][:n].float() / 255
fr = torch.linspace(0, span - 1, V).round().long() + (24 - span) // 2
imgs, c2w, K = imgs[:, fr], d["c2w"][:n, fr], d["K"][:n, fr] / size
rel = relative_to_canonical(c2w, V // 2)
scale = rel[..., :3, 3].norm(dim=-1).sum(1) / (V - 1)
rel[..., :3, 3] /= scale[:, None, None]
inp = torch.tensor([0, 2, 5, 7])
tgt = torch.tensor([1, 3, 4, 6])


def score(cams, K, D=32):
    col, valid, _ = sweep_colours(
        cams[:, tgt], K[:, tgt], imgs[:, inp], cams[:, inp], K[:, inp], D, 0.25
    )
    n_valid = valid.sum(1)
    vcol = valid.unsqueeze(2) * col
    mean = vcol.sum(1) / n_valid.clamp_min(1).unsqueeze(1)
    var = ((vcol * col).sum((1, 2)) / n_valid.clamp_min(1) - mean.square().sum(1)).clamp_min(0)
    var = var.masked_fill(n_valid < 2, 1e3)
    best = var.min(-1).values  # (B, Vt, HW)
    ok = best < 1e3
    # also the colour error of the best-depth mean against the true target pixel
    idx = var.argmin(-1)  # (B, Vt, HW)
    m = mean.gather(-1, idx[:, None, ..., None].expand(-1, 3, -1, -1, 1)).squeeze(-1)  # (B,3,Vt,HW)
    truth = imgs[:, tgt].permute(0, 2, 1, 3, 4).flatten(-2)
    err = ((m - truth) ** 2).mean(1)  # (B, Vt, HW)
    return best[ok].mean().item(), err[ok].mean().item(), ok.float().mean().item()


print("GT cams             min-var, best-depth colour MSE, share with >=2 views:", score(rel, K))
neg = rel.clone()
neg[..., :3, 3] *= -1
print("GT, t negated       ", score(neg, K))
mirror = torch.diag(torch.tensor([-1.0, 1, 1, 1]))
print("GT, x mirrored      ", score(mirror @ rel @ mirror, K))
rot_only = rel.clone()
rot_only[..., :3, 3] = 0
print("GT rotations, t = 0 ", score(rot_only, K))

# library checkpoints (64 px runs of `rayzer train`): their own cameras at 64 px
for path in [p for p in sys.argv[1:] if not p.endswith(".pt")]:
    from rayzer.infer.model import load_model

    model = load_model(path, device="cpu").model.eval()
    with torch.no_grad():
        cams = model.predict_cameras(imgs)
    print(path, "64 px (own focal)", score(cams.c2w, cams.K_norm))
    print(path, "64 px (true focal)", score(cams.c2w, K))

# the saved 32 px models' own cameras, scored the same way at 32 px
imgs = F.interpolate(imgs.flatten(0, 1), size=(32, 32), mode="area").unflatten(0, (n, V))
print("32 px:")
print("GT cams             ", score(rel, K))
print("GT, t negated       ", score(neg, K))
for path in [p for p in sys.argv[1:] if p.endswith(".pt")]:
    saved = torch.load(path)
    m = RayZer(ModelConfig(**saved["cfg"])).eval()
    m.load_state_dict(saved["state"])
    with torch.no_grad():
        cams = m.predict_cameras(imgs)
    print(path, "(own focal)", score(cams.c2w, cams.K_norm))
    print(path, "(true focal)", score(cams.c2w, K))
