"""Does a model's predicted depth follow the scene, or is it a fixed pattern?

On the first 8 held-out orbit scenes (frames 0, 7, 14, 21 at 64 px as the inputs), the depth
each model renders at its own predicted input cameras is compared (in log depth) with the
generator's exact depth: Pearson r per view (1 = the scene's shape up to a monotone-ish scale),
r between consecutive scenes' maps at the same view slot (1 = the same map whatever the scene),
and the 98th / 2nd percentile ratio within a view (1 = a flat plane).

    python experiments/issue18_explicit/probe_depth_structure.py RUN_OR_NAME [...] [--json OUT]
"""

import json
import sys

import torch

from rayzer.data.synthetic.clip import SynthConfig, render_clip, split_seeds
from rayzer.infer.model import load_model
from rayzer.infer.predict import build_scene, predict_cameras, render_scene_with_depth

torch.set_num_threads(1)


def r(a, b):
    a, b = a.flatten() - a.mean(), b.flatten() - b.mean()
    return float((a @ b) / (a.norm() * b.norm() + 1e-12))


out = {}
args = sys.argv[1:]
json_out = None
if "--json" in args:
    i = args.index("--json")
    json_out = args[i + 1]
    del args[i : i + 2]
for name in args:
    m = load_model(name)
    seeds = list(split_seeds("test"))[:8]
    rs, preds = [], []
    for s in seeds:
        clip = render_clip(
            s, SynthConfig(family="orbit", height=64, width=64), frames=[0, 7, 14, 21]
        )
        cams = predict_cameras(m, clip.images)
        scene = build_scene(m, clip.images, cams)
        _, depth = render_scene_with_depth(m, scene, cams)
        d = depth[:, 0].clamp_min(1e-6).log()
        g = clip.depth.log()
        rs.append([r(d[v], g[v]) for v in range(4)])
        preds.append(d)
    cross = [r(preds[i][v], preds[i + 1][v]) for i in range(7) for v in range(4)]
    ratio = [
        float(torch.quantile(p.exp().flatten(), 0.98) / torch.quantile(p.exp().flatten(), 0.02))
        for p in preds
    ]
    out[name] = {
        "r_pred_vs_true_mean": sum(map(sum, rs)) / 32,
        "r_between_scenes_mean": sum(cross) / len(cross),
        "p98_p2_ratio_mean": sum(ratio) / 8,
    }
    print(name, json.dumps(out[name]))
if json_out:
    with open(json_out, "w") as f:
        json.dump(out, f, indent=2)
