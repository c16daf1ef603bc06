"""Did the pose-teacher term's 1/eps translation gradient make the spike guard skip updates in
the pose-only E-RayZer run (README, "Pose only": 77 skipped updates)?

The term divides the predicted relative translation by max(|t̂|, eps), eps = 0.01, so its
gradient in t̂ reaches 1/eps = 100. This re-runs the pose-only probe's trainer
(``probe_pose_only.py``: erayzer-tiny-cpu, truth cache, pool 256, memoised clips; the same
batches and updates as ``pose_only/erayzer_pool256``) and logs, every step, the guard's
decision and the gradient split into the term's parts at the same parameters:

- ``norm_trans``: the translation part's gradient (a second backward pass of that part alone);
- ``norm_rot``: the rest (total − translation part);
- ``norm_with_smooth`` / ``norm_with_smooth_eps0.1``: the norm had the translation been
  normalised by sqrt(|t̂|² + eps²) (eps 0.01 / 0.1) instead;
- the predicted relative translations' norms over the valid pairs (min, median, share < 2 eps).

``summary`` then feeds each variant's norms to a fresh ``GradSpikeGuard(10)`` (the preset's
factor) along this run's trajectory: how many updates each would have skipped.

Usage (1 thread, nice 10; ~0.6 process-CPU s per step)::

    python experiments/issue18_explicit/probe_teacher_spikes.py run 520 OUT.json
    python experiments/issue18_explicit/probe_teacher_spikes.py summary OUT.json
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import probe_pose_only as P  # the sibling (run by its path)
import torch

from rayzer.config import load_config
from rayzer.data.stream import make_loader
from rayzer.models.pose_teacher_loss import _relative
from rayzer.train.optim import GradSpikeGuard

EPS = 1e-2
TRUTH = "/work/runs/ceiling/truth_orbit256.pt"


def parts(c2w, teacher, valid):
    """The term's translation part (mean over valid pairs of 1 − cos) with the library's
    normalisation and the two smooth ones, and the valid pairs' |t̂|."""
    v = c2w.shape[1]
    a, b = torch.triu_indices(v, v, offset=1)
    valid = valid & torch.isfinite(teacher).all(-1).all(-1)
    eye = torch.eye(4).expand_as(teacher)
    teacher = torch.where(valid[..., None, None], teacher.float(), eye)
    pred, true = _relative(c2w.float(), a, b), _relative(teacher, a, b)
    t_true = true[..., :3, 3]
    tn = t_true.norm(dim=-1)
    mask = (valid[:, a] & valid[:, b] & (tn > 1e-8)).float()
    count = mask.sum().clamp_min(1.0)
    tp = pred[..., :3, 3]
    pn = tp.norm(dim=-1)
    dot = (tp * t_true).sum(-1) / tn.clamp_min(1e-8)
    cur = ((1 - dot / pn.clamp_min(EPS)) * mask).sum() / count
    smooth = ((1 - dot / (pn.square() + EPS**2).sqrt()) * mask).sum() / count
    smooth10 = ((1 - dot / (pn.square() + (10 * EPS) ** 2).sqrt()) * mask).sum() / count
    return cur, smooth, smooth10, pn[mask.bool()].detach()


