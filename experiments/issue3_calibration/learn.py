"""Learnability experiments: train RayZer / LVSM / supervised camera estimator on a clip pool
for a fixed number of steps, evaluate on held-out clips against baselines."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time

import torch
import torch.nn.functional as F

from rayzer.geometry import (
    axis_angle_to_matrix,
    make_c2w,
    matrix_to_axis_angle,
    matrix_to_rot6d,
    relative_pose_errors,
    relative_to_canonical,
    rotation_angle,
    se3_inverse,
)
from rayzer.models import LVSM, CopyNearest, ModelConfig, RayZer, mean_of_inputs
from rayzer.models.views import gather_views

p = argparse.ArgumentParser()
p.add_argument("--model", default="rayzer")  # rayzer | lvsm | camsup
p.add_argument("--train", default="cache/orbit_64_train_1500_24.pt")
p.add_argument("--test", default="cache/orbit_64_test_64_24.pt")
p.add_argument("--steps", type=int, default=1000)
p.add_argument("--size", type=int, default=64)
p.add_argument("--patch", type=int, default=8)
p.add_argument("--dim", type=int, default=128)
p.add_argument("--heads", type=int, default=4)
p.add_argument("--layers", default="3,3,3")
p.add_argument("--scene-tokens", type=int, default=64)
p.add_argument("--vin", type=int, default=4)
p.add_argument("--vt", type=int, default=4)
p.add_argument("--span", default="8,12")  # final (min,max) window span in frames
p.add_argument("--span-start", default="")  # curriculum start (min,max); empty = no curriculum
p.add_argument("--curriculum", type=float, default=0.5)  # fraction of steps to widen
p.add_argument("--eval-span", type=int, default=12)
p.add_argument("--lr", type=float, default=1e-3)
p.add_argument("--warmup", type=int, default=100)
p.add_argument("--batch", type=int, default=8)
p.add_argument("--seed", type=int, default=0)
p.add_argument("--pose-std", type=float, default=1e-3)
p.add_argument("--focal", default="learn")  # learn | fixed (at focal_init) | true (fixed at truth)
p.add_argument("--index-scale", type=float, default=1.0)
p.add_argument("--eval-every", type=int, default=0)
p.add_argument("--tag", default="")
p.add_argument("--keep-input", action="store_true")
p.add_argument("--pair", action="store_true")
p.add_argument("--stem", action="store_true")
p.add_argument("--cam-attn", default="global")
p.add_argument("--render-inputs", action="store_true")  # also render (and score) the inputs
p.add_argument("--mimetic", action="store_true")  # LVSM: ray-matching attention at init
p.add_argument("--corr", action="store_true")  # cam_correlation
p.add_argument("--readout", default="token")  # cam_readout: token | token+pool | token+grid
p.add_argument("--epipolar", action="store_true")  # decoder epipolar attention bias
p.add_argument("--near", type=float, default=0.5)  # ray_near
p.add_argument("--dec-readout", default="regress")  # decoder_readout: regress | blend | sweep
p.add_argument("--depths", type=int, default=16)  # sweep_depths
p.add_argument("--unit-t", action="store_true")  # cam_unit_translation
p.add_argument("--t-gain", default="")  # "a,b": translation x0 before step a, ramp to x1 at b
p.add_argument("--sup-steps", type=int, default=0)  # diagnostic: + supervised pose loss first N
p.add_argument("--motion-weight", action="store_true")  # weigh pixels the inputs' mean misses
p.add_argument("--depth-entropy", type=float, default=0.0)  # λ · entropy of the sweep depths
p.add_argument("--split", default="random")  # random | ends: targets = the 2 first + 2 last
p.add_argument("--shared-depth", action="store_true")  # see shared_depth.py
p.add_argument("--gate", default="learn")  # learn | off: sweep/blend colour wherever covered
p.add_argument("--init", default="")  # start from a --save file (same model settings)
p.add_argument("--flip-t", action="store_true")  # with --init: negate the predicted translations
p.add_argument(
    "--reinit-estimator", action="store_true"
)  # with --init: keep the loaded renderer, start the camera estimator afresh (seeded init)
p.add_argument("--save", default="")  # write the final state dict + model config here
p.add_argument("--threads", type=int, default=2)
p.add_argument("--perceptual", type=float, default=0.0)  # λ · LPIPS-VGG added to the MSE
# Mirror hypothesis (self-supervised): every sample is also rendered with the mirror image of
# its predicted camera path (rotations the other way, centres on the other side); the photometric
# loss takes the better of the two per sample, and where the mirror wins, λ · the distance of the
# prediction to the (detached) mirrored path teaches the estimator the sense the renderer
# prefers. λ = 0: min-of-two only. Negative: off.
p.add_argument("--mirror", type=float, default=-1.0)
p.add_argument("--mirror-every", type=int, default=1)  # test the mirror on every k-th step
# A small ReLU CNN on [view ‖ canonical] pairs learns, per view, the sense of its rotation
# (sign of the yaw) from the mirror test's outcome (needs --mirror >= 0); at evaluation the
# predicted path is mirrored where the head disagrees with it on most views.
p.add_argument("--pose-cnn", default="")  # model.cam_pair_cnn: "" off | "default" | init std
p.add_argument("--chain", action="store_true")  # model.cam_chain
p.add_argument("--loss", default="mse")  # photometric loss: mse | l1 (also picks the mirror)
p.add_argument(
    "--oracle-steps", type=int, default=0
)  # diagnostic: first N steps render with true cams
p.add_argument(
    "--freeze-renderer", action="store_true"
)  # after --oracle-steps: train the estimator only
p.add_argument(
    "--phase-schedule", action="store_true"
)  # with --oracle-steps: the estimator phase gets its own warm-up + cosine
p.add_argument("--sup-mirror-min", action="store_true")  # camsup: min over path / mirror
p.add_argument("--sense-head", action="store_true")
p.add_argument(
    "--size-test", type=float, default=0.0
)  # with --mirror-cheap: also render the path with rotations and centres x S and / S (no grad)
p.add_argument("--size-pull", type=float, default=1.0)  # weight: pull towards a winning size
p.add_argument(
    "--pyramid", type=int, default=0
)  # add the MSE of 2x, 4x, ... average-pooled renders and targets (L levels): wider basins
p.add_argument(
    "--mirror-cheap", action="store_true"
)  # with --sense-head: render the head-resolved path only; test its mirror without gradient

args = p.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(args.seed)
gen = torch.Generator().manual_seed(args.seed)


def load(path):
    d = torch.load(path)
    imgs = d["images"]
    if imgs.shape[-1] != args.size:
        n, f = imgs.shape[:2]
        imgs = (
            F.interpolate(imgs.flatten(0, 1).float(), size=(args.size, args.size), mode="area")
            .round()
            .to(torch.uint8)
            .unflatten(0, (n, f))
        )
        d["K"] = d["K"] * (args.size / d["images"].shape[-1])
    d["images"] = imgs
    return d


train, test = load(args.train), load(args.test)
N, Fr = train["images"].shape[:2]
V = args.vin + args.vt


def split_positions(v, vin):
    """Even split: inputs evenly spaced incl. both ends; targets the rest."""
    pos = torch.linspace(0, v - 1, vin).round().long()
    tgt = torch.tensor([i for i in range(v) if i not in pos.tolist()])
    return pos, tgt


def sample_batch(step):
    lo, hi = map(int, args.span.split(","))
    if args.span_start:
        slo, shi = map(int, args.span_start.split(","))
        a = min(1.0, step / max(1, args.curriculum * args.steps))
        lo, hi = round(slo + a * (lo - slo)), round(shi + a * (hi - shi))
    clips = torch.randint(0, N, (args.batch,), generator=gen)
    frames = []
    for _ in range(args.batch):
        span = int(torch.randint(max(lo, V), max(hi, V) + 1, (1,), generator=gen))
        span = min(span, Fr)
        start = int(torch.randint(0, Fr - span + 1, (1,), generator=gen))
        mid = torch.randperm(span - 2, generator=gen)[: V - 2] + 1
        f = torch.cat((torch.tensor([0, span - 1]), mid)).sort().values + start
        frames.append(f)
    frames = torch.stack(frames)
    idx = clips[:, None].expand(-1, V)
    imgs = train["images"][idx, frames].float() / 255
    c2w = train["c2w"][idx, frames]
    K = train["K"][idx, frames]
    perm = torch.stack([torch.randperm(V, generator=gen) for _ in range(args.batch)])
    inp = perm[:, : args.vin].sort(1).values
    tgt = perm[:, args.vin :].sort(1).values
    if args.split == "ends":  # extrapolation: the inputs are the middle frames
        half = args.vt // 2
        tgt = torch.tensor([*range(half), *range(V - (args.vt - half), V)]).expand(args.batch, -1)
        inp = torch.tensor(list(range(half, V - (args.vt - half)))).expand(args.batch, -1)
    return imgs, c2w, K, frames, inp, tgt


def normalise_cams(c2w):
    """Relative to the canonical (middle) view, centres scaled to mean distance 1."""
    rel = relative_to_canonical(c2w, c2w.shape[1] // 2)
    d = rel[..., :3, 3].norm(dim=-1).mean(1).clamp_min(1e-6)
    rel = rel.clone()
    rel[..., :3, 3] /= d[:, None, None]
    return rel


def test_batch():
    n = test["images"].shape[0]
    span = args.eval_span
    frames = torch.linspace(0, span - 1, V).round().long()
    start = (Fr - span) // 2
    fr = (frames + start)[None].expand(n, -1)
    idx = torch.arange(n)[:, None].expand(-1, V)
    return (test["images"][idx, fr].float() / 255, test["c2w"][idx, fr], test["K"][idx, fr], fr)


L = list(map(int, args.layers.split(",")))
mcfg = ModelConfig(
    name="lvsm" if args.model == "lvsm" else "rayzer",
    dim=args.dim,
    num_heads=args.heads,
    patch_size=args.patch,
    cam_layers=L[0],
    scene_layers=L[1],
    dec_layers=L[2],
    num_scene_tokens=args.scene_tokens,
    pose_head_init_std=args.pose_std,
    index_scale=args.index_scale,
    learn_focal=args.focal == "learn",
    # "true": held at the data's true normalised focal (fx / W, mean over the training pool)
    **(
        {"focal_init": (train["K"][..., 0, 0] / args.size).mean().item()}
        if args.focal == "true"
        else {}
    ),
    keep_input_tokens=args.keep_input,
    cam_pair_canonical=args.pair,
    cam_attention=args.cam_attn,
    cam_conv_stem=args.stem,
    cam_correlation=args.corr,
    cam_readout=args.readout,
    epipolar_bias=args.epipolar,
    ray_near=args.near,
    cam_pair_cnn=bool(args.pose_cnn),
    cam_chain=args.chain,
    cam_pair_cnn_init_std=None if args.pose_cnn in ("", "default") else float(args.pose_cnn),
    decoder_readout=args.dec_readout,
    sweep_depths=args.depths,
    cam_unit_translation=args.unit_t,
)
model = (LVSM if args.model == "lvsm" else RayZer)(mcfg)
if args.mimetic:
    # Make "attend to the input token with the same ray" a first-order behaviour at init:
    # target-ray tokens use the input embedding's ray columns, and every attention layer starts
    # with W_k = W_q (a token attends most to tokens similar to itself; Trockman & Kolter 2023).
    with torch.no_grad():
        rgb_cols = 3 * args.patch**2
        model.decoder.ray_embed.proj.weight.copy_(model.input_embed.proj.weight[:, rgb_cols:])
        for part in (model.reconstructor, model.decoder):
            for blk in part.transformer.blocks:
                w = blk.attn.qkv.weight  # (3d, d): q, k, v rows
                dd = w.shape[1]
                w[dd : 2 * dd].copy_(w[:dd])
if args.shared_depth:
    import shared_depth

    shared_depth.install(model, args.dim, args.patch)
DEPTH_PROBS: list = []
if args.depth_entropy > 0:
    _softmax = torch.softmax

    def _stash_depth_softmax(x, dim=None, **kw):
        # the sweep's depth distribution is the only softmax over a last axis of D depths
        out = _softmax(x, dim=dim, **kw)
        if x.ndim == 4 and dim == -1 and x.shape[-1] == args.depths and model.training:
            DEPTH_PROBS.append(out)
        return out

    torch.softmax = _stash_depth_softmax
if args.gate == "off":
    import rayzer.models.readouts as readouts

    def _coverage_gate(geometric, regress, coverage=None):
        # no learned gate: the regressed colour fills only rays no input view observes
        gate = torch.ones_like(geometric[:, :, :1]) if coverage is None else coverage
        return gate * geometric + (1 - gate) * torch.sigmoid(regress[:, :, :3])

    readouts._gated = _coverage_gate
if args.init:
    # strict=False: --focal true/fixed builds no focal head (its weights are then ignored)
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(torch.load(args.init)["state"], strict=args.focal == "learn")
    if args.reinit_estimator:  # diagnostic: a trained (frozen) renderer, an untrained estimator
        est = ("camera_estimator.", "cam_patch.", "cam_correlation.", "pose_cnn.")
        model.load_state_dict({k: v for k, v in fresh.items() if k.startswith(est)}, strict=False)
    if args.flip_t:  # the pose head's last layer: rows 6..8 are the translation
        with torch.no_grad():
            last = model.camera_estimator.pose_head[2]
            last.weight[6:].neg_()
            last.bias[6:].neg_()
PERCEPTUAL = None
if args.perceptual > 0:
    from rayzer.train.losses import build_perceptual_loss

    PERCEPTUAL = build_perceptual_loss("vgg")
T_GAIN = [1.0]
if args.t_gain:
    ga, gb = map(int, args.t_gain.split(","))

    def scale_translation(_module, _inp, out):
        # rotation-first schedule: the pose head's translation outputs are scaled by T_GAIN
        return torch.cat((out[..., :6], out[..., 6:] * T_GAIN[0]), dim=-1)

    model.camera_estimator.pose_head.register_forward_hook(scale_translation)


class SenseNet(torch.nn.Module):
    """[view ‖ canonical] (6 channels) → logit that the view's yaw to the canonical view is > 0.
    The layout of cnn_probe.py (stride 1 then 2, 2, 2; ReLU; flattened, position-aware head),
    the one that learned the signed yaw in Session 2."""

    def __init__(self, size: int):
        super().__init__()
        nn = torch.nn
        self.net = nn.Sequential(
            nn.Conv2d(6, 32, 3, 1, 1), nn.ReLU(),
            nn.Conv2d(32, 64, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(64, 64, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(64, 64, 3, 2, 1), nn.ReLU(),
            nn.Flatten(), nn.Linear(64 * (size // 8) ** 2, 128), nn.ReLU(), nn.Linear(128, 1),
        )  # fmt: skip

    def forward(self, imgs):  # (B, V, 3, H, W) → (B, V - 1) logits, non-canonical views
        b, v = imgs.shape[:2]
        c = v // 2
        others = imgs[:, [i for i in range(v) if i != c]]
        pairs = torch.cat((others, imgs[:, c : c + 1].expand_as(others)), 2)
        return self.net(pairs.flatten(0, 1)).view(b, v - 1)


SENSE = SenseNet(args.size) if args.sense_head else None
params = list(model.parameters()) + (list(SENSE.parameters()) if SENSE is not None else [])
opt = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.95), weight_decay=0.05)


def lr_factor(s: int) -> float:
    """Linear warm-up then cosine to 0 over the run; with --phase-schedule the oracle phase and
    the estimator phase each get their own."""
    start, length = 0, args.steps
    if args.phase_schedule and args.oracle_steps:
        start, length = (
            (0, args.oracle_steps)
            if s < args.oracle_steps
            else (args.oracle_steps, args.steps - args.oracle_steps)
        )
    s = s - start
    warm = min(1, (s + 1) / args.warmup)
    return (
        warm * 0.5 * (1 + math.cos(math.pi * min(s, length) / max(1, length)))
    )  # 0 steps: eval only


sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)


def psnr(a, b):
    return -10 * torch.log10(((a - b) ** 2).flatten(-3).mean(-1).clamp_min(1e-10))


def forward(imgs, c2w, K, inp, tgt):

    if args.model == "lvsm":
        return model(imgs, normalise_cams(c2w), K, inp, tgt), None
    if args.model == "camsup":
        cams = model.predict_cameras(imgs)
        return None, cams
    if SENSE is not None and not model.training:
        cams = model.predict_cameras(imgs)
        path, _ = sense_corrected(imgs, cams.c2w)
        b = imgs.shape[0]
        ii, ti = inp.expand(b, -1), tgt.expand(b, -1)
        scene = model.reconstruct(
            gather_views(imgs, ii), gather_views(path, ii), gather_views(cams.K_norm, ii), ii
        )
        r = model.render(
            scene, gather_views(path, ti), gather_views(cams.K_norm, ti), *imgs.shape[-2:]
        )
        return r, dataclasses.replace(cams, c2w=path)
    out = model(imgs, inp, tgt)
    return out.render, out.cameras


MIRROR_WINS: list[float] = []
LAST_RAW: list[torch.Tensor] = []
SENSE_ACC: list[float] = []


def view_yaw(c2w):
    """(B, V, 4, 4) → (B, V - 1) yaw (rotation about camera y) of the non-canonical views."""
    v = c2w.shape[1]
    keep = [i for i in range(v) if i != v // 2]
    return matrix_to_axis_angle(c2w[:, keep, :3, :3])[..., 1]


def sense_corrected(imgs, c2w):
    """Mirror the paths whose predicted yaw signs the sense head contradicts on most views."""
    with torch.no_grad():
        logits = SENSE(imgs)
    yaw = view_yaw(c2w)
    w = (yaw.abs() > math.radians(1)).float()
    disagree = ((yaw > 0) != (logits > 0)).float()
    flip = (disagree * w).sum(1) > 0.5 * w.sum(1)
    return torch.where(flip[:, None, None, None], mirror_path(c2w), c2w), flip


def mirror_path(c2w):
    """The mirror image of camera paths relative to the canonical view (see --mirror)."""
    R, t = c2w[..., :3, :3], c2w[..., :3, 3]
    return make_c2w(axis_angle_to_matrix(-matrix_to_axis_angle(R)), t * t.new_tensor([-1, -1, 1]))


def forward_mirror(imgs, inp, tgt):
    """Render every sample with its predicted path and with its mirror; return the better render
    per sample, the cameras that made it, which samples the mirror won, and the pull of the
    prediction towards the winning mirror (mean over those samples, 0 if none)."""
    b = imgs.shape[0]
    cams = model.predict_cameras(imgs)
    ii, ti = (
        inp.expand(b, -1) if inp.dim() == 1 else inp,
        tgt.expand(b, -1) if tgt.dim() == 1 else tgt,
    )
    target = gather_views(imgs, ti)
    renders, errs = [], []
    for path in (cams.c2w, mirror_path(cams.c2w)):
        scene = model.reconstruct(
            gather_views(imgs, ii), gather_views(path, ii), gather_views(cams.K_norm, ii), ii
        )
        r = model.render(
            scene, gather_views(path, ti), gather_views(cams.K_norm, ti), *imgs.shape[-2:]
        )
        renders.append(r)
        diff = r - target
        errs.append((diff.abs() if args.loss == "l1" else diff.square()).flatten(1).mean(1))
    won = (errs[1] < errs[0]).detach()
    r = torch.where(won[:, None, None, None, None], renders[1], renders[0])
    pulled = mirror_path(cams.c2w).detach()
    dist = (
        matrix_to_rot6d(cams.c2w[..., :3, :3]) - matrix_to_rot6d(pulled[..., :3, :3])
    ).square().flatten(1).mean(1) + (cams.c2w[..., :3, 3] - pulled[..., :3, 3]).square().flatten(
        1
    ).mean(1)
    term = (dist * won).sum() / won.sum().clamp_min(1)
    LAST_RAW[:] = [cams.c2w.detach()]
    chosen = torch.where(won[:, None, None, None], mirror_path(cams.c2w), cams.c2w)
    return r, dataclasses.replace(cams, c2w=chosen), won, term


SIZE_TERM: list[torch.Tensor] = []
SIZE_WINS: list[float] = []  # share of samples where the larger size won minus the smaller


def scale_path(c2w, k):
    """Rotations (axis-angle) and centres relative to the canonical view scaled by k."""
    R, t = c2w[..., :3, :3], c2w[..., :3, 3]
    return make_c2w(axis_angle_to_matrix(matrix_to_axis_angle(R) * k), t * k)


KEEP: list[torch.Tensor] = []  # per-sample weights of the photometric loss (--mirror-cheap)


def forward_mirror_cheap(imgs, inp, tgt):
    """--mirror-cheap: render the path the sense head resolves (with gradient) and its mirror
    without gradient. Samples whose mirror renders better leave the photometric loss (their
    render has the wrong sense) and label the head. Returns like :func:`forward_mirror`, with
    ``won`` relative to the estimator's raw path (what the head's labels need)."""
    b = imgs.shape[0]
    cams = model.predict_cameras(imgs)
    path, flip = sense_corrected(imgs, cams.c2w)
    ii, ti = inp.expand(b, -1), tgt.expand(b, -1)
    target = gather_views(imgs, ti)

    def render(p):
        scene = model.reconstruct(
            gather_views(imgs, ii), gather_views(p, ii), gather_views(cams.K_norm, ii), ii
        )
        return model.render(
            scene, gather_views(p, ti), gather_views(cams.K_norm, ti), *imgs.shape[-2:]
        )

    r = render(path)
    with torch.no_grad():
        r_m = render(mirror_path(path))
        err = (r - target).square().flatten(1).mean(1)
        err_m = (r_m - target).square().flatten(1).mean(1)
    won = err_m < err
    KEEP[:] = [(~won).float()]
    if args.size_test:  # hypotheses of another motion size; pull the estimator to a winner
        with torch.no_grad():
            sized = [scale_path(path, k) for k in (args.size_test, 1 / args.size_test)]
            errs = torch.stack(
                [err] + [(render(q) - target).square().flatten(1).mean(1) for q in sized]
            )  # (3, B)
            best = errs.argmin(0)  # 0: as predicted, 1: larger, 2: smaller
            pick = (best > 0) & ~won
            goal = torch.where((best == 1)[:, None, None, None], sized[0], sized[1])
        SIZE_WINS.append((best == 1).float().mean().item() - (best == 2).float().mean().item())
        dist = (
            matrix_to_rot6d(path[..., :3, :3]) - matrix_to_rot6d(goal[..., :3, :3])
        ).square().flatten(1).mean(1) + (path[..., :3, 3] - goal[..., :3, 3]).square().flatten(
            1
        ).mean(1)
        SIZE_TERM[:] = [(dist * pick).sum() / b]
    LAST_RAW[:] = [cams.c2w.detach()]
    return r, dataclasses.replace(cams, c2w=path), won ^ flip, torch.zeros(())


@torch.no_grad()
def evaluate():
    model.eval()
    if SENSE is not None:
        SENSE.eval()
    imgs, c2w, K, fr = test_batch()
    inp, tgt = split_positions(V, args.vin)
    res = {}
    renders, poses, focals = [], [], []
    for i in range(0, imgs.shape[0], 16):
        r, cams = forward(imgs[i : i + 16], c2w[i : i + 16], K[i : i + 16], inp, tgt)
        if r is not None:
            renders.append(r)
        if cams is not None:
            poses.append(cams.c2w)
            focals.append(cams.K_norm[:, 0, 0])
    T = imgs[:, tgt]
    if renders:
        R = torch.cat(renders)
        res["psnr"] = psnr(R, T).mean().item()
        from PIL import Image

        rows = []
        for i in range(6):
            rows.append(
                torch.cat(
                    [
                        torch.cat(list(imgs[i, inp]), 2),
                        torch.cat(list(T[i]), 2),
                        torch.cat(list(R[i]), 2),
                    ],
                    2,
                )
            )
        g = torch.cat(rows, 1).permute(1, 2, 0).clamp(0, 1).numpy()
        Image.fromarray((g * 255).astype("uint8")).save(f"runs/grid_{args.tag or args.model}.png")
    res["psnr_copy"] = psnr(CopyNearest()(imgs, inp, tgt, frame_index=fr), T).mean().item()
    res["psnr_mean"] = psnr(mean_of_inputs(imgs, inp, len(tgt)), T).mean().item()
    gt_rel = relative_pose_errors(torch.eye(4).expand_as(c2w), c2w)  # identity baseline vs truth
    res["rot_identity_med"] = gt_rel["rot_deg"].median().item()
    if poses:
        P = torch.cat(poses)
        e = relative_pose_errors(P, c2w)
        res["rot_err_med"] = e["rot_deg"].median().item()
        res["tdir_err_med"] = e["trans_deg"].median().item()
        res["rot_err_lt10"] = (e["rot_deg"] < 10).float().mean().item()
        # Sense-blind: each clip scored with the closer of its path and the path's mirror, so
        # that the size of the rotations is measured apart from which way they turn.
        em = relative_pose_errors(mirror_path(P), c2w)
        clip_err = e["rot_deg"].flatten(1).median(1).values
        clip_err_m = em["rot_deg"].flatten(1).median(1).values
        res["rot_err_med_blind"] = torch.minimum(clip_err, clip_err_m).median().item()
        c = V // 2
        noncanon = [i for i in range(V) if i != c]
        ang = torch.rad2deg(rotation_angle(P[:, noncanon, :3, :3]))
        res["pred_rel_rot_med"] = ang.median().item()
        # spread among non-canonical views: angle between view poses (pairwise) median
        Pn = P[:, noncanon]
        rel = se3_inverse(Pn).unsqueeze(2) @ Pn.unsqueeze(1)
        res["noncanon_spread_med"] = torch.rad2deg(rotation_angle(rel[..., :3, :3])).median().item()
        # sense of rotation per clip: do the predicted and true axes agree (views rotated > 5°)?
        gt_rel = relative_to_canonical(c2w, c)[:, noncanon, :3, :3]
        aa_p = matrix_to_axis_angle(P[:, noncanon, :3, :3])
        aa_g = matrix_to_axis_angle(gt_rel)
        agree = ((aa_p * aa_g).sum(-1) > 0).float()
        big = (aa_g.norm(dim=-1) > math.radians(5)).float()
        per_clip = (agree * big).sum(1) / big.sum(1).clamp_min(1)
        res["right_sense_clips"] = (per_clip > 0.5).float().mean().item()
        f = torch.cat(focals)
        res["focal_mean"] = f.mean().item()
        res["focal_std"] = f.std().item()
        res["focal_true"] = (K[:, 0, 0] / args.size).mean().item()
    model.train()
    if SENSE is not None:
        SENSE.train()
    return res


t0 = time.time()
log = []
losses = []
for step in range(args.steps):
    imgs, c2w, K, fr, inp, tgt = sample_batch(step)
    if args.t_gain:
        T_GAIN[0] = min(1.0, max(0.0, (step - ga) / max(1, gb - ga)))
    if args.render_inputs:  # targets = inputs + targets; the scene still sees the inputs only
        tgt = torch.cat((inp, tgt), dim=-1)
    mirror_won = None
    if step == args.oracle_steps and args.freeze_renderer:
        # Diagnostic: keep the renderer that learned with the true cameras; from here on only
        # the camera estimator (and its own tokenizers / CNN) learns, through the renders.
        learn = ("camera_estimator.", "cam_patch.", "cam_correlation.", "pose_cnn.")
        for name, prm in model.named_parameters():
            prm.requires_grad_(name.startswith(learn))
    if step < args.oracle_steps:  # diagnostic: the renderer learns with the true cameras
        b = imgs.shape[0]
        gt, K_gt = normalise_cams(c2w), K / args.size
        ii, ti = inp.expand(b, -1), tgt.expand(b, -1)
        scene = model.reconstruct(
            gather_views(imgs, ii), gather_views(gt, ii), gather_views(K_gt, ii), ii
        )
        r = model.render(scene, gather_views(gt, ti), gather_views(K_gt, ti), *imgs.shape[-2:])
        cams = None
    elif args.mirror_cheap:
        r, cams, mirror_won, mirror_term = forward_mirror_cheap(imgs, inp, tgt)
    elif args.mirror >= 0 and args.model == "rayzer" and step % args.mirror_every == 0:
        r, cams, mirror_won, mirror_term = forward_mirror(imgs, inp, tgt)
    else:
        r, cams = forward(imgs, c2w, K, inp, tgt)
    if args.model == "camsup":
        gt = normalise_cams(c2w)
        pr = cams.c2w

        def sup_err(ref, pr=pr):  # (B,) pose regression error against a reference path
            rot = (matrix_to_rot6d(pr[..., :3, :3]) - matrix_to_rot6d(ref[..., :3, :3])).square()
            trans = (pr[..., :3, 3] - ref[..., :3, 3]).square()
            return rot.flatten(1).mean(1) + trans.flatten(1).mean(1)

        err = sup_err(gt)
        if args.sup_mirror_min:  # sense-blind target: the closer of the path and its mirror
            err = torch.minimum(err, sup_err(mirror_path(gt)))
        loss = err.mean()
    else:
        target = gather_views(imgs, tgt)
        loss = F.l1_loss(r, target) if args.loss == "l1" else F.mse_loss(r, target)
        keep = KEEP.pop() if KEEP else torch.ones(r.shape[0])
        if args.mirror_cheap:  # only the samples whose resolved path beat its mirror
            per = (r - target).square().flatten(1).mean(1)
            loss = (per * keep).sum() / keep.sum().clamp_min(1)
        if args.pyramid:  # coarse levels: a photometric gradient that reaches farther
            rr, tt = r.flatten(0, 1), target.flatten(0, 1)
            coarse = 0.0
            for level in range(1, args.pyramid + 1):
                k = 2**level
                d = (F.avg_pool2d(rr, k) - F.avg_pool2d(tt, k)).square().flatten(1).mean(1)
                coarse = coarse + d.view(r.shape[0], -1).mean(1)
            loss = loss + (coarse * keep).sum() / keep.sum().clamp_min(1)
        if args.motion_weight:
            # Pixels the mean of the input views already predicts (the fixated centre of an
            # orbit) say little about the motion; weigh each pixel by how far that mean is off.
            still = gather_views(imgs, inp).mean(1, keepdim=True)
            w = (target - still).abs().mean(2, keepdim=True) + 1e-3
            w = w / w.mean(dim=(-1, -2), keepdim=True)
            loss = (w * (r - target).square()).mean()
        if step < args.sup_steps:  # diagnostic warm start only: uses ground-truth poses
            gt, pr = normalise_cams(c2w), cams.c2w
            loss = loss + 0.1 * (
                (matrix_to_rot6d(pr[..., :3, :3]) - matrix_to_rot6d(gt[..., :3, :3]))
                .square()
                .mean()
                + (pr[..., :3, 3] - gt[..., :3, 3]).square().mean()
            )
    if mirror_won is not None:
        MIRROR_WINS.append(mirror_won.float().mean().item())
        loss = loss + args.mirror * mirror_term
        if SIZE_TERM:
            loss = loss + args.size_pull * SIZE_TERM.pop()
        if SENSE is not None:
            yaw = view_yaw(LAST_RAW[0])
            label = ((yaw > 0) != mirror_won[:, None]).float()  # the sense the renderer chose
            w = (yaw.abs() > math.radians(1)).float()
            logits = SENSE(imgs)
            bce = F.binary_cross_entropy_with_logits(logits, label, reduction="none")
            loss = loss + (bce * w).sum() / w.sum().clamp_min(1)
            gt_yaw = view_yaw(normalise_cams(c2w))
            acc = ((logits > 0) == (gt_yaw > 0)).float()
            SENSE_ACC.append(((acc * w).sum() / w.sum().clamp_min(1)).item())
    if PERCEPTUAL is not None:  # MSE + λ·LPIPS, as the trainer's photometric_loss
        loss = loss + args.perceptual * PERCEPTUAL(r.flatten(0, 1), target.flatten(0, 1)).mean()
    losses.append(loss.item())  # the photometric loss alone
    if DEPTH_PROBS:
        prob = DEPTH_PROBS.pop()
        DEPTH_PROBS.clear()
        loss = loss + args.depth_entropy * -(prob * prob.clamp_min(1e-12).log()).sum(-1).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    gn = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    sched.step()
    if step % 50 == 0:
        wins = f" mirror won {sum(MIRROR_WINS) / len(MIRROR_WINS):.2f}" if MIRROR_WINS else ""
        if SIZE_WINS:
            wins += f" size up-down {sum(SIZE_WINS) / len(SIZE_WINS):+.2f}"
            SIZE_WINS.clear()
        if SENSE_ACC:  # diagnostic only: agreement of the head with the true yaw sign
            wins += f" sense acc {sum(SENSE_ACC) / len(SENSE_ACC):.2f}"
        MIRROR_WINS.clear()
        SENSE_ACC.clear()
        print(
            f"step {step} loss {loss.item():.4f} gn {gn:.3f} t {time.time() - t0:.0f}s{wins}",
            flush=True,
        )
    if args.eval_every and step and step % args.eval_every == 0:
        r_ = evaluate()
        r_["step"] = step
        log.append(r_)
        print(json.dumps(r_), flush=True)
final = evaluate()
final["train_loss_tail"] = sum(losses[-100:]) / max(1, len(losses[-100:]))
final["step"] = args.steps
final["time_s"] = time.time() - t0
final["args"] = vars(args)
print("FINAL", json.dumps(final), flush=True)
if args.save:
    torch.save(
        {
            "state": model.state_dict(),
            "cfg": vars(mcfg),
            "args": vars(args),
            "sense": SENSE.state_dict() if SENSE is not None else None,
        },
        args.save,
    )
with open("runs/results.jsonl", "a") as f:
    f.write(json.dumps({"final": final, "curve": log}) + "\n")
