"""The sweep readout's fast path (chunked, fewer passes, optional recomputation) against the
computation it replaced, kept here verbatim as the reference: same renders and gradients to
float tolerance, in every chunking and storage mode."""

import pytest
import torch
import torch.nn.functional as F

from rayzer.geometry import camera_rays, make_c2w, rot6d_to_matrix
from rayzer.models.readouts import GATE_OFFSET, SweepReadout, sweep_chunks
from rayzer.nn.epipolar import MIN_DEPTH, project_ray_samples


def reference_sweep(m: SweepReadout, c2w, K_norm, in_images, in_c2w, in_K_norm, regress):
    """SweepReadout.forward and sweep_colours as they were before the fast path (unchunked)."""
    b, vi, _, h, w = in_images.shape
    vt = c2w.shape[1]
    nd = m.num_depths
    eye = torch.eye(4, dtype=c2w.dtype)
    _, d_cam = camera_rays(eye, K_norm, h, w, normalize_dirs=False, normalized_intrinsics=True)
    d_cam = d_cam.flatten(2, 3)
    inv = torch.linspace(1.0 / m.near, 0.0, nd, dtype=c2w.dtype)
    smp = project_ray_samples(c2w, d_cam, in_c2w, in_K_norm, inv)
    gx, gy = 2 * smp.u - 1, 2 * smp.v - 1
    valid = (smp.z > MIN_DEPTH) & (gx.abs() <= 1) & (gy.abs() <= 1)
    grid = torch.stack((gx, gy), dim=-1).clamp(-2, 2)
    col = F.grid_sample(
        in_images.flatten(0, 1),
        grid.reshape(b * vi, vt * h * w, nd, 2),
        mode="bilinear",
        padding_mode="border",
        align_corners=False,
    ).view(b, vi, -1, vt, h * w, nd)
    ray, off, s = smp.ray, smp.offset, inv.view(1, 1, 1, 1, -1)
    rr = ray.square().sum(-1, keepdim=True)
    ro = (ray * off).sum(-1, keepdim=True)
    oo = off.square().sum(-1, keepdim=True)
    cos = (rr + s * ro) * torch.rsqrt(rr * (rr + 2 * s * ro + s.square() * oo).clamp_min(1e-12))
    valid = valid.to(col.dtype)
    view_logit = (F.softplus(m.raw_view_sharpness) * cos).masked_fill(valid == 0, -1e4)
    wv = (torch.softmax(view_logit, dim=1) * valid).unsqueeze(2)
    colour = (wv * col).sum(1)
    n_valid = valid.sum(1)
    vcol = valid.unsqueeze(2) * col
    inv_n = 1.0 / n_valid.clamp_min(1)
    mean = vcol.sum(1) * inv_n.unsqueeze(1)
    var = ((vcol * col).sum((1, 2)) * inv_n - mean.square().sum(1)).clamp_min(0)
    depth_logit = regress[:, :, 4:].flatten(-2).transpose(-1, -2)
    depth_logit = (
        depth_logit
        - F.softplus(m.raw_consistency) * var
        + torch.log(n_valid / valid.shape[1] + 1e-3)
    )
    prob = torch.softmax(depth_logit, dim=-1)
    coverage = (prob * (n_valid > 0).to(prob.dtype)).sum(-1)
    sweep = (prob.unsqueeze(1) * colour).sum(-1) / coverage.clamp_min(1e-6).unsqueeze(1)
    sweep = sweep.transpose(1, 2).reshape(b, vt, 3, h, w)
    gate = torch.sigmoid(regress[:, :, 3:4] + GATE_OFFSET) * coverage.reshape(b, vt, 1, h, w)
    return gate * sweep + (1 - gate) * torch.sigmoid(regress[:, :, :3])


