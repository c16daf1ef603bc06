"""rayzer.nn.rmsnorm.RMSNorm: the CPU closed-form backward equals torch's RMSNorm."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import rayzer.nn.rmsnorm as rmsnorm_module
from rayzer.nn.rmsnorm import RMSNorm
from rayzer.nn.transformer import Attention


def _outputs_and_grads(norm: nn.Module, x: torch.Tensor, grad: torch.Tensor):
    x = x.detach().clone().requires_grad_()
    y = norm(x)
    gx, gw = torch.autograd.grad(y, (x, norm.weight), grad)
    return y.detach(), gx, gw


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("eps", [None, 1e-5])
def test_matches_torch_rmsnorm(dtype, eps):
    torch.manual_seed(0)
    ours, ref = RMSNorm(16, eps=eps, dtype=dtype), nn.RMSNorm(16, eps=eps, dtype=dtype)
    with torch.no_grad():
        ours.weight.uniform_(0.5, 1.5)
        ref.weight.copy_(ours.weight)
    # a non-contiguous input, as the per-head q / k views of the fused QKV projection are
    x = torch.randn(3, 7, 4, 16, dtype=dtype).transpose(1, 2) * 3 + 0.5
    grad = torch.randn(3, 4, 7, 16, dtype=dtype)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    for a, b in zip(
        _outputs_and_grads(ours, x, grad), _outputs_and_grads(ref, x, grad), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)


def test_takes_torch_path_where_not_fp32_cpu(monkeypatch):
    """Under CPU autocast (and for bf16 / no weight / a weight of another dtype) it is torch's
    RMSNorm, gradients included; float32 / float64 on the CPU take the closed form. The calls
    of the closed form are counted: its results equal torch's, so equality alone would pass
    whichever path ran (found in review)."""
    calls = []
    closed_form = rmsnorm_module._RMSNormFunction.apply

    def counting_apply(*args):
        calls.append(args[0].dtype)
        return closed_form(*args)

    monkeypatch.setattr(rmsnorm_module._RMSNormFunction, "apply", counting_apply)
    norm = RMSNorm(8)
    x = torch.randn(5, 8, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(norm(x), F.rms_norm(x, (8,), norm.weight))
    bare = RMSNorm(8, elementwise_affine=False)
    assert torch.equal(bare(x), F.rms_norm(x, (8,)))
    x64 = x.double()  # float64 input, float32 weight (torch warns: no fused kernel for that)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        assert torch.equal(norm(x64), F.rms_norm(x64, (8,), norm.weight))
    y = torch.randn(5, 8, dtype=torch.bfloat16)
    assert torch.equal(norm.to(torch.bfloat16)(y), F.rms_norm(y, (8,), norm.weight))
    assert calls == []
    RMSNorm(8)(x)
    RMSNorm(8, dtype=torch.float64)(x64)
    assert calls == [torch.float32, torch.float64]


def test_attention_output_and_grads_unchanged():
    """Attention with the faster norms equals the same module with torch's RMSNorm."""
    torch.manual_seed(1)
    att = Attention(32, 4)
    with torch.no_grad():
        att.q_norm.weight.uniform_(0.5, 1.5)
        att.k_norm.weight.uniform_(0.5, 1.5)
    ref = Attention(32, 4)
    ref.q_norm, ref.k_norm = nn.RMSNorm(8), nn.RMSNorm(8)
    ref.load_state_dict(att.state_dict())
    x = torch.randn(2, 9, 32)

    def run(module):
        xi = x.clone().requires_grad_()
        out = module(xi)
        params = [p for _, p in sorted(module.named_parameters())]
        return [out.detach(), *torch.autograd.grad(out.square().sum(), [xi, *params])]

    for a, b in zip(run(att), run(ref), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_double_backward_is_refused_not_wrong():
    """The closed-form backward is not differentiable: asking for a second derivative raises
    instead of returning one with missing terms."""
    norm = RMSNorm(8)
    x = torch.randn(4, 8, requires_grad=True)
    (gx,) = torch.autograd.grad(norm(x).square().sum(), x, create_graph=True)
    with pytest.raises(RuntimeError):
        gx.sum().backward()
