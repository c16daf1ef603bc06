"""The pose head's supervised learning curve, with nothing else in the step (issue 18, "The
supervised ceiling" → "Pose only").

Builds the model of a preset exactly as ``rayzer train`` does (:class:`rayzer.train.Trainer`:
same seed and init, AdamW over the model's parameter groups, warm-up + cosine, clip, spike
guard, the training stream with its pool / curriculum and ``data.pose_teacher`` cache), and
replaces only the loss: the cameras of the batch's views are predicted by the pose branch alone
and the loss is the library's pose-teacher term
(:func:`rayzer.models.pose_teacher_loss.batch_pose_teacher_terms`) against the cache, here the
generator's TRUE cameras (``build_truth_teacher.py``). No scene encoder, no Gaussians, no
rendering.

- E-RayZer: ``model.predict_cameras(images)`` (pose patch embed + pose encoder + pairwise head;
  the focal head runs but gets no gradient: the term is focal-free).
- NAS3R: the backbone + camera head as in its training ``forward`` (masked attention: the input
  views are the context, the first input view is the reference); the depth and Gaussian heads
  are not run.

The stream is the trainer's (same clips, views, curriculum, batches); each pool clip is
rendered once and sliced afterwards (``MemoClips``; the first two micro-batches are checked bit
for bit against the renderer), since rendering is ~3/4 of a pose-only step; ``--no-memo``
renders every sample as the trainer does.

Parameters outside the pose branch get no gradient, so AdamW leaves them alone (no decay
either) and the clip / spike guard see the pose branch's norm only (in the full model they see
every parameter's).

Logged every ``--log-every`` steps (that step's training batch): the term, the median relative
rotation error against the truth and identity's on the same batch, the median translation-
direction error. Every ``--eval-every`` steps: the held-out cameras on the bench's test scenes
(``rayzer bench quality``: TEST_SEEDS, ``even`` protocol, widest training span), scored with
:func:`rayzer.eval.novel_view.camera_report` on ``predict_cameras`` of all views, as
:func:`rayzer.eval.novel_view.evaluate` does (without rendering). Stops at ``--steps`` or when
the process-CPU budget is spent, whichever comes first.

Writes ``OUT.json`` (config, per-step logs, evaluations, CPU-s/step), ``OUT.md`` (table) and
``OUT.png`` (held-out rotation vs step with the identity line).

Usage (1 thread, nice 10)::

    OMP_NUM_THREADS=1 nice -n 10 python experiments/issue18_explicit/probe_pose_only.py \\
        --config erayzer-tiny-cpu --teacher /work/runs/ceiling/truth_orbit256.pt --pool 256 \\
        --cpu-minutes 25 --out experiments/issue18_explicit/pose_only/erayzer_pool256 \\
        [key=value overrides, e.g. train.lr=3e-4]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from probe_orbit_sign_bound import bench_even_set  # the sibling (run by its path)
from torch import Tensor

from rayzer.config import load_config
from rayzer.data.stream import make_loader
from rayzer.eval.novel_view import camera_report
from rayzer.eval.turns import turn_signs
from rayzer.geometry import relative_pose_errors
from rayzer.models.base import CameraPrediction
from rayzer.models.pose_teacher_loss import batch_pose_teacher_terms
from rayzer.models.views import as_view_index
from rayzer.nn.transformer import INIT_STD
from rayzer.train import loop
from rayzer.train.loop import Trainer


def pose_only_cameras(model: torch.nn.Module, batch: dict[str, Tensor]) -> CameraPrediction:
    """The cameras of all views of a training batch from the pose branch only."""
    images = batch["image"]
    if model.cfg.name == "erayzer":
        return model.predict_cameras(images)
    if model.cfg.name == "nas3r":  # as NAS3R.forward, without the depth / Gaussian heads
        b, v, _, h, w = images.shape
        inp = as_view_index(batch["input_index"], b, v).to(images.device)
        is_context = torch.zeros(b, v, dtype=torch.bool, device=images.device)
        is_context.scatter_(1, inp, True)
        reference = inp[:, 0]
        enc = model._encode(images, is_context, reference)
        return model._cameras(enc.camera, is_context, reference, h, w)
    raise ValueError(f"no pose-only path for model {model.cfg.name!r} (erayzer, nas3r)")


def add_view_index_embedding(model: torch.nn.Module, max_views: int = 32) -> None:
    """A variant, not the preset: a learned per-position embedding (frame-order index 0 … V−1)
    added to the camera token of each view in E-RayZer's pose encoder, which has none (the
    views are a set; GAUSSIANS.md §3). Zero-mean, std INIT_STD like the other tokens; its name
    ends in ``_token`` so it is exempt from weight decay like them."""
    enc = model.pose_encoder
    dim = enc.camera_token.shape[-1]
    enc.view_index_token = torch.nn.Parameter(torch.randn(max_views, dim) * INIT_STD)
    plain = enc.special_tokens

    def special_tokens(batch: int, views: int, is_reference: Tensor | None) -> Tensor:
        tokens = plain(batch, views, is_reference)  # (B, V, 1 + R, d), camera token first
        extra = torch.zeros_like(tokens[0])
        extra[:, 0] = enc.view_index_token[:views]
        return tokens + extra

    enc.special_tokens = special_tokens


class PoseOnlyTrainer(Trainer):
    """The trainer with the loss replaced by the pose-teacher term of the pose branch alone."""

    last: dict[str, Tensor] | None = None
    #: (rotation, translation) weights of the term's two parts; None: the library's sum as is
    part_weights: tuple[float, float] | None = None

    def compute_loss(self, batch: dict[str, Tensor]) -> tuple[dict[str, Tensor], Tensor]:
        cams = pose_only_cameras(self.model, batch)
        t = batch_pose_teacher_terms(batch, cams.c2w)
        self.last = {"c2w": cams.c2w.detach(), "gt": batch["c2w"]}
        loss = t["loss"]
        if self.part_weights is not None:
            w_rot, w_trans = self.part_weights
            loss = w_rot * t["rot_loss"] + w_trans * t["trans_loss"]
        terms = {
            "loss": loss,
            "teacher": t["loss"].detach(),
            "teacher_rot_deg": t["rot_deg"],
            "teacher_trans_deg": t["trans_deg"],
        }
        return terms, batch["image"]  # no render: image_every is 0


class MemoClips:
    """Wraps a clip source's ``load``: each clip of the pool is rendered once (all its frames)
    and sliced afterwards, so the stream hands out the same batches at a fraction of the cost
    (the synthetic renderer is ~3/4 of a pose-only step). :func:`check_memo` verifies the
    equality on real batches before training."""

    def __init__(self, source: Any) -> None:
        self.source, self.load_original = source, source.load
        self.memo: dict[tuple[int, Any], Any] = {}

    def load(self, clip: int, frames: Tensor, size: Any = None) -> Any:
        key = (clip, size if not isinstance(size, list) else tuple(size))
        if key not in self.memo:
            every = torch.arange(self.source.num_frames(clip))
            self.memo[key] = self.load_original(clip, every, size)
        full = self.memo[key]
        rows = torch.as_tensor(frames, dtype=torch.long)
        return type(full)(full.images[rows], full.c2w[rows], full.K[rows])


def check_memo(stream: Any, memo: MemoClips, micro_batches: int = 2) -> None:
    """The memoised stream's first micro-batches equal the original renderer's, bit for bit."""
    source = stream.sources[0]
    for number in range(micro_batches):
        source.load = memo.load_original
        ref = stream.micro_batch(number)
        source.load = memo.load
        got = stream.micro_batch(number)
        for key, value in ref.items():
            if not torch.equal(value, got[key]):
                raise RuntimeError(f"memoised clips differ from the renderer's in {key!r}")


def batch_errors(pred: Tensor, gt: Tensor) -> dict[str, float]:
    """Median relative rotation / translation-direction errors (degrees) over all pairs of a
    batch, and identity's rotation median on the same pairs."""
    err = relative_pose_errors(pred.double(), gt.double())
    ident = relative_pose_errors(
        torch.eye(4, dtype=torch.float64).expand_as(gt).clone(), gt.double()
    )
    return {
        "rot_med": err["rot_deg"].median().item(),
        "identity_rot_med": ident["rot_deg"].median().item(),
        "trans_med": err["trans_deg"].median().item(),
    }