def _inputs(b=2, vi=3, vt=2, h=8, w=12, nd=5, spread=0.4):
    """Random cameras around the identity (some target rays leave some input views)."""
    g = torch.Generator().manual_seed(0)

    def cams(v):
        r6 = torch.tensor([1.0, 0, 0, 0, 1, 0]) + spread * torch.randn(b, v, 6, generator=g)
        return make_c2w(rot6d_to_matrix(r6), spread * torch.randn(b, v, 3, generator=g))

    K = torch.tensor([0.9, 1.2, 0.5, 0.45]) + 0.1 * torch.rand(b, vt + vi, 4, generator=g)
    leaves = {
        "c2w": cams(vt),
        "K_norm": K[:, :vt],
        "in_c2w": cams(vi),
        "in_K_norm": K[:, vt:],
        "regress": torch.randn(b, vt, 4 + nd, h, w, generator=g),
    }
    images = torch.rand(b, vi, 3, h, w, generator=g)
    return {k: v.clone().requires_grad_() for k, v in leaves.items()}, images


def _render_and_grads(fn, m, leaves, images):
    for t in [*leaves.values(), *m.parameters()]:
        t.grad = None
    out = fn(
        leaves["c2w"],
        leaves["K_norm"],
        images,
        leaves["in_c2w"],
        leaves["in_K_norm"],
        leaves["regress"],
    )
    weights = torch.linspace(0.5, 1.5, out.numel()).view_as(out)
    (out * weights).sum().backward()
    grads = {k: v.grad.clone() for k, v in leaves.items()}
    grads.update({n: p.grad.clone() for n, p in m.named_parameters()})
    return out.detach(), grads


@pytest.mark.parametrize(
    "chunk_elements, store_elements",
    [
        (1 << 30, 1 << 40),  # one chunk, tensors kept for backward
        (2 * 3 * 5 * 7, 1 << 40),  # runs of 7 pixels, one target view at a time
        (2 * 3 * 5 * 96, 0),  # one target view per chunk, recomputed in backward
        (2 * 3 * 5 * 24, 0),  # runs of 24 pixels, recomputed
    ],
)
def test_fast_sweep_matches_the_reference_render_and_gradients(chunk_elements, store_elements):
    torch.manual_seed(0)
    m = SweepReadout(num_depths=5, near=0.5)
    m.chunk_elements, m.store_elements = chunk_elements, store_elements
    leaves, images = _inputs()
    ref, ref_grads = _render_and_grads(lambda *a: reference_sweep(m, *a), m, leaves, images)
    out, grads = _render_and_grads(m, m, leaves, images)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    for name, g in ref_grads.items():
        assert g.abs().sum() > 0, name  # every input and gain takes part in the comparison
        torch.testing.assert_close(grads[name], g, rtol=1e-4, atol=1e-5, msg=name)


def test_fast_sweep_matches_the_reference_without_grad_and_with_invisible_targets():
    m = SweepReadout(num_depths=4, near=0.5)
    m.chunk_elements = 2 * 3 * 4 * 10
    leaves, images = _inputs(nd=4, spread=1.5)  # wide spread: many rays leave every view
    with torch.no_grad():
        ref = reference_sweep(
            m,
            *(leaves[k] for k in ("c2w", "K_norm")),
            images,
            *(leaves[k] for k in ("in_c2w", "in_K_norm", "regress")),
        )
        out = m(
            leaves["c2w"],
            leaves["K_norm"],
            images,
            leaves["in_c2w"],
            leaves["in_K_norm"],
            leaves["regress"],
        )
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_sweep_chunks_respect_the_budget_and_cover_everything():
    assert sweep_chunks(8, 4, 4, 4096, 8, 1 << 18) == (1, 1024)  # 1024 px × 256 = 2^18
    assert sweep_chunks(1, 2, 6, 64, 4, 1 << 10) == (2, 64)  # two whole target views
    assert sweep_chunks(8, 16, 16, 4096, 8, 1 << 10) == (1, 1)  # never below one pixel
