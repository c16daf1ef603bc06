"""Alternating frame / global attention and NAS3R's context mask."""

import pytest
import torch

from rayzer.nn.alternating import AlternatingTransformer, context_attention_mask


def test_context_mask_semantics():
    is_ctx = torch.tensor([[True, False, True]])
    mask = context_attention_mask(is_ctx, tokens_per_view=2)[0, 0]  # (6, 6)
    token_ctx = torch.tensor([True, True, False, False, True, True])
    for q in range(6):
        for k in range(6):
            expected = bool(token_ctx[k]) or not bool(token_ctx[q])
            assert bool(mask[q, k]) == expected, (q, k)


def test_context_mask_needs_a_context_view():
    with pytest.raises(ValueError, match="context"):
        context_attention_mask(torch.tensor([[False, False]]), 3)


def test_masked_context_tokens_ignore_targets_and_targets_see_context():
    torch.manual_seed(0)
    model = AlternatingTransformer(dim=32, depth=2, num_heads=4).eval()
    b, v, m = 2, 4, 5
    is_ctx = torch.tensor([[True, True, False, False], [True, False, True, False]])
    mask = context_attention_mask(is_ctx, m)
    x = torch.randn(b, v, m, 32)
    x2 = x.clone()
    x2[~is_ctx] = torch.randn_like(x2[~is_ctx])  # change every target view's tokens
    y, y2 = model(x, mask), model(x2, mask)
    torch.testing.assert_close(y[is_ctx], y2[is_ctx], atol=1e-6, rtol=0)
    assert (y[~is_ctx] - y2[~is_ctx]).abs().max() > 1e-3
    # Without the mask the context views do see the targets.
    assert (model(x)[is_ctx] - model(x2)[is_ctx]).abs().max() > 1e-4
    # Targets read the context: changing a context view changes the targets.
    x3 = x.clone()
    x3[0, 0] = torch.randn_like(x3[0, 0])  # (a constant shift would vanish in the LayerNorms)
    assert (model(x3, mask)[0, 2:] - y[0, 2:]).abs().max() > 1e-4


def test_frame_blocks_keep_views_apart_and_taps():
    torch.manual_seed(0)
    model = AlternatingTransformer(dim=16, depth=3, num_heads=2)
    x = torch.randn(1, 3, 4, 16)
    out, taps = model(x, return_layers=(0, -1))
    assert out.shape == x.shape and [t.shape for t in taps] == [x.shape, x.shape]
    assert len(model.frame_blocks) == len(model.global_blocks) == 3
    # The last tap is the un-normalised final state: the output is its LayerNorm.
    torch.testing.assert_close(out, model.norm(taps[1]))
