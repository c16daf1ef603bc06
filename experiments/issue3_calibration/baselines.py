import torch

from rayzer.data.synthetic import TEST_SEEDS, SynthConfig, render_clip
from rayzer.geometry import relative_pose_errors
from rayzer.models import CopyNearest, mean_of_inputs

torch.set_num_threads(1)


def psnr(a, b):
    return (-10 * torch.log10(((a - b) ** 2).flatten(-3).mean(-1))).mean().item()


V = 8
inp = torch.tensor([0, 2, 5, 7])
tgt = torch.tensor([1, 3, 4, 6])
for fam in ["orbit", "walk"]:
    for extra in [
        dict(),
        dict(texture_scale=2.0),
        dict(texture_scale=4.0),
        dict(texture_scale=4.0, background="plain") if fam == "orbit" else dict(texture_scale=8.0),
    ]:
        for span in [8, 12, 16]:
            fr = torch.linspace(0, span - 1, V).round().long() + (24 - span) // 2
            ims, cs = [], []
            for s in range(24):
                c = render_clip(
                    TEST_SEEDS[s], SynthConfig(family=fam, frames=24, **extra), frames=fr
                )
                ims.append(c.images)
                cs.append(c.c2w)
            ims = torch.stack(ims)
            cs = torch.stack(cs)
            T = ims[:, tgt]
            rot = relative_pose_errors(torch.eye(4).expand_as(cs), cs)["rot_deg"].median().item()
            print(
                fam,
                extra,
                "span",
                span,
                f"copy {psnr(CopyNearest()(ims, inp, tgt), T):.2f} mean {psnr(mean_of_inputs(ims, inp, 4), T):.2f}  gt_rel_rot_med {rot:.1f}",
                flush=True,
            )
