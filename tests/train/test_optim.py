"""AdamW parameter groups, the warm-up + cosine schedule and the gradient-spike guard."""

import itertools
import math

import pytest
import torch

from rayzer.config import TrainConfig
from rayzer.models import LVSM, RayZer
from rayzer.nn.param_groups import split_decay_params
from rayzer.train.optim import (
    GradSpikeGuard,
    WarmupCosine,
    build_optimizer,
    build_scheduler,
)


@pytest.mark.parametrize("model_cls", [RayZer, LVSM])
def test_param_groups_exclude_norms_biases_tokens(tiny_config, model_cls):
    model = model_cls(tiny_config().model)
    decay, skip = split_decay_params(model)
    names = [n for n, _ in model.named_parameters()]
    assert sorted(decay + skip) == sorted(names)  # every parameter exactly once
    params = dict(model.named_parameters())

    def special(name: str) -> bool:  # learned tokens / positional embeddings, by name part
        return any(
            part.endswith(("_token", "_tokens")) or part == "position" for part in name.split(".")
        )

    def gain(name: str) -> bool:  # softplus-parameterised gains of the geometric decoder
        return name.split(".")[-1].startswith("raw_") and params[name].ndim < 2

    for n in skip:
        assert params[n].ndim < 2 or special(n), f"{n} should be decayed"
        assert "norm" in n or n.endswith("bias") or special(n) or gain(n), n
    for n in decay:
        assert params[n].ndim >= 2 and not special(n) and "norm" not in n, n
    assert "reconstructor.scene_tokens" in skip  # 2-D, excluded by name
    assert any(n.endswith("attn.qkv.weight") for n in decay)
    if model_cls is RayZer:
        assert "camera_estimator.cam_token" in skip
        assert "tokenizer.position.proj.weight" in skip
        assert "camera_estimator.pose_head.0.bias" in skip
        assert "camera_estimator.pose_head.0.weight" in decay


def test_weight_decay_only_shrinks_the_decay_group(tiny_config):
    model = RayZer(tiny_config().model)
    cfg = TrainConfig(lr=0.1, weight_decay=0.5, warmup_steps=0)
    opt = build_optimizer(model, cfg)
    assert {g["group"]: g["weight_decay"] for g in opt.param_groups} == {
        "decay": 0.5,
        "no_decay": 0.0,
    }
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)  # zero gradient: only decoupled weight decay acts
    opt.step()
    decay, skip = split_decay_params(model)
    after = dict(model.named_parameters())
    for n in decay:
        torch.testing.assert_close(after[n].detach(), before[n] * (1 - 0.1 * 0.5))
    for n in skip:
        assert torch.equal(after[n].detach(), before[n]), n


def test_warmup_cosine_shape():
    f = WarmupCosine(warmup=10, total=110, min_ratio=0.1)
    warm = [f(s) for s in range(10)]
    assert warm[0] == pytest.approx(0.1) and warm[-1] == pytest.approx(1.0)
    assert all(b - a == pytest.approx(0.1) for a, b in itertools.pairwise(warm))  # linear
    assert f(10) == pytest.approx(1.0)
    assert f(60) == pytest.approx(0.55)  # half-way through the cosine: (1 + min) / 2
    assert f(110) == pytest.approx(0.1) and f(500) == pytest.approx(0.1)
    decay = [f(s) for s in range(10, 111)]
    assert all(b <= a for a, b in itertools.pairwise(decay))
    # cosine, not linear: slow start, fast middle
    assert f(10) - f(20) < f(55) - f(65)
    for s in range(10, 111):
        expected = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (s - 10) / 100))
        assert f(s) == pytest.approx(expected)


def test_scheduler_drives_the_optimizer_lr():
    p = torch.nn.Parameter(torch.zeros(3, 3))
    model = torch.nn.Linear(3, 3)
    model.weight = p
    cfg = TrainConfig(lr=1e-2, warmup_steps=4, steps=20, min_lr_ratio=0.0)
    opt = build_optimizer(model, cfg)
    sched = build_scheduler(opt, cfg)
    lrs = []
    for _ in range(22):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[:4] == pytest.approx([2.5e-3, 5e-3, 7.5e-3, 1e-2])
    assert lrs[20] == pytest.approx(0.0, abs=1e-12)
    # the schedule survives a state-dict round trip (resume)
    sd = sched.state_dict()
    opt2 = build_optimizer(model, cfg)
    sched2 = build_scheduler(opt2, cfg)
    sched2.load_state_dict(sd)
    assert sched2.last_epoch == sched.last_epoch


def test_spike_guard():
    g = GradSpikeGuard(factor=4.0, window=5, min_history=3)
    assert not g.check(100.0)  # inactive while the history is short
    assert not g.check(1.0) and not g.check(1.2)
    assert g.threshold() == pytest.approx(4.0 * 1.2)  # median of (100, 1, 1.2)
    assert g.check(10.0)  # spike: skipped
    assert g.skipped == 1
    assert g.threshold() == pytest.approx(4.0 * (1.2 + 10.0) / 2)
    assert g.check(float("nan")) and g.check(float("inf"))
    assert g.skipped == 3 and len(g.history) == 4  # non-finite norms never enter the history
    state = g.state_dict()
    h = GradSpikeGuard(factor=4.0, window=5, min_history=3)
    h.load_state_dict(state)
    assert h.threshold() == g.threshold() and h.skipped == 3
    off = GradSpikeGuard(factor=0.0, min_history=0)
    assert not any(off.check(x) for x in (1.0, 1e9, 1.0))
    assert off.check(float("nan"))  # non-finite is always skipped


def test_spike_guard_adapts_to_a_lasting_rise():
    g = GradSpikeGuard(factor=3.0, window=9, min_history=5)
    for _ in range(9):
        assert not g.check(1.0)
    decisions = [g.check(10.0) for _ in range(9)]
    # a lasting 10× rise is skipped at first, then accepted as the new scale
    assert decisions[0] and not decisions[-1]
    assert sum(decisions) <= 5


def test_release_bounds_of_the_guard():
    # E-RayZer: norm above 2 × clip 1.0 skipped only from step 200 on; the median test is off.
    g = GradSpikeGuard(factor=0.0, norm_bound=2.0, norm_bound_after=200)
    assert not g.check(5.0, step=199)
    assert g.threshold(200) == 2.0 and g.threshold() == math.inf
    assert g.check(2.5, step=200) and not g.check(1.9, step=201)
    assert g.skipped == 1
    # With the median test on, the lower threshold wins.
    m = GradSpikeGuard(factor=4.0, window=5, min_history=3, norm_bound=2.0)
    for _ in range(3):
        m.check(0.1, step=0)
    assert m.threshold(0) == pytest.approx(0.4)
    # NAS3R: any gradient element above 20 skips, whatever the norm; the norm still counts.
    e = GradSpikeGuard(factor=0.0, element_bound=20.0)
    assert not e.check(1.0, step=0, max_element=19.9)
    assert e.check(1.0, step=1, max_element=20.5)
    assert e.check(1.0, step=2, max_element=float("nan"))
    assert e.skipped == 2 and len(e.history) == 3
