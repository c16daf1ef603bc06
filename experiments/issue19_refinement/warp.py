# ruff: noqa: B023  (experiment code: the closures run within their loop iteration)
"""Depth-warping photometric bundle adjustment (Monodepth-style reprojection), experiment version.

Every pixel of a target view is lifted with its own z-depth, projected into each of its
neighbour views, and the neighbour's image is sampled there (bilinear); the per-pixel error is
the minimum over the neighbours (occlusions and out-of-frame pixels are explained by whichever
view sees the point). No rasterizer: the gradient reaches the cameras through the source
images' spatial gradient, the classic direct-alignment objective whose minimum is the true
cameras when the depth is exact.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from rayzer.geometry import axis_angle_to_matrix, make_c2w, project_points, unproject_depth


@dataclass
class WarpConfig:
    steps: int = 200
    levels: tuple[int, ...] = (16, 32, 64)
    neighbours: int = 2
    lr_pose: float = 3e-3
    lr_focal: float = 3e-3
    lr_depth: float = 0.0  # > 0: optimise a low-res inverse-depth correction per view
    depth_grid: int = 8
    robust: str = "l1"  # "l1" | "l2" | "charbonnier"
    gradient_weight: float = 0.0  # weight of an image-gradient residual next to the colour one
    occlusion_check: bool = False  # mask pixels whose projected depth disagrees with the source
    fixed_mask: bool = False  # validity mask frozen at the start of each level
    lr_decay: float = 0.1  # final lr factor (cosine) within each level
    aggregate: str = "min"  # "min" over the neighbours (occlusions) | "mean" over valid ones
    optimizer: str = "adam"  # "adam" | "lbfgs" (steps = L-BFGS iterations, strong Wolfe)
    pyramid: str = "resize"  # "resize": coarse levels are smaller images (depth resized too);
    # "blur": every level at full size, images blurred to the level's resolution (depth exact)


@dataclass
class WarpResult:
    c2w: Tensor
    K: Tensor
    depth: Tensor
    history: list[tuple[int, int, float]] = field(default_factory=list)
    seconds: float = 0.0


def _resize(x: Tensor, h: int, w: int) -> Tensor:
    squeeze = x.ndim == 3
    x = x[:, None] if squeeze else x
    shrink = h < x.shape[-2]
    y = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=shrink)
    return y[:, 0] if squeeze else y


def _blur(img: Tensor, factor: float) -> Tensor:
    """Gaussian blur matching a downsampling by ``factor`` (sigma = factor / 2 px), same size."""
    if factor <= 1.0:
        return img
    sigma = factor / 2
    r = max(1, math.ceil(3 * sigma))
    x = torch.arange(-r, r + 1, dtype=img.dtype)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    k = k / k.sum()
    c = img.shape[1]
    y = F.pad(img, (r, r, r, r), mode="replicate")
    y = F.conv2d(y, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(y, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _grad_images(img: Tensor) -> Tensor:
    """(V, 3, H, W) -> (V, 6, H, W) with finite differences along x and y (zero-padded)."""
    gx = F.pad(img[..., :, 1:] - img[..., :, :-1], (0, 1, 0, 0))
    gy = F.pad(img[..., 1:, :] - img[..., :-1, :], (0, 0, 0, 1))
    return torch.cat((gx, gy), dim=1)


def nearest(v: int, t: int, k: int) -> list[int]:
    others = sorted((i for i in range(v) if i != t), key=lambda i: (abs(i - t), i))
    return sorted(others[:k])


def warp_errors(
    feats: Tensor,
    depth: Tensor,
    c2w: Tensor,
    K: Tensor,
    k: int,
    robust: str,
    occlusion_check: bool,
    masks: Tensor | None = None,
    aggregate: str = "min",
) -> tuple[Tensor, Tensor, Tensor]:
    """feats (V, C, H, W), depth (V, H, W), c2w (V, 4, 4), K (V, 4) at this size.

    Returns the per-pixel minimum error over the k neighbours (V, H, W) and the validity mask
    (V, H, W) (a pixel is valid if some neighbour sees it in frame and in front)."""
    v, c, h, w = feats.shape
    pts = unproject_depth(depth, c2w, K)  # (V, H, W, 3)
    src = torch.tensor([nearest(v, t, k) for t in range(v)])  # (V, k)
    pts_k = pts[:, None].expand(v, k, h, w, 3).reshape(v, k, h * w, 3)
    uv, z = project_points(pts_k, c2w[src], K[src])  # (V, k, HW, 2), (V, k, HW)
    grid = torch.stack((uv[..., 0] / w * 2 - 1, uv[..., 1] / h * 2 - 1), dim=-1)
    sampled = F.grid_sample(
        feats[src].reshape(v * k, c, h, w),
        grid.reshape(v * k, 1, h * w, 2),
        mode="bilinear",
        padding_mode="border",
        align_corners=False,
    ).reshape(v, k, c, h * w)
    diff = sampled - feats.reshape(v, 1, c, h * w)
    if robust == "l1":
        err = diff.abs().mean(2)
    elif robust == "l2":
        err = diff.square().mean(2)
    else:
        err = (diff.square() + 1e-3**2).sqrt().mean(2)
    with torch.no_grad():
        inb = (grid.abs() < 1).all(-1) & (z > 1e-3)
        if occlusion_check:
            sd = F.grid_sample(
                depth[src].reshape(v * k, 1, h, w),
                grid.reshape(v * k, 1, h * w, 2),
                mode="nearest",
                padding_mode="border",
                align_corners=False,
            ).reshape(v, k, h * w)
            inb &= z < sd * 1.05
        if masks is not None:
            inb &= masks.reshape(v, k, h * w)
    valid = inb.any(1)
    if aggregate == "mean":
        best = (err * inb).sum(1) / inb.sum(1).clamp_min(1)
    else:
        err = torch.where(inb, err, torch.full_like(err, 1e3))
        best, _ = err.min(1)
    return best.reshape(v, h, w), valid.reshape(v, h, w), inb


def refine_warp(
    images: Tensor,
    c2w: Tensor,
    K: Tensor,
    depth: Tensor,
    cfg: WarpConfig,
    anchor: int | None = None,
) -> WarpResult:
    t0 = time.perf_counter()
    v, _, h, w = images.shape
    anchor = v // 2 if anchor is None else anchor
    scale = float(depth.median())
    rotvec = torch.zeros(v, 3, requires_grad=True)
    trans = torch.zeros(v, 3, requires_grad=True)
    log_f = torch.zeros((), requires_grad=True)
    g = cfg.depth_grid
    inv_corr = torch.zeros(v, 1, g, g, requires_grad=True)  # log inverse-depth correction
    keep = (torch.arange(v) != anchor).float()[:, None]
    short = min(h, w)
    sizes = [*sorted({s for s in cfg.levels if s < short}), short]
    per = [cfg.steps // len(sizes)] * len(sizes)
    per[0] += cfg.steps - sum(per)
    res = WarpResult(c2w, K, depth)
    step = 0

    def cams(Kl: Tensor) -> tuple[Tensor, Tensor]:
        d = make_c2w(axis_angle_to_matrix(rotvec * keep), trans * keep * scale)
        f = torch.exp(log_f)
        return c2w @ d, torch.cat((Kl[:, :2] * f, Kl[:, 2:]), -1)

    def level_depth(lh: int, lw: int) -> Tensor:
        d = _resize(depth, lh, lw)
        corr = F.interpolate(inv_corr, size=(lh, lw), mode="bilinear", align_corners=False)
        # mean-free in log over all views would fix scale; we keep the anchor's mean instead
        return d * torch.exp(-corr[:, 0])

    for s, n in zip(sizes, per):
        lh, lw = round(h * s / short), round(w * s / short)
        img = _resize(images, lh, lw)
        if cfg.pyramid == "blur":
            img = _blur(images, short / s)
            lh, lw = h, w
        feats = img
        if cfg.gradient_weight > 0:
            feats = torch.cat((img, cfg.gradient_weight * _grad_images(img)), 1)
        Kl = K * torch.tensor([lw / w, lh / h, lw / w, lh / h])
        groups = [
            {"params": [rotvec, trans], "lr": cfg.lr_pose},
            {"params": [log_f], "lr": cfg.lr_focal},
        ]
        if cfg.lr_depth > 0:
            groups.append({"params": [inv_corr], "lr": cfg.lr_depth})
        masks = None
        if cfg.fixed_mask:
            with torch.no_grad():
                cc, kk = cams(Kl)
                _, _, masks = warp_errors(
                    feats,
                    level_depth(lh, lw),
                    cc,
                    kk,
                    cfg.neighbours,
                    cfg.robust,
                    cfg.occlusion_check,
                )

        def objective() -> Tensor:
            cc, kk = cams(Kl)
            err, valid, _ = warp_errors(
                feats,
                level_depth(lh, lw),
                cc,
                kk,
                cfg.neighbours,
                cfg.robust,
                cfg.occlusion_check,
                masks,
                cfg.aggregate,
            )
            loss = (err * valid).sum() / valid.sum().clamp_min(1)
            if cfg.lr_depth > 0:  # keep the anchor's depth scale (the scale gauge)
                loss = loss + inv_corr[anchor].mean().square()
            return loss

        if cfg.optimizer == "lbfgs":
            free = [rotvec, trans, log_f] + ([inv_corr] if cfg.lr_depth > 0 else [])
            opt = torch.optim.LBFGS(
                free,
                lr=1.0,
                max_iter=n,
                history_size=20,
                line_search_fn="strong_wolfe",
                tolerance_grad=1e-9,
                tolerance_change=1e-12,
            )

            def closure() -> Tensor:
                opt.zero_grad(set_to_none=True)
                loss = objective()
                loss.backward()
                res.history.append((len(res.history) + 1, s, loss.item()))
                return loss

            opt.step(closure)
            continue
        opt = torch.optim.Adam(groups)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt,
            lambda i, n=n: (
                cfg.lr_decay + (1 - cfg.lr_decay) * 0.5 * (1 + math.cos(math.pi * i / max(n, 1)))
            ),
        )
        for _ in range(n):
            loss = objective()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            res.history.append((step, s, loss.item()))
    with torch.no_grad():
        res.c2w, res.K = cams(K)
        res.depth = level_depth(h, w)
    res.seconds = time.perf_counter() - t0
    return res
