"""VGGT-style multi-view token encoder shared by E-RayZer (pose and scene encoders) and NAS3R.

Every view contributes ``1 + R + N`` tokens: one camera token, R register tokens (learned slots
that soak up global information, Darcet et al. 2024) and its N patch tokens. Patch tokens get a
2-D sin-cos grid position passed through a small MLP; there is **no image-index embedding**,
so the encoder treats the views as a set and takes any number of them. Tokens then go through
:class:`rayzer.nn.alternating.AlternatingTransformer` (frame / global attention).

With ``reference_tokens`` (VGGT, NAS3R) the camera and register tokens come in two learned
versions: one for the reference view(s) (whose frame the poses are expressed in) and one for
all others — the only way a set encoder can tell the reference view apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rayzer.nn.alternating import AlternatingTransformer
from rayzer.nn.positional import patch_grid_encoding
from rayzer.nn.transformer import INIT_STD


@dataclass
class EncodedViews:
    """Output of :class:`ViewTokenEncoder` (normalised final tokens).

    Attributes:
        camera: (B, V, d) the camera token of every view.
        patches: (B, V, N, d) patch tokens.
        taps: patch tokens (B, V, N, d) after the requested frame/global pairs (not normalised).
    """

    camera: Tensor
    patches: Tensor
    taps: list[Tensor]


class GridPositionMLP(nn.Module):
    """2-D sin-cos patch-grid encoding → Linear → GELU → Linear: (gh·gw, d)."""

    def __init__(self, dim: int, enc_dim: int) -> None:
        super().__init__()
        self.enc_dim = enc_dim
        self.mlp = nn.Sequential(nn.Linear(enc_dim, dim), nn.GELU(), nn.Linear(dim, dim))
        for layer in (self.mlp[0], self.mlp[2]):
            nn.init.normal_(layer.weight, std=INIT_STD)
            nn.init.zeros_(layer.bias)

    def forward(self, grid_h: int, grid_w: int, device: torch.device) -> Tensor:
        return self.mlp(patch_grid_encoding(grid_h, grid_w, self.enc_dim, device))


class ViewTokenEncoder(nn.Module):
    """Patch tokens of V views (B, V, N, d) → camera and patch tokens after alternating attention.

    Args:
        dim, depth, num_heads, mlp_ratio, qk_norm, grad_checkpointing: transformer settings
            (``depth`` frame/global pairs).
        num_registers: R register tokens per view.
        pos_enc_dim: width of the 2-D sin-cos encoding (divisible by 4).
        reference_tokens: two versions of the camera/register tokens (reference view / others).
    """

    def __init__(
        self,
        dim: int,
        depth: int,
        num_heads: int,
        num_registers: int = 4,
        pos_enc_dim: int = 32,
        mlp_ratio: float = 4.0,
        qk_norm: bool = True,
        grad_checkpointing: bool = False,
        reference_tokens: bool = False,
    ) -> None:
        super().__init__()
        kinds = 2 if reference_tokens else 1
        self.reference_tokens = reference_tokens
        self.num_special = 1 + num_registers
        # Names end in "_token": learned tokens are exempt from weight decay (rayzer.nn.param_groups).
        self.camera_token = nn.Parameter(torch.randn(kinds, 1, dim) * INIT_STD)
        self.register_token = nn.Parameter(torch.randn(kinds, num_registers, dim) * INIT_STD)
        self.position = GridPositionMLP(dim, pos_enc_dim)
        self.transformer = AlternatingTransformer(
            dim, depth, num_heads, mlp_ratio, qk_norm, grad_checkpointing
        )

    def special_tokens(self, batch: int, views: int, is_reference: Tensor | None) -> Tensor:
        """(B, V, 1 + R, d): camera then register tokens of every view."""
        tokens = torch.cat((self.camera_token, self.register_token), dim=1)  # (kinds, 1+R, d)
        if not self.reference_tokens:
            return tokens[0].expand(batch, views, -1, -1)
        if is_reference is None:
            raise ValueError("an encoder with reference tokens needs is_reference (B, V)")
        kind = (~is_reference).long()  # 0 = reference version, 1 = the others
        return tokens[kind]

    def forward(
        self,
        patch_tokens: Tensor,
        grid: tuple[int, int],
        is_reference: Tensor | None = None,
        global_mask: Tensor | None = None,
        return_layers: Sequence[int] = (),
    ) -> EncodedViews:
        """patch_tokens (B, V, N, d) on a ``grid`` = (gh, gw) patch grid per view.

        Args:
            is_reference: (B, V) bool, the reference view(s) (encoders with reference tokens).
            global_mask: (B, 1, V·M, V·M) bool mask of the global blocks, M = 1 + R + N tokens
                per view in the order [camera, registers, patches]
                (:func:`rayzer.nn.alternating.context_attention_mask`).
            return_layers: frame/global pairs whose patch tokens are returned as ``taps``.
        """
        b, v = patch_tokens.shape[:2]
        x = patch_tokens + self.position(*grid, patch_tokens.device).to(patch_tokens.dtype)
        x = torch.cat((self.special_tokens(b, v, is_reference).to(x.dtype), x), dim=2)
        out = self.transformer(x, global_mask, return_layers)
        taps: list[Tensor] = []
        if return_layers:
            out, taps = out
            taps = [t[:, :, self.num_special :] for t in taps]
        return EncodedViews(camera=out[:, :, 0], patches=out[:, :, self.num_special :], taps=taps)
