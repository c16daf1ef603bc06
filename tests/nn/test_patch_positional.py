import pytest
import torch
import torch.nn.functional as F

from rayzer.nn import (
    PatchEmbed,
    PatchUnembed,
    ViewPositionEmbedding,
    patch_grid_encoding,
    patchify,
    sinusoidal_encoding,
    unpatchify,
)


def test_patchify_round_trip_and_raster_order():
    x = torch.randn(2, 3, 4, 16, 24)
    tokens = patchify(x, 8)
    assert tokens.shape == (2, 3, 2 * 3, 4 * 64)
    torch.testing.assert_close(unpatchify(tokens, 8, 16, 24), x)
    # token 1 is the patch in row 0, column 1
    torch.testing.assert_close(tokens[0, 0, 1].view(4, 8, 8), x[0, 0, :, 0:8, 8:16])


def test_patchify_rejects_indivisible_sizes():
    with pytest.raises(ValueError, match="not divisible"):
        patchify(torch.zeros(1, 1, 3, 10, 16), 8)


def test_patch_embed_equals_strided_convolution():
    torch.manual_seed(0)
    embed = PatchEmbed(3, 4, 10)
    x = torch.randn(1, 2, 3, 8, 12)
    weight = embed.proj.weight.view(10, 3, 4, 4)
    conv = F.conv2d(x.flatten(0, 1), weight, stride=4)  # (V, d, 2, 3)
    expected = conv.flatten(2).transpose(1, 2).unsqueeze(0)
    torch.testing.assert_close(embed(x), expected, atol=1e-5, rtol=1e-5)


def test_patch_unembed_outputs_valid_rgb():
    unembed = PatchUnembed(16, 4)
    rgb = unembed(torch.randn(2, 3, 6, 16) * 10, 8, 12)
    assert rgb.shape == (2, 3, 3, 8, 12)
    assert rgb.min() >= 0 and rgb.max() <= 1


def test_sinusoidal_encoding_values():
    enc = sinusoidal_encoding(torch.tensor([0.0, 2.0]), 4, max_period=100.0)
    # frequencies 1 and 1/10
    expected = torch.tensor(
        [
            [0.0, 1.0, 0.0, 1.0],
            [
                torch.sin(torch.tensor(2.0)),
                torch.cos(torch.tensor(2.0)),
                torch.sin(torch.tensor(0.2)),
                torch.cos(torch.tensor(0.2)),
            ],
        ]
    )
    torch.testing.assert_close(enc, expected)


def test_patch_grid_encoding_distinguishes_rows_and_columns():
    enc = patch_grid_encoding(3, 4, 16)
    assert enc.shape == (12, 16)
    assert torch.unique(enc, dim=0).shape[0] == 12
    # same row → same first half; same column → same second half
    torch.testing.assert_close(enc[0, :8], enc[3, :8])
    torch.testing.assert_close(enc[0, 8:], enc[4, 8:])


def test_index_embedding_does_not_depend_on_view_count():
    """The embedding of view i is a function of i alone, so any number of views works."""
    torch.manual_seed(0)
    pos = ViewPositionEmbedding(32, 16)
    small = pos.patch_embedding(torch.arange(4), 2, 2)
    large = pos.patch_embedding(torch.arange(37), 2, 2)
    assert large.shape == (37, 4, 32)
    torch.testing.assert_close(small, large[:4])
    torch.testing.assert_close(
        pos.index_embedding(torch.arange(4)), pos.index_embedding(torch.arange(9))[:4]
    )
    # distinct views get distinct embeddings
    assert torch.unique(pos.index_embedding(torch.arange(37)), dim=0).shape[0] == 37
