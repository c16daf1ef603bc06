"""Depth metrics (AbsRel, δ<1.25 after per-image median scaling), E-RayZer's RPA, and the
depth / RPA numbers of :func:`rayzer.eval.novel_view.evaluate` on synthetic scenes."""

from __future__ import annotations

import pytest
import torch

from rayzer.eval.camera_metrics import relative_pose_accuracy
from rayzer.eval.depth_metrics import median_scaled_depth_errors
from rayzer.eval.novel_view import EvalSample, MethodOutput, evaluate


def _depth(seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    d = 1.0 + 4.0 * torch.rand(3, 16, 16, generator=gen)
    d[0, :4] = float("inf")  # background of a plain orbit: left out
    return d


def test_exact_depth_scores_perfectly():
    gt = _depth()
    err = median_scaled_depth_errors(gt, gt)
    assert torch.equal(err["abs_rel"], torch.zeros(3, dtype=torch.float64))
    assert torch.equal(err["delta_1_25"], torch.ones(3, dtype=torch.float64))
    assert err["valid"].tolist() == [16 * 12, 256, 256]


def test_a_scaled_depth_scores_perfectly_after_median_scaling():
    gt = _depth()
    scales = torch.tensor([0.01, 3.0, 250.0]).view(3, 1, 1)
    err = median_scaled_depth_errors(gt * scales, gt)
    assert err["abs_rel"].max() < 1e-6 and (err["delta_1_25"] == 1).all()
    torch.testing.assert_close(err["scale"], 1 / scales.flatten().double(), rtol=1e-6, atol=0)


def test_depth_errors_match_their_definitions():
    gt = torch.tensor([[1.0, 2.0, 4.0, float("inf")]]).view(1, 2, 2)
    pred = torch.tensor([[1.0, 3.0, 4.0, -1.0]]).view(1, 2, 2)  # median of valid = median(gt)
    err = median_scaled_depth_errors(pred, gt)
    # scale: lower medians 2 / 3 (torch's median of an even count is the lower one)
    s = 2.0 / 3.0
    rel = [abs(s * 1 - 1) / 1, abs(s * 3 - 2) / 2, abs(s * 4 - 4) / 4]
    assert err["abs_rel"].item() == pytest.approx(sum(rel) / 3)
    ratios = [max(s * p / g, g / (s * p)) for p, g in ((1, 1), (3, 2), (4, 4))]
    assert err["delta_1_25"].item() == pytest.approx(sum(r < 1.25 for r in ratios) / 3)
    assert err["valid"].item() == 3
    empty = median_scaled_depth_errors(torch.ones(1, 2, 2), torch.full((1, 2, 2), float("inf")))
    assert torch.isnan(empty["abs_rel"]).all()


def test_rpa_follows_erayzer_definition():
    rot = torch.tensor([0.0, 0.0, 2.0, 10.0, 0.0], dtype=torch.float64)
    trans = torch.tensor([0.0, 178.0, 3.0, 170.0, 100.0], dtype=torch.float64)
    # folded translation: 0, 2, 3, 10, 80 → max with rot: 0, 2, 3, 10, 80
    assert relative_pose_accuracy(rot, trans) == {"@5": 0.6, "@15": 0.8, "@30": 0.8}
    zeros = torch.zeros(6, dtype=torch.float64)
    assert relative_pose_accuracy(zeros, zeros) == {"@5": 1.0, "@15": 1.0, "@30": 1.0}


class _ExactDepth:
    """A method that returns the true cameras and (scaled) true depth: perfect scores."""

    name = "exact"

    def __init__(self, scale: float) -> None:
        self.scale = scale

    def __call__(self, batch):
        inp = batch["input_index"]
        depth = torch.stack([batch["depth"][b, inp[b]] for b in range(len(inp))])
        c2w = batch["c2w"].clone()
        c2w[..., :3, 3] *= self.scale  # any scale of the world
        k = batch["K"] / batch["image"].shape[-1]
        return MethodOutput(
            render=torch.stack([batch["image"][b, t] for b, t in enumerate(batch["target_index"])]),
            c2w=c2w,
            K_norm=k,
            canonical=0,
            input_depth=self.scale * depth[:, :, None],
        )


def test_evaluate_reports_depth_rpa_and_focal_of_exact_predictions(synthetic_samples):
    res = evaluate(_ExactDepth(scale=2.5), synthetic_samples, batch_size=2)
    depth = res.summary["depth"]
    assert depth["abs_rel"] < 1e-6 and depth["delta_1_25"] == 1.0
    assert depth["num_images"] == sum(len(s.input_index) for s in synthetic_samples)
    pose = res.summary["pose"]
    assert pose["rpa"] == {"@5": 1.0, "@15": 1.0, "@30": 1.0}
    assert pose["focal_rel_err_median"] == pytest.approx(0.0, abs=1e-6)
    assert all(r["depth"]["abs_rel"] < 1e-6 for r in res.per_sample)


def test_evaluate_says_why_there_is_no_depth(synthetic_samples):
    from rayzer.eval.novel_view import CopyNearestMethod

    res = evaluate(CopyNearestMethod(), synthetic_samples)
    assert res.summary["depth"] is None and "outputs no depth" in res.summary["depth_note"]
    bare = [EvalSample(s.images, s.input_index, s.target_index) for s in synthetic_samples]
    res = evaluate(CopyNearestMethod(), bare)
    assert res.summary["depth"] is None and "no exact depth" in res.summary["depth_note"]


@pytest.fixture(scope="module")
def synthetic_samples():
    from rayzer.data.synthetic import SynthConfig
    from rayzer.eval.synthetic_test_set import synthetic_test_sets

    synth = SynthConfig(family="orbit", frames=8, height=32, width=32)
    return synthetic_test_sets(synth, 2, 2, 2, protocols=("even",))["even"]
