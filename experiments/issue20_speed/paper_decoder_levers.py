"""Levers measured at the paper-decoder configuration (issue 20, part 3; run 5 of
``docs/benchmarks/speed``). All at 1 thread, in CPU seconds of this process.

Usage:

    python experiments/issue20_speed/paper_decoder_levers.py LEVER

LEVER:
- ``attention``: fwd + bwd of SDPA flash (the default on the CPU), SDPA math and a hand-written
  matmul–softmax–matmul with its own backward, at the decoder's three sequence lengths
  ((B, heads, N, 32) = (8, 4, 520), (8, 4, 272), (32, 4, 80)); min of 5 repeats.
- ``qknorm``: the whole ``Attention`` module fwd + bwd, today's per-head q / k RMSNorm against one
  fused pass over q and k of the QKV output (outputs and gradients compared in float64 first).
- ``adamw``: one AdamW step over the model's parameters: for-loop (the CPU default), foreach,
  fused; and how far the fused weights drift from the for-loop's after 12 steps.
- ``mkldnn``: the eager training step with ``torch.backends.mkldnn`` enabled / disabled,
  interleaved, and the renders' difference.
- ``profile`` / ``profile-compiled``: ``torch.profiler`` shares of one training step, eager or
  after ``model.compile()`` (the inductor cache is ``TORCHINDUCTOR_CACHE_DIR``).
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from rayzer.bench.speed import config_file, random_batch
from rayzer.config import load_config
from rayzer.models import build_model
from rayzer.nn.transformer import Attention

SHAPES = ((8, 520), (8, 272), (32, 80))  # (sequences, tokens) of estimator, scene, decoder


class ManualAttention(torch.autograd.Function):
    """softmax(q kᵀ / √d) v for (B, H, N, d) inputs, storing the probabilities for backward."""

    @staticmethod
    def forward(ctx: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        scale = q.shape[-1] ** -0.5
        p = torch.softmax(torch.matmul(q, k.transpose(-1, -2)).mul_(scale), -1)
        o = torch.matmul(p, v)
        ctx.save_for_backward(q, k, v, p, o)
        ctx.scale = scale
        return o

    @staticmethod
    def backward(ctx: Any, do: torch.Tensor) -> tuple[torch.Tensor, ...]:
        q, k, v, p, o = ctx.saved_tensors
        dv = torch.matmul(p.transpose(-1, -2), do)
        delta = (do * o).sum(-1, keepdim=True)
        ds = torch.matmul(do, v.transpose(-1, -2)).sub_(delta).mul_(p).mul_(ctx.scale)
        return torch.matmul(ds, k), torch.matmul(ds.transpose(-1, -2), q), dv


class _FusedQKNorm(torch.autograd.Function):
    """qkv (B, N, 3, H, d) → q, k RMS-normalised and v, each (B, H, N, d); q and k in one pass."""

    @staticmethod
    def forward(ctx: Any, qkv: torch.Tensor, wq: torch.Tensor, wk: torch.Tensor, eps: float):
        qk = qkv[:, :, :2]
        w = torch.stack((wq, wk))[:, None]  # (2, 1, d)
        r = torch.rsqrt(qk.square().mean(-1, keepdim=True).add_(eps))
        x_hat = qk * r
        ctx.save_for_backward(x_hat, r, w)
        q, k = (x_hat * w).permute(2, 0, 3, 1, 4).unbind(0)
        return q, k, qkv[:, :, 2].transpose(1, 2)

    @staticmethod
    def backward(ctx: Any, dq: torch.Tensor, dk: torch.Tensor, dv: torch.Tensor):
        x_hat, r, w = ctx.saved_tensors
        b, n, _, h, d = x_hat.shape
        grad = torch.empty(b, n, 3, h, d, dtype=dq.dtype)
        gqk = torch.stack((dq, dk), 0).permute(1, 3, 0, 2, 4)  # (B, N, 2, H, d)
        gw = gqk * w
        dot = (gw * x_hat).mean(-1, keepdim=True)
        torch.mul(gw.sub_(x_hat * dot), r, out=grad[:, :, :2])
        grad[:, :, 2] = dv.transpose(1, 2)
        grad_w = (gqk * x_hat).sum((0, 1, 3))
        return grad, grad_w[0], grad_w[1], None


class FusedQKAttention(Attention):
    """:class:`Attention` with :class:`_FusedQKNorm` (same parameters)."""

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).view(b, n, 3, self.num_heads, self.head_dim)
        eps = self.q_norm.eps or torch.finfo(x.dtype).eps
        q, k, v = _FusedQKNorm.apply(qkv, self.q_norm.weight, self.k_norm.weight, eps)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


def cpu_ms(fn, repeats: int) -> list[float]:
    fn()
    times = []
    for _ in range(repeats):
        c0 = time.process_time()
        fn()
        times.append((time.process_time() - c0) * 1e3)
    return sorted(times)


def attention() -> None:
    q, k, v = (torch.randn(1, 2, 6, 4, dtype=torch.float64, requires_grad=True) for _ in range(3))
    assert torch.autograd.gradcheck(ManualAttention.apply, (q, k, v))
    kernels = {
        "flash": lambda q, k, v: _sdpa(SDPBackend.FLASH_ATTENTION, q, k, v),
        "math": lambda q, k, v: _sdpa(SDPBackend.MATH, q, k, v),
        "manual": ManualAttention.apply,
    }
    for b, n in SHAPES:
        qkv = torch.randn(b, n, 3, 4, 32).permute(2, 0, 3, 1, 4).requires_grad_()
        row = {}
        for name, kernel in kernels.items():
            row[name] = round(
                cpu_ms(lambda k=kernel, qkv=qkv: k(*qkv.unbind(0)).sum().backward(), 5)[0], 1
            )
        print((b, 4, n, 32), row, "CPU-ms fwd + bwd (min of 5)")


def _sdpa(backend: SDPBackend, q, k, v) -> torch.Tensor:
    with sdpa_kernel(backend):
        return F.scaled_dot_product_attention(q, k, v)


def qknorm() -> None:
    torch.manual_seed(0)
    today, fused = Attention(64, 4).double(), FusedQKAttention(64, 4).double()
    with torch.no_grad():
        today.q_norm.weight.uniform_(0.5, 1.5)
        today.k_norm.weight.uniform_(0.5, 1.5)
    fused.load_state_dict(today.state_dict())
    x = torch.randn(2, 30, 64, dtype=torch.float64, requires_grad=True)
    diffs = []
    for a, b in zip(*(_out_and_grads(m, x) for m in (today, fused)), strict=True):
        diffs.append((a - b).abs().max().item())
    print("max |difference| of output and gradients (float64):", max(diffs))
    today, fused = Attention(128, 4), FusedQKAttention(128, 4)
    fused.load_state_dict(today.state_dict())
    for b, n in SHAPES:
        x = torch.randn(b, n, 128, requires_grad=True)
        for _ in range(2):
            t = cpu_ms(lambda x=x: today(x).sum().backward(), 7)
            f = cpu_ms(lambda x=x: fused(x).sum().backward(), 7)
            print(
                (b, n),
                f"today {t[0]:.1f} (median {t[3]:.1f})",
                f"fused {f[0]:.1f} (median {f[3]:.1f})",
            )


def _out_and_grads(module: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    y = module(x)
    return [y, *torch.autograd.grad(y.square().sum(), [x, *module.parameters()])]


def _paper_decoder() -> tuple[torch.nn.Module, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(config_file("paper-decoder-cpu", Path(tmp)))
    torch.manual_seed(0)
    return build_model(cfg.model).train(), cfg


def adamw() -> None:
    model, _ = _paper_decoder()
    params = list(model.parameters())
    grads = [torch.randn_like(p) for p in params]
    print(f"{sum(p.numel() for p in params) / 1e6:.2f} M parameters in {len(params)} tensors")
    finals = {}
    for name, kw in (("for-loop", {"foreach": False}), ("foreach", {"foreach": True}),
                     ("fused", {"fused": True})):  # fmt: skip
        ps = [p.detach().clone().requires_grad_() for p in params]
        for p, g in zip(ps, grads, strict=True):
            p.grad = g.clone()
        opt = torch.optim.AdamW(ps, lr=1e-3, betas=(0.9, 0.95), weight_decay=0.05, **kw)
        t = cpu_ms(opt.step, 11)
        print(f"{name}: {t[5]:.2f} CPU-ms per step (median of 11)")
        finals[name] = torch.cat([p.detach().flatten() for p in ps])
    for name, w in finals.items():
        print(f"{name}: max |weight difference| vs for-loop after 12 steps:",
              (w - finals["for-loop"]).abs().max().item())  # fmt: skip


def _training_step(model: torch.nn.Module):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95))
    batch = random_batch(8, 8, 64, "cpu")
    inp, tgt = torch.tensor([0, 2, 4, 6]), torch.tensor([1, 3, 5, 7])

    def step() -> None:
        model.loss(model(batch, inp, tgt), batch, None)["loss"].backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def mkldnn() -> None:
    model, _ = _paper_decoder()
    step = _training_step(model)
    step()
    times: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(4):
        for enabled in (True, False):
            torch.backends.mkldnn.enabled = enabled
            times[enabled] += cpu_ms(step, 1)
    print("CPU-ms per step, mkldnn on:", [round(t) for t in sorted(times[True])],
          "off:", [round(t) for t in sorted(times[False])])  # fmt: skip
    model.eval()
    batch = random_batch(2, 8, 64, "cpu")
    inp, tgt = torch.tensor([0, 2, 4, 6]), torch.tensor([1, 3, 5, 7])
    renders = []
    with torch.no_grad():
        for enabled in (True, False):
            torch.backends.mkldnn.enabled = enabled
            renders.append(model(batch, inp, tgt).rendered.rgb)
    print("max |render difference|:", (renders[0] - renders[1]).abs().max().item())


def profile(compiled: bool) -> None:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    model, _ = _paper_decoder()
    if compiled:
        model.compile()
    step = _training_step(model)
    print("CPU-ms per step:", [round(t) for t in cpu_ms(step, 3)])
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    groups: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        name = event.key
        if name in ("aten::mm", "aten::bmm", "aten::addmm"):
            name = "matmuls"
        elif "flash_attention" in name:
            name = "flash attention"
        elif "CompiledFxGraph" in name:
            name = "inductor compiled graph " + name.split()[-2][:8]
        groups[name] += event.self_cpu_time_total
    total = sum(groups.values())
    for name, t in sorted(groups.items(), key=lambda item: -item[1])[:20]:
        print(f"{100 * t / total:5.1f} %  {name}")


def main() -> None:
    torch.set_num_threads(1)
    lever = sys.argv[1] if len(sys.argv) > 1 else ""
    levers = {"attention": attention, "qknorm": qknorm, "adamw": adamw, "mkldnn": mkldnn,
              "profile": lambda: profile(False), "profile-compiled": lambda: profile(True)}  # fmt: skip
    if lever not in levers:
        sys.exit(f"usage: paper_decoder_levers.py {{{','.join(levers)}}}")
    levers[lever]()


if __name__ == "__main__":
    main()