def _predict(
    model: torch.nn.Module, samples: list, batch_size: int, still: bool
) -> tuple[Tensor, int]:
    """Predicted c2w (S, V, 4, 4) of all views and the view the model holds at the identity
    (as :func:`rayzer.eval.novel_view.model_novel_views` takes it); ``still``: every view shows
    the middle view's image, so the prediction cannot read the motion from the content (only a
    view's position can change it, for a model that embeds positions)."""
    preds, canonical = [], None
    for i in range(0, len(samples), batch_size):
        images = torch.stack([s.images for s in samples[i : i + batch_size]])
        if still:
            c = images.shape[1] // 2
            images = images[:, c : c + 1].expand_as(images).contiguous()
        cams = model.predict_cameras(images)
        preds.append(cams.c2w.cpu())
        canonical = cams.canonical if cams.canonical is not None else images.shape[1] // 2
    return torch.cat(preds), canonical


@torch.no_grad()
def held_out(model: torch.nn.Module, samples: list, batch_size: int = 8) -> dict[str, Any]:
    """Camera report of ``predict_cameras`` of all views of the test samples, plus the rotation
    median per turn direction of the orbit (the report's ``by_turn``, :mod:`rayzer.eval.turns`:
    a head that ignores the direction of motion does well on one group only) and the same report
    on still inputs (:func:`_predict`)."""
    was = model.training
    model.eval()
    try:
        pred, canonical = _predict(model, samples, batch_size, still=False)
        still, _ = _predict(model, samples, batch_size, still=True)
    finally:
        model.train(was)
    gt = torch.stack([s.c2w for s in samples])
    rep = camera_report(pred, gt, canonical)
    pose, col = rep["pose"], rep["collapse"]
    signs = turn_signs(gt.double())  # (S,) the split camera_report's by_turn uses
    split = pose.get("by_turn") or {}
    by_turn = {
        side: (split.get(side) or {}).get("rot_err_deg_median") for side in ("plus", "minus")
    }
    still_pose = camera_report(still, gt, canonical)["pose"]
    return {
        "rot_med": pose["rot_err_deg_median"],
        "trans_med": pose["trans_dir_err_deg_median"],
        "identity_rot_med": pose["identity_rot_err_deg_median"],
        "rpa": pose["rpa"],
        "rot_acc": pose["rot_acc"],
        "trans_acc": pose["trans_acc"],
        "spread_deg": col["noncanonical_spread_deg_median"],
        "rot_to_canonical_deg": col["pred_rel_rot_deg_median"],
        "gt_rot_to_canonical_deg": col["gt_rel_rot_to_canonical_deg_median"],
        "rot_med_by_turn": by_turn,
        "turns": {"plus": int((signs > 0).sum()), "minus": int((signs < 0).sum())},
        "still_inputs": {
            "rot_med": still_pose["rot_err_deg_median"],
            "trans_med": still_pose["trans_dir_err_deg_median"],
            "rpa": still_pose["rpa"],
        },
    }


