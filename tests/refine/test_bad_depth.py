"""Unusable depth pixels (inf, NaN, <= 0, absurdly far) are treated as unknown instead of
crashing the refinement: such a pixel once sent overflowing coordinates into grid_sample,
whose backward pass segfaulted the process. The crash scenarios run in a subprocess so a
regression fails the test instead of killing pytest."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import torch

from rayzer.refine.depth import clean_depth

_SCRIPT = textwrap.dedent(
    """
    import json, math
    import torch
    from rayzer.data.synthetic.clip import SynthConfig, render_clip
    from rayzer.refine import RefineConfig, held_out_psnr, refine_with_report
    from rayzer.geometry.reprojection import neighbour_views, reprojection_error

    torch.set_num_threads(1)
    clip = render_clip(
        21, SynthConfig(family="orbit", frames=24, height=24, width=24), frames=[0, 3, 6, 9]
    )
    out = {}
    # a huge finite depth straight into the objective: its coordinates must not overflow
    depth = clip.depth.clone()
    depth[0, 5, 5] = 1e30
    c2w = clip.c2w.clone().requires_grad_(True)
    err, valid = reprojection_error(clip.images, depth, c2w, clip.K, neighbour_views(4, 3))
    (err * valid).sum().backward()
    out["reproj_seen"] = bool(valid[0, 5, 5])
    out["reproj_finite"] = bool(torch.isfinite(err).all() and torch.isfinite(c2w.grad).all())
    depth = clip.depth.clone()
    depth[0, 5, 5] = float("inf")
    fig = held_out_psnr(clip.images, clip.c2w, clip.K, depth, view=2, config=RefineConfig(steps=4))
    out["held_out"] = [fig.psnr_before, fig.psnr_after]
    depth[1, 3, 3] = float("nan")
    depth[2, 4, 4] = -1.0
    c2w, K, report = refine_with_report(clip.images, clip.c2w, clip.K, depth, 4)
    out["report"] = [report["reprojection_psnr_before"], report["reprojection_psnr_after"]]
    out["report_held_out"] = [report["held_out"]["psnr_before"], report["held_out"]["psnr_after"]]
    out["cameras_finite"] = bool(torch.isfinite(c2w).all() and torch.isfinite(K).all())
    print(json.dumps(out))
    """
)


def test_clean_depth_marks_unusable_values_unknown():
    depth = torch.full((2, 4, 4), 2.0)
    depth[0, 0, 0] = float("inf")
    depth[0, 0, 1] = float("nan")
    depth[0, 0, 2] = -float("inf")
    depth[0, 0, 3] = -1.0
    depth[1, 0, 0] = 2.0 * 1e3 + 1.0  # beyond 1000x the median (2)
    depth[1, 0, 1] = 1.5e3  # far but plausible: kept
    cleaned = clean_depth(depth)
    assert cleaned[0, 0].tolist() == [0.0, 0.0, 0.0, 0.0]
    assert cleaned[1, 0, 0] == 0.0
    assert cleaned[1, 0, 1] == 1.5e3
    assert (cleaned[:, 1:] == 2.0).all()
    assert depth[0, 0, 0] == float("inf")  # the input is not modified
    assert (clean_depth(torch.full((1, 2, 2), float("nan"))) == 0).all()


def test_a_non_finite_depth_pixel_does_not_crash_the_refinement():
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr[-2000:]}"
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["reproj_seen"] is False  # the far pixel counts as unseen
    assert out["reproj_finite"] is True
    for key in ("held_out", "report", "report_held_out"):
        assert all(10 < x < 60 for x in out[key]), (key, out[key])
    assert out["cameras_finite"] is True
