import math

import torch

import refine as R
from rayzer.data.synthetic.clip import SynthConfig, render_clip
from rayzer.geometry import axis_angle_to_matrix, make_c2w
from rayzer.render import rasterize

size = 64
clip = render_clip(
    21,
    SynthConfig(family="orbit", frames=24, height=size, width=size),
    frames=list(range(0, 24, 3)),
)
imgs, c2w, K, depth = clip.images, clip.c2w, clip.K, clip.depth
v = imgs.shape[0]
R.PIXEL_SIGMA = 0.5
op = torch.full_like(depth, 0.95)


def score(cams, Ks):
    out = []
    outm = []
    for t in [1, 3, 5, 7]:
        src = [t - 1, t + 1] if t + 1 < v else [t - 1, t - 2]
        g = [x[None] for x in R.pixel_gaussians(imgs[src], depth[src], op[src], cams[src], Ks[src])]
        o = rasterize(*g, cams[[t]][None], Ks[[t]][None], size, size)
        err = (o.rgb[0, 0] - imgs[t]).square().sum(0)
        m = (o.alpha[0, 0, 0] > 0.9).float()
        out.append(float(err.mean() / 3))
        outm.append(float((err * m).sum() / m.sum() / 3))
    return round(-10 * math.log10(sum(out) / 4), 2), round(-10 * math.log10(sum(outm) / 4), 2)


for f in [0.9, 0.95, 1.0, 1.05, 1.1]:
    Kf = K.clone()
    Kf[:, :2] *= f
    print("focal", f, score(c2w, Kf))
for deg in [0, 1, 2, 4]:
    g = torch.Generator().manual_seed(1)
    rv = torch.randn(v, 3, generator=g)
    rv = rv / rv.norm(dim=-1, keepdim=True) * math.radians(deg)
    print("rot", deg, score(c2w @ make_c2w(axis_angle_to_matrix(rv), torch.zeros(v, 3)), K))
