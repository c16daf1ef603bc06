"""Transformer blocks shared by every model (the RayZer paper's training recipe).

Pre-norm blocks with bias-free LayerNorm and linear layers, a fused QKV projection, RMS
QK-norm (per head) and ``torch.nn.functional.scaled_dot_product_attention``, which dispatches to
flash / memory-efficient kernels on CUDA and to the fused CPU kernel here. Residual output
projections use a depth-scaled initialisation so that the residual stream does not grow with
the number of layers (GPT-2 style: ``std / sqrt(2 * num_layers)``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from rayzer.nn.rmsnorm import RMSNorm

INIT_STD = 0.02


class Attention(nn.Module):
    """Multi-head self-attention with fused QKV and RMS-normalised queries and keys.

    Args:
        dim: token width ``d``; must be divisible by ``num_heads``.
        num_heads: number of heads.
        qk_norm: apply an RMSNorm (learned scale, no bias) to q and k of each head. It bounds the
            attention logits, which keeps large-batch / bf16 training stable.
    """

    def __init__(self, dim: int, num_heads: int, qk_norm: bool = True) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"dim={dim} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim, bias=False)
        self.q_norm = RMSNorm(self.head_dim) if qk_norm else nn.Identity()
        self.k_norm = RMSNorm(self.head_dim) if qk_norm else nn.Identity()

    def forward(self, x: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        """x: (B, N, d); attn_mask: optional bool mask (True = may attend) or additive float bias,
        broadcastable to (B, heads, N, N)."""
        b, n, d = x.shape
        qkv = self.qkv(x).view(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each (B, heads, N, head_dim)
        q, k = self.q_norm(q), self.k_norm(k)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class MLP(nn.Module):
    """Two bias-free linear layers with a GELU in between: (…, d) → (…, d)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden, bias=False)
        self.fc2 = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class TransformerBlock(nn.Module):
    """Pre-norm block: ``x + attn(norm(x))`` then ``x + mlp(norm(x))``; shape (B, N, d) kept."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qk_norm: bool = True):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, bias=False)
        self.attn = Attention(dim, num_heads, qk_norm=qk_norm)
        self.norm2 = nn.LayerNorm(dim, bias=False)
        self.mlp = MLP(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        x = x + self.attn(self.norm1(x), attn_mask)
        return x + self.mlp(self.norm2(x))


class Transformer(nn.Module):
    """A stack of :class:`TransformerBlock` followed by a final bias-free LayerNorm.

    Args:
        dim, num_heads, mlp_ratio, qk_norm: block settings.
        depth: number of blocks.
        grad_checkpointing: recompute each block's activations in the backward pass (trades
            ~30% more compute for activation memory that no longer grows with depth).
    """

    def __init__(
        self,
        dim: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qk_norm: bool = True,
        grad_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            TransformerBlock(dim, num_heads, mlp_ratio, qk_norm) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim, bias=False)
        self.grad_checkpointing = grad_checkpointing
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Normal(0, 0.02) for linear layers; residual output layers scaled by 1/sqrt(2·depth)."""
        out_std = INIT_STD / math.sqrt(2 * max(len(self.blocks), 1))
        for block in self.blocks:
            for module in block.modules():
                if isinstance(module, nn.Linear):
                    nn.init.normal_(module.weight, std=INIT_STD)
            nn.init.normal_(block.attn.proj.weight, std=out_std)
            nn.init.normal_(block.mlp.fc2.weight, std=out_std)

    def _run(self, block: TransformerBlock, x: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        if self.grad_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(block, x, attn_mask, use_reentrant=False)
        return block(x, attn_mask)

    def forward(self, x: Tensor, attn_mask: Tensor | Sequence[Tensor] | None = None) -> Tensor:
        """x: (B, N, d) → (B, N, d).

        attn_mask: one mask for every block, or a sequence with one mask per block (e.g. a
        per-layer additive bias).
        """
        if isinstance(attn_mask, Sequence):
            if len(attn_mask) != len(self.blocks):
                raise ValueError(
                    f"got {len(attn_mask)} attention masks for {len(self.blocks)} blocks"
                )
            masks = list(attn_mask)
        else:
            masks = [attn_mask] * len(self.blocks)
        for block, mask in zip(self.blocks, masks, strict=True):
            x = self._run(block, x, mask)
        return self.norm(x)
