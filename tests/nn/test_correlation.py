import pytest
import torch

from rayzer.nn import CorrelationTokens


@pytest.fixture
def corr() -> CorrelationTokens:
    torch.manual_seed(0)
    return CorrelationTokens(patch_size=8, dim=16, channels=32, radius=2, dilation=1)


def test_volume_of_a_view_with_itself_peaks_at_zero_displacement(corr):
    images = torch.rand(2, 3, 3, 32, 32)
    vol = corr.volume(images, reference=1)  # (B, V, 25, 16, 16)
    assert vol.shape == (2, 3, corr.num_displacements, 16, 16)
    centre = corr.num_displacements // 2
    own = vol[:, 1]
    # Cosine of a feature with itself is 1 wherever the (ReLU) features are not all zero (with
    # 32 channels, another pixel rarely has exactly the same direction).
    alive = own[:, centre] > 0
    torch.testing.assert_close(own[:, centre][alive], torch.ones_like(own[:, centre][alive]))
    assert (own.argmax(dim=1)[alive] == centre).float().mean() > 0.95


def test_volume_finds_a_known_shift(corr):
    # View 0 is the reference moved 2 feature pixels (4 image pixels) right: at interior pixels
    # the best match in the reference lies 2 feature pixels to the left (dy = 0, dx = -2).
    ref = torch.rand(1, 3, 32, 48)
    view = torch.roll(ref, shifts=4, dims=-1)
    vol = corr.volume(torch.stack((view, ref), dim=1), reference=1)[0, 0]  # (25, 16, 24)
    best = vol[:, 2:-2, 4:-2].argmax(dim=0)
    k = 2 * corr.radius + 1
    dy, dx = best // k - corr.radius, best % k - corr.radius
    assert (dy == 0).float().mean() > 0.9 and (dx == -2).float().mean() > 0.9


def test_tokens_shape_gradient_and_bad_input(corr):
    images = torch.rand(2, 4, 3, 16, 24, requires_grad=True)
    tokens = corr(images, reference=2)
    assert tokens.shape == (2, 4, 2 * 3, 16)
    tokens.square().mean().backward()
    assert corr.features.weight.grad.abs().sum() > 0 and images.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="not divisible by the patch size"):
        corr(torch.rand(1, 2, 3, 20, 16), reference=1)
    with pytest.raises(ValueError, match="radius"):
        CorrelationTokens(8, 16, radius=0)


def test_dilated_displacements_find_a_known_shift():
    # The model's default: dilation 2. A shift of 4 feature pixels (8 image pixels) is two
    # dilated steps, so the best match sits at (dy, dx) = (0, -2) in displacement units.
    torch.manual_seed(0)
    corr = CorrelationTokens(patch_size=8, dim=16, channels=32, radius=2, dilation=2)
    ref = torch.rand(1, 3, 32, 48)
    view = torch.roll(ref, shifts=8, dims=-1)
    vol = corr.volume(torch.stack((view, ref), dim=1), reference=1)[0, 0]  # (25, 16, 24)
    best = vol[:, 4:-4, 8:-4].argmax(dim=0)
    k = 2 * corr.radius + 1
    dy, dx = best // k - corr.radius, best % k - corr.radius
    assert (dy == 0).float().mean() > 0.9 and (dx == -2).float().mean() > 0.9
