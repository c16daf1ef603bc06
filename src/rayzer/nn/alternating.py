"""Alternating frame / global attention over views, with an optional mask on the global blocks.

VGGT's aggregator (used by E-RayZer and NAS3R) interleaves two kinds of blocks over a sample of V
views with M tokens each (patch tokens plus per-view camera / register tokens):

* a **frame** block attends within each view (B·V sequences of M tokens), so a view's tokens
  summarise their own image before views are compared;
* a **global** block attends across all views (B sequences of V·M tokens).

The two kinds have separate weights (``depth`` frame blocks + ``depth`` global blocks: VGGT's
"24 + 24", E-RayZer's "16 + 16"). NAS3R masks the global blocks so that tokens of *context* views
never attend to *target* views (:func:`context_attention_mask`): the reconstruction, read from
context tokens, is then a function of the context images alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from rayzer.nn.transformer import INIT_STD, TransformerBlock


def context_attention_mask(is_context: Tensor, tokens_per_view: int) -> Tensor:
    """Boolean global-attention mask for NAS3R-style masked attention.

    Args:
        is_context: (B, V) bool, True for context (input) views.
        tokens_per_view: M, the number of tokens of every view (patches + special tokens).

    Returns:
        (B, 1, V·M, V·M) bool, True = may attend: ``allowed[q, k] = context(k) or target(q)``.
        A context query sees only context keys; a target query sees every key. Every row has at
        least one True entry as long as each sample has a context view.
    """
    if is_context.ndim != 2 or is_context.dtype != torch.bool:
        raise ValueError(
            f"is_context must be a (B, V) bool tensor, got {is_context.dtype} "
            f"{tuple(is_context.shape)}"
        )
    if not bool(is_context.any(dim=1).all()):
        raise ValueError("every sample needs at least one context view")
    token_ctx = is_context.repeat_interleave(tokens_per_view, dim=1)  # (B, V·M)
    allowed = token_ctx[:, None, :] | ~token_ctx[:, :, None]  # (B, V·M query, V·M key)
    return allowed.unsqueeze(1)


class AlternatingTransformer(nn.Module):
    """``depth`` (frame block, global block) pairs and a final bias-free LayerNorm.

    Args:
        dim, num_heads, mlp_ratio, qk_norm: block settings (:class:`rayzer.nn.TransformerBlock`).
        depth: number of frame/global pairs (2·depth blocks in all).
        grad_checkpointing: recompute block activations in the backward pass.
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
        self.frame_blocks = nn.ModuleList(
            TransformerBlock(dim, num_heads, mlp_ratio, qk_norm) for _ in range(depth)
        )
        self.global_blocks = nn.ModuleList(
            TransformerBlock(dim, num_heads, mlp_ratio, qk_norm) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim, bias=False)
        self.grad_checkpointing = grad_checkpointing
        self.reset_parameters()

    @property
    def depth(self) -> int:
        return len(self.frame_blocks)

    def reset_parameters(self) -> None:
        """Normal(0, 0.02) linear weights; residual outputs scaled by 1/sqrt(2·num_blocks)."""
        blocks = [*self.frame_blocks, *self.global_blocks]
        out_std = INIT_STD / math.sqrt(2 * max(len(blocks), 1))
        for block in blocks:
            for module in block.modules():
                if isinstance(module, nn.Linear):
                    nn.init.normal_(module.weight, std=INIT_STD)
            nn.init.normal_(block.attn.proj.weight, std=out_std)
            nn.init.normal_(block.mlp.fc2.weight, std=out_std)

    def _run(self, block: TransformerBlock, x: Tensor, mask: Tensor | None) -> Tensor:
        if self.grad_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(block, x, mask, use_reentrant=False)
        return block(x, mask)

    def forward(
        self,
        x: Tensor,
        global_mask: Tensor | None = None,
        return_layers: Sequence[int] = (),
    ) -> Tensor | tuple[Tensor, list[Tensor]]:
        """x (B, V, M, d) → (B, V, M, d), normalised.

        Args:
            global_mask: bool mask for the global blocks, broadcastable to (B, heads, V·M, V·M)
                (True = may attend), e.g. :func:`context_attention_mask`; None = full attention.
            return_layers: pair indices (0-based, negative allowed) whose outputs (after their
                global block, not normalised, (B, V, M, d)) are also returned, in the order given
                — the taps of a DPT head.
        """
        b, v, m, d = x.shape
        taps = {i % self.depth: None for i in return_layers}
        for i, (frame, glob) in enumerate(zip(self.frame_blocks, self.global_blocks, strict=True)):
            x = self._run(frame, x.reshape(b * v, m, d), None)
            x = self._run(glob, x.reshape(b, v * m, d), global_mask).reshape(b, v, m, d)
            if i in taps:
                taps[i] = x
        out = self.norm(x)
        if not return_layers:
            return out
        return out, [taps[i % self.depth] for i in return_layers]  # type: ignore[misc]