class Inst(P.PoseOnlyTrainer):
    acc = None
    _cams = None

    def compute_loss(self, batch):
        terms, img = super().compute_loss(batch)
        cur, sm, sm10, pn = parts(Inst._cams.c2w, batch["teacher_c2w"], batch["teacher_valid"])
        params = [p for p in self.model.parameters() if p.requires_grad]
        accum = self.layout.grad_accum
        gs = []
        for t in (cur, sm, sm10):
            g = torch.autograd.grad(t / accum, params, retain_graph=True, allow_unused=True)
            gs.append(
                torch.cat(
                    [
                        (x if x is not None else torch.zeros_like(p)).flatten()
                        for x, p in zip(g, params)
                    ]
                )
            )
        if self.acc is None:
            self.acc = {"g": [torch.zeros_like(gs[0]) for _ in gs], "pn": []}
        for i, g in enumerate(gs):
            self.acc["g"][i] += g
        self.acc["pn"].append(pn)
        return terms, img

    def _update(self):
        params = [p for p in self.model.parameters() if p.requires_grad]
        total = torch.cat(
            [(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in params]
        )
        g_cur, g_sm, g_sm10 = self.acc["g"]
        rot = total - g_cur
        pn = torch.cat(self.acc["pn"])
        thr = self.guard.threshold(self.step)
        gn, lr, skipped = super()._update()
        self.rows.append(
            {
                "step": self.step + 1,
                "grad_norm": gn,
                "threshold": thr,
                "skipped": skipped,
                "norm_total_check": total.norm().item(),
                "norm_trans": g_cur.norm().item(),
                "norm_rot": rot.norm().item(),
                "norm_with_smooth": (rot + g_sm).norm().item(),
                "norm_with_smooth_eps0.1": (rot + g_sm10).norm().item(),
                "tpred_min": pn.min().item(),
                "tpred_median": pn.median().item(),
                "frac_below_2eps": (pn < 2 * EPS).float().mean().item(),
            }
        )
        self.acc = None
        return gn, lr, skipped


def run(steps: int, out: Path) -> None:
    orig = P.pose_only_cameras

    def keep(model, batch):  # the trainer's cameras, for the second backward pass
        cams = orig(model, batch)
        Inst._cams = cams
        return cams

    P.pose_only_cameras = keep  # undone below: the probe module is shared with the caller
    run_dir = Path(tempfile.mkdtemp(prefix="k_spike_"))  # the trainer's folder, not an output
    tr = None
    try:
        overrides = [
            "model.pose_teacher_weight=1.0",
            "data.clip_pool=256",
            f"data.pose_teacher={TRUTH}",
            "train.num_threads=1",
            "train.image_every=0",
            "train.ckpt_every=0",
        ]
        cfg = load_config("erayzer-tiny-cpu", overrides)
        cfg.train.out_dir = str(run_dir)
        tr = Inst(cfg, run_dir)
        tr.rows = []
        memo = P.MemoClips(tr.stream.sources[0])
        P.check_memo(tr.stream, memo)
        tr.stream.sources[0].load = memo.load
        tr.stream.start = 0
        batches = iter(make_loader(tr.stream, 0, pin_memory=False))
        c0 = time.process_time()
        while tr.step < steps:
            tr.train_step(batches)
            if tr.step % 20 == 0:
                r = tr.rows[-1]
                print(
                    tr.step,
                    f"skipped {tr.guard.skipped} gn {r['grad_norm']:.3g} thr {r['threshold']:.3g} "
                    f"trans {r['norm_trans']:.3g} rot {r['norm_rot']:.3g} tmin {r['tpred_min']:.3g} "
                    f"tmed {r['tpred_median']:.3g} cpu {time.process_time() - c0:.0f}",
                    flush=True,
                )
                out.write_text(json.dumps({"rows": tr.rows, "cpu_s": time.process_time() - c0}))
        out.write_text(json.dumps({"rows": tr.rows, "cpu_s": time.process_time() - c0}))
    finally:
        if tr is not None:  # its logs, before their folder goes
            tr.close()
        P.pose_only_cameras = orig
        shutil.rmtree(run_dir, ignore_errors=True)


def summary(path: Path) -> dict:
    rows = json.loads(path.read_text())["rows"]
    skipped = [r for r in rows if r["skipped"]]
    ok = [r for r in rows if not r["skipped"]]

    def span(values):
        values = list(values)
        return [min(values), max(values)]

    out = {
        "steps": len(rows),
        "skipped": len(skipped),
        "skipped_steps": [r["step"] for r in skipped],
    }
    out["skipped_trans_over_total"] = span(r["norm_trans"] / r["grad_norm"] for r in skipped)
    out["skipped_rot_norm"] = span(r["norm_rot"] for r in skipped)
    out["skipped_tpred_median"] = span(r["tpred_median"] for r in skipped)
    out["other_tpred_median_median"] = statistics.median(r["tpred_median"] for r in ok)
    out["other_trans_norm_median"] = statistics.median(r["norm_trans"] for r in ok)
    out["other_rot_norm_median"] = statistics.median(r["norm_rot"] for r in ok)
    for key in ("norm_with_smooth", "norm_with_smooth_eps0.1"):
        out[f"skipped_{key}_over_current"] = span(r[key] / r["grad_norm"] for r in skipped)
    for key in ("grad_norm", "norm_with_smooth", "norm_with_smooth_eps0.1", "norm_rot"):
        guard = GradSpikeGuard(10.0)
        out[f"guard_skips_{key}"] = sum(guard.check(r[key], r["step"] - 1) for r in rows)
    return out


if __name__ == "__main__":
    if sys.argv[1] == "run":
        run(int(sys.argv[2]), Path(sys.argv[3]))
    else:
        print(json.dumps(summary(Path(sys.argv[2])), indent=1))
