import math

import pytest
import torch
from torch import nn

from rayzer.nn import Attention, Transformer, TransformerBlock


def naive_attention(attn: Attention, x: torch.Tensor) -> torch.Tensor:
    """Reference: explicit softmax(QKᵀ/√d)V with the module's own weights and QK-norm."""
    b, n, d = x.shape
    h, hd = attn.num_heads, attn.head_dim
    q, k, v = attn.qkv(x).view(b, n, 3, h, hd).permute(2, 0, 3, 1, 4)
    q, k = attn.q_norm(q), attn.k_norm(k)
    weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd), dim=-1)
    return attn.proj((weights @ v).transpose(1, 2).reshape(b, n, d))


def test_attention_matches_explicit_softmax_reference():
    torch.manual_seed(0)
    attn = Attention(32, 4).double()
    x = torch.randn(2, 7, 32, dtype=torch.float64)
    torch.testing.assert_close(attn(x), naive_attention(attn, x))


def test_attention_mask_blocks_information():
    torch.manual_seed(0)
    attn = Attention(16, 2)
    x = torch.randn(1, 6, 16)
    mask = torch.ones(6, 6, dtype=torch.bool)
    mask[:3, 3:] = False  # the first three tokens may not look at the last three
    y1 = attn(x, mask)
    x2 = x.clone()
    x2[:, 3:] += torch.randn(1, 3, 16)
    y2 = attn(x2, mask)
    torch.testing.assert_close(y1[:, :3], y2[:, :3])
    assert not torch.allclose(y1[:, 3:], y2[:, 3:])


def test_blocks_have_no_biases_and_qk_norm():
    model = Transformer(32, depth=2, num_heads=4)
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.LayerNorm)):
            assert module.bias is None, module
    assert isinstance(model.blocks[0].attn.q_norm, nn.RMSNorm)
    assert isinstance(model.blocks[0].attn.k_norm, nn.RMSNorm)


def test_depth_scaled_init_shrinks_residual_projections():
    torch.manual_seed(0)
    model = Transformer(256, depth=8, num_heads=4)
    block = model.blocks[0]
    std_in = block.attn.qkv.weight.std().item()
    std_out = block.attn.proj.weight.std().item()
    assert std_in == pytest.approx(0.02, rel=0.05)
    assert std_out == pytest.approx(0.02 / math.sqrt(16), rel=0.05)


def test_gradient_checkpointing_matches_plain_forward_and_backward():
    torch.manual_seed(0)
    plain = Transformer(32, depth=3, num_heads=4)
    ckpt = Transformer(32, depth=3, num_heads=4, grad_checkpointing=True)
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(2, 5, 32)
    y1, y2 = plain(x), ckpt(x)
    torch.testing.assert_close(y1, y2)
    y1.square().sum().backward()
    y2.square().sum().backward()
    for p1, p2 in zip(plain.parameters(), ckpt.parameters(), strict=True):
        torch.testing.assert_close(p1.grad, p2.grad)


def test_block_is_permutation_equivariant_without_positions():
    torch.manual_seed(0)
    block = TransformerBlock(16, 2)
    x = torch.randn(1, 5, 16)
    perm = torch.randperm(5)
    torch.testing.assert_close(block(x)[:, perm], block(x[:, perm]), atol=1e-6, rtol=1e-5)