#: What a run imports besides torch: the library, the presets, this probe and its sibling.
CODE_PATHS = (
    "src",
    "configs",
    "experiments/issue18_explicit/probe_pose_only.py",
    "experiments/issue18_explicit/probe_orbit_sign_bound.py",
)


def git_tree(root: str | Path = ".") -> str:
    """HEAD's short hash in ``root`` (the repository root the probe runs from), with
    ``+dirty`` when a tracked file of :data:`CODE_PATHS` differs from it. Untracked files are
    ignored: a new file nothing imports (another helper's asset in src/) changes no result.
    :func:`main` takes it once, before training: HEAD moves while a long run goes on."""
    try:
        git = ["git", "-C", str(root)]
        out = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS],
            capture_output=True,
            text=True,
        )
        return (out.stdout.strip() or "unknown") + ("+dirty" if dirty.stdout.strip() else "")
    except OSError:
        return "unknown"


def fmt(x: float | None, nd: int = 2) -> str:
    return "—" if x is None else f"{x:.{nd}f}"


def write_outputs(out: Path, result: dict[str, Any]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    lines = [
        f"# Pose only: {result['label']}",
        "",
        f"Command: `{result['command']}`  ",
        f"Tree {result['tree']}; {result['steps']} steps, {result['cpu_s']:.0f} process-CPU s "
        f"({result['cpu_s_per_step']:.3f} CPU-s/step), load average {result['load']}.",
        "",
        "Held-out (`even`, "
        f"{result['eval_scenes']} orbit test scenes; identity "
        f"{fmt(result['evals'][0]['identity_rot_med'] if result['evals'] else None)}°):",
        "",
        "| step | rotation median | translation dir. median | RPA@5/15/30 | spread | rot. to canonical |",
        "|---|---|---|---|---|---|",
    ]
    for e in result["evals"]:
        r = e["rpa"]
        lines.append(
            f"| {e['step']} | {fmt(e['rot_med'])}° | {fmt(e['trans_med'])}° | "
            f"{r['@5']:.2f} / {r['@15']:.2f} / {r['@30']:.2f} | {fmt(e['spread_deg'])}° | "
            f"{fmt(e['rot_to_canonical_deg'])}° |"
        )
    lines += [
        "",
        "Training batches (that step's batch):",
        "",
        "| step | term | rotation median | identity's | translation dir. median | lr | grad norm |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in result["train"]:
        lines.append(
            f"| {row['step']} | {row['term']:.3f} | {row['rot_med']:.2f}° | "
            f"{row['identity_rot_med']:.2f}° | {row['trans_med']:.1f}° | {row['lr']:.2e} | "
            f"{row['grad_norm']:.3g} |"
        )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if result["evals"]:
        steps = [e["step"] for e in result["evals"]]
        ax.plot(steps, [e["rot_med"] for e in result["evals"]], "o-", label="held-out rotation")
        ax.plot(
            steps, [e["trans_med"] for e in result["evals"]], "s--", label="held-out transl. dir."
        )
        ax.axhline(result["evals"][0]["identity_rot_med"], color="k", ls=":", label="identity")
    ax.set_xlabel("step")
    ax.set_ylabel("median error (°)")
    ax.set_title(result["label"], fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=100)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--config", default="erayzer-tiny-cpu")
    ap.add_argument("--teacher", required=True, help="pose-teacher cache (the truth cache)")
    ap.add_argument("--pool", type=int, default=256)
    ap.add_argument("--steps", type=int, default=100000, help="stop after this many steps")
    ap.add_argument("--cpu-minutes", type=float, default=25.0, help="process-CPU budget")
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--eval-scenes", type=int, default=32)
    ap.add_argument("--out", type=Path, required=True, help="output stem (.json/.md/.png)")
    ap.add_argument("--label", default=None)
    ap.add_argument(
        "--view-embedding",
        action="store_true",
        help="variant: a frame-index embedding on E-RayZer's pose camera tokens",
    )
    ap.add_argument(
        "--no-memo", action="store_true", help="render every sample (the trainer's way, slower)"
    )
    ap.add_argument(
        "--part-weights",
        type=float,
        nargs=2,
        metavar=("ROTATION", "TRANSLATION"),
        default=None,
        help="variant: weigh the term's rotation and translation parts (default: their sum; "
        "the logged 'term' stays the unweighted sum)",
    )
    ap.add_argument("overrides", nargs="*", help="key=value config overrides")
    args = ap.parse_args()
    weights = args.part_weights or []
    if any(not math.isfinite(w) or w < 0 for w in weights) or weights == [0.0, 0.0]:
        ap.error(f"--part-weights wants finite weights >= 0, not both 0; got {weights}")

    cpu0 = time.process_time()
    tree = git_tree()  # now: the code this process imports (HEAD moves during a long run)
    overrides = [
        f"data.clip_pool={args.pool}",
        f"data.pose_teacher={args.teacher}",
        "train.num_threads=1",
        "train.image_every=0",
        "train.ckpt_every=0",
        *args.overrides,
    ]
    # the model's own weight for the term is irrelevant here (the term is the whole loss), but
    # the config check wants it > 0 with a cache
    overrides.insert(0, "model.pose_teacher_weight=1.0")
    cfg = load_config(args.config, overrides)
    # the trainer's run folder (config.yaml, metrics.jsonl) is not an output of the probe
    run_dir = Path(tempfile.mkdtemp(prefix="pose_only_"))
    cfg.train.out_dir = str(run_dir)
    plain_build = loop.build_model
    if args.view_embedding:
        if cfg.model.name != "erayzer":
            raise ValueError("--view-embedding is for E-RayZer's pose encoder")

        def build_model(model_cfg: Any) -> torch.nn.Module:  # before the optimizer is built
            model = plain_build(model_cfg)
            add_view_index_embedding(model)
            return model

        loop.build_model = build_model
    try:
        trainer = PoseOnlyTrainer(cfg, run_dir)
    finally:
        loop.build_model = plain_build  # the variant is this trainer's only
    trainer.part_weights = tuple(args.part_weights) if args.part_weights else None
    model = trainer.model
    n_pose = sum(
        p.numel()
        for n, p in model.named_parameters()
        if n.split(".")[0] in POSE_PARTS[cfg.model.name]
    )

    samples = bench_even_set(cfg.data, args.eval_scenes)  # the held-out set of the bench
    setup_cpu = time.process_time() - cpu0
    print(f"setup {setup_cpu:.1f} CPU s; pose-branch parameters {n_pose}", flush=True)

    if not args.no_memo:
        memo = MemoClips(trainer.stream.sources[0])
        check_memo(trainer.stream, memo)
        trainer.stream.sources[0].load = memo.load
    trainer.stream.start = 0
    batches = iter(make_loader(trainer.stream, 0, pin_memory=False))
    train_rows: list[dict[str, Any]] = []
    evals: list[dict[str, Any]] = []
    eval_cpu = 0.0
    train_cpu = 0.0

    def evaluate(step: int) -> None:
        nonlocal eval_cpu
        c = time.process_time()
        e = {"step": step, **held_out(model, samples)}
        eval_cpu += time.process_time() - c
        evals.append(e)
        print(
            f"[eval] step {step}: rot {e['rot_med']:.2f}° (identity {e['identity_rot_med']:.2f}°) "
            f"trans {e['trans_med']:.2f}° rpa30 {e['rpa']['@30']:.2f} spread {e['spread_deg']:.2f}° "
            f"by turn +{fmt(e['rot_med_by_turn']['plus'])}° -{fmt(e['rot_med_by_turn']['minus'])}° "
            f"still {e['still_inputs']['rot_med']:.2f}° / {e['still_inputs']['trans_med']:.1f}°",
            flush=True,
        )

    def save(stopped_by: str) -> dict[str, Any]:
        """Write the outputs so far (after every evaluation: a killed run keeps its curve)."""
        result = {
            "label": args.label or args.out.name,
            "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
            "tree": tree,
            "model": cfg.model.name,
            "config": args.config,
            "overrides": overrides,
            "pool": args.pool,
            "teacher": args.teacher,
            "pose_branch_parameters": n_pose,
            "memoised_clips": not args.no_memo,
            "view_index_embedding": args.view_embedding,
            "part_weights": args.part_weights,
            "steps": trainer.step,
            "skipped_updates": trainer.guard.skipped,
            "cpu_s": time.process_time() - cpu0,
            "train_cpu_s": train_cpu,
            "eval_cpu_s": eval_cpu,
            "setup_cpu_s": setup_cpu,
            "cpu_s_per_step": train_cpu / max(trainer.step, 1),
            "load": " / ".join(f"{x:.2f}" for x in os.getloadavg()),
            "eval_scenes": args.eval_scenes,
            "train": train_rows,
            "evals": evals,
        }
        result["stopped_by"] = stopped_by
        write_outputs(args.out, result)
        return result

    t0 = time.process_time()
    stop: list[str] = []
    previous_handler = signal.signal(signal.SIGTERM, lambda *_: stop.append("SIGTERM"))
    evaluate(0)
    while trainer.step < args.steps:
        c = time.process_time()
        stats = trainer.train_step(batches)
        train_cpu += time.process_time() - c
        s = stats.step
        if s % args.log_every == 0:
            errs = batch_errors(trainer.last["c2w"], trainer.last["gt"])
            row = {
                "step": s,
                "term": stats.terms["teacher"],
                "term_rot_deg_mean": stats.terms["teacher_rot_deg"],
                "term_trans_deg_mean": stats.terms["teacher_trans_deg"],
                **errs,
                "lr": stats.lr,
                "grad_norm": stats.grad_norm,
                "skipped_total": trainer.guard.skipped,
                "cpu_s": time.process_time() - t0,
            }
            train_rows.append(row)
            print(
                f"step {s}: term {row['term']:.3f} rot {errs['rot_med']:.2f}° (identity "
                f"{errs['identity_rot_med']:.2f}°) trans {errs['trans_med']:.1f}° lr {stats.lr:.2e} "
                f"gn {stats.grad_norm:.3g} cpu {row['cpu_s']:.0f}s",
                flush=True,
            )
        if s % args.eval_every == 0:
            evaluate(s)
            save("running")
        if time.process_time() - cpu0 >= 60.0 * args.cpu_minutes:
            stop.append("cpu budget")
        if stop:
            break
    if not evals or evals[-1]["step"] != trainer.step:
        evaluate(trainer.step)
    result = save(stop[0] if stop else "steps")
    trainer.close()
    signal.signal(signal.SIGTERM, previous_handler)
    shutil.rmtree(run_dir, ignore_errors=True)
    print(json.dumps({k: result[k] for k in ("label", "steps", "cpu_s", "cpu_s_per_step")}))


#: Top-level modules of each model's pose branch (for the parameter count only).
POSE_PARTS = {
    "erayzer": ("pose_patch", "pose_encoder", "pose_head", "focal_head"),
    "nas3r": ("patch", "backbone", "camera_head"),
}

if __name__ == "__main__":
    main()
