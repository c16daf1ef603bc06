"""The Trainer in one process: accumulation, exact resume, spike skip, LVSM, stops, perceptual."""

import json
import logging
import math
import sys
import time
import types

import pytest
import torch

from rayzer.bench.run_history import read_metrics
from rayzer.data.stream import TrainStream
from rayzer.models.losses import photometric_loss
from rayzer.train import Trainer
from rayzer.train.checkpoint import SUPERSEDED_DIR, latest_checkpoint, list_checkpoints
from rayzer.train.losses import build_perceptual_loss
from rayzer.train.optim import GradSpikeGuard, WarmupCosine


def _train(cfg, out, resume=None):
    trainer = Trainer(cfg, out, resume=resume)
    try:
        summary = trainer.train()
    finally:
        trainer.close()
    return trainer, summary


def _params(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


#: The sense head (mirror hypothesis + cross-entropy); a larger pose-head init so that the
#: views turn by more than the 1° a sense label needs from the first step.
SENSE = ["model.sense_head=true", "model.pose_head_init_std=0.2"]


@pytest.mark.parametrize("extra", [["model.sense_head=false"], SENSE], ids=["plain", "sense_head"])
def test_accumulation_matches_one_large_batch(tmp_path, tiny_config, extra):
    results = {}
    for accum in (1, 2, 4):
        cfg = tiny_config(
            "train.steps=3", f"train.grad_accum={accum}", "train.image_every=0", *extra
        )
        trainer, summary = _train(cfg, tmp_path / f"accum{accum}")
        results[accum] = (_params(trainer.model), [s.loss for s in summary.history])
        if extra == SENSE:
            assert all(s.terms["sense_loss"] > 0 for s in summary.history)
    ref_params, ref_losses = results[1]
    for accum in (2, 4):
        params, losses = results[accum]
        assert losses == pytest.approx(ref_losses, rel=1e-5)
        for n, p in params.items():
            # rtol: float32 sums in another order differ by a few ulps of the value (the sweep's
            # view sharpness is ~10, where 1e-5 is ~10 ulps); atol for values near 0.
            torch.testing.assert_close(p, ref_params[n], atol=1e-5, rtol=2e-6, msg=n)
    # and the parameters did move (the comparison is not vacuous)
    fresh = Trainer(tiny_config(*extra), tmp_path / "fresh")
    fresh.close()
    moved = max((ref_params[n] - p).abs().max() for n, p in _params(fresh.model).items())
    assert moved > 1e-3


@pytest.mark.parametrize("model_name", ["rayzer", "lvsm"])
def test_resume_reproduces_the_uninterrupted_run(tmp_path, tiny_config, model_name):
    cfg = tiny_config("train.steps=6", "train.ckpt_every=3", f"model.name={model_name}")
    full, full_summary = _train(cfg, tmp_path / "full")
    assert [p.name for p in list_checkpoints(tmp_path / "full")] == [
        "step_000003",
        "step_000006",
    ]
    half = tmp_path / "full" / "checkpoints" / "step_000003"
    resumed, resumed_summary = _train(cfg, tmp_path / "resumed", resume=half)
    assert resumed.resumed_from == half
    assert [s.step for s in resumed_summary.history] == [4, 5, 6]
    after = full_summary.history[3:]
    for a, b in zip(after, resumed_summary.history):
        # bit-identical: same data, same RNG, same optimizer state
        assert (a.loss, a.grad_norm, a.lr) == (b.loss, b.grad_norm, b.lr)
    for n, p in _params(resumed.model).items():
        assert torch.equal(p, _params(full.model)[n]), n
    # and it trained (the comparison is not vacuous): the weights left their initialisation.
    # (Six losses of different batches are too noisy to test for a decrease: the tiny preset's
    # sweep decoder starts near its early plateau.)
    fresh = Trainer(cfg, tmp_path / "fresh")
    fresh.close()
    init = _params(fresh.model)
    assert max((p - init[n]).abs().max() for n, p in _params(full.model).items()) > 1e-3


def test_spike_is_skipped_and_logged(tmp_path, tiny_config, caplog):
    # No sense head: its mirror test drops samples from the loss, so the first gradient norms
    # vary too much for a factor-5 guard after 3 steps of history.
    cfg = tiny_config("train.steps=100", "train.grad_spike_factor=5", "model.sense_head=false")
    trainer = Trainer(cfg, tmp_path)
    trainer.guard = GradSpikeGuard(5.0, min_history=3)  # active after 3 steps (default 20)
    batches = iter(TrainStream(cfg.data, 0, trainer.layout))
    for _ in range(4):
        assert not trainer.train_step(batches).skipped
    before = _params(trainer.model)
    adam_before = {k: v["exp_avg"].clone() for k, v in trainer.optimizer.state.items()}
    weight = trainer.model.decoder.unembed.proj.weight
    handle = weight.register_hook(lambda g: g * 1e6)  # an injected gradient explosion
    with caplog.at_level(logging.WARNING, logger="rayzer.train"):
        stats = trainer.train_step(batches)
    handle.remove()
    assert stats.skipped and stats.grad_norm > 1e2  # the threshold is ≈ 0.15
    assert trainer.guard.skipped == 1
    assert "skipped update" in caplog.text
    for n, p in _params(trainer.model).items():
        assert torch.equal(p, before[n]), n  # no update at all
    for k, v in trainer.optimizer.state.items():
        assert torch.equal(v["exp_avg"], adam_before[k])  # moments untouched
    assert all(p.grad is None for p in trainer.model.parameters())  # gradients cleared
    assert trainer.step == 5  # the step (data, schedule) still advances
    stats = trainer.train_step(batches)
    assert not stats.skipped
    assert any(not torch.equal(p, before[n]) for n, p in _params(trainer.model).items())
    # a NaN gradient is always skipped and logged as strict JSON
    handle = weight.register_hook(lambda g: g * float("nan"))
    assert trainer.train_step(batches).skipped
    handle.remove()
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    trainer.close()
    events = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    skips = [e for e in events if e.get("event") == "skipped_update"]
    assert [e["step"] for e in skips] == [5, 7]
    assert skips[0]["grad_norm"] > 1e2 and skips[1]["grad_norm"] == "nan"


def test_time_budget_and_existing_run_guard(tmp_path, tiny_config):
    cfg = tiny_config("train.steps=1000", "train.time_budget_minutes=0.0001")
    _, summary = _train(cfg, tmp_path)
    assert summary.stopped_by == "time_budget" and summary.step == 1
    assert summary.checkpoint == tmp_path / "checkpoints" / "step_000001"
    with pytest.raises(ValueError, match="already holds checkpoints"):
        Trainer(cfg, tmp_path)
    # resume="auto" picks the latest checkpoint
    trainer = Trainer(tiny_config("train.steps=2"), tmp_path, resume="auto")
    assert trainer.step == 1
    assert trainer.train().step == 2
    trainer.close()


def test_training_logs(tmp_path, tiny_config):
    cfg = tiny_config("train.steps=4", "train.log_every=2", "train.image_every=2")
    _, summary = _train(cfg, tmp_path)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    scalars = [r for r in records if "event" not in r]
    assert [r["step"] for r in scalars] == [2, 4]
    for key in ("loss", "mse", "psnr", "lr", "grad_norm", "skipped_steps", "step_time"):
        assert key in scalars[0]
    assert scalars[1]["images_per_s"] > 0
    assert scalars[1]["loss"] == pytest.approx(summary.history[3].loss)
    # process CPU seconds since train() started: positive, growing, whatever the budget clock
    assert 0 < scalars[0]["cpu_s"] < scalars[1]["cpu_s"]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    tags = {"loss", "psnr", "lr", "grad_norm", "skipped_steps", "step_time", "images_per_s"}
    assert {f"train/{t}" for t in tags} <= set(acc.Tags()["scalars"])
    images = acc.Images("train/target_vs_render")
    assert [im.step for im in images] == [2, 4]
    assert (images[0].height, images[0].width) == (32, 32)  # 2 rows × Vt=2 columns of 16 px


def test_logged_cpu_s_is_process_cpu_since_train(tmp_path, tiny_config, monkeypatch):
    """``cpu_s`` is this train() call's process CPU: not wall time (a step that sleeps costs no
    CPU) and not the CPU the process spent before train() (imports, model building)."""
    step = Trainer.train_step

    def sleepy_step(self, batches):
        time.sleep(0.4)  # wall time without CPU
        return step(self, batches)

    monkeypatch.setattr(Trainer, "train_step", sleepy_step)
    cfg = tiny_config("train.steps=2", "train.log_every=1", "train.image_every=0")
    trainer = Trainer(cfg, tmp_path)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    try:
        trainer.train()
    finally:
        trainer.close()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    scalars, _ = read_metrics(tmp_path)
    logged = [r["cpu_s"] for r in scalars]
    assert len(logged) == 2 and 0 < logged[0] < logged[1] <= cpu
    assert logged[1] < wall - 0.6  # the two sleeps (0.8 s) are not in it


def test_perceptual_adapter(monkeypatch):
    missing = types.ModuleType("rayzer.eval.lpips")

    def no_weights(net, reduction="mean"):
        raise FileNotFoundError("lpips_vgg.safetensors not found")

    missing.PerceptualLoss = no_weights
    monkeypatch.setitem(sys.modules, "rayzer.eval.lpips", missing)
    with pytest.raises(RuntimeError, match="perceptual_weight=0"):
        build_perceptual_loss("vgg")

    class FakeLPIPS(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(()))

        def forward(self, x, y):  # (N, 3, H, W) → (N,)
            assert x.ndim == 4
            return self.scale * (x - y).abs().flatten(1).mean(1)

    fake = types.ModuleType("rayzer.eval.lpips")
    fake.LPIPS = FakeLPIPS
    monkeypatch.setitem(sys.modules, "rayzer.eval.lpips", fake)
    perc = build_perceptual_loss("vgg", weight=0.5)
    assert not any(p.requires_grad for p in perc.parameters())  # frozen
    render = torch.rand(2, 3, 3, 8, 8, requires_grad=True)
    target = torch.rand(2, 3, 3, 8, 8)
    terms = photometric_loss(render, target, perc)
    l1 = (render - target).abs().mean()
    torch.testing.assert_close(terms["loss"], ((render - target) ** 2).mean() + 0.5 * l1)
    terms["loss"].backward()
    assert render.grad is not None
    # per-sample weights: a weight-0 sample gets no gradient; the loss stays a mean over all B
    render.grad = None
    weight = torch.tensor([0.0, 1.0])
    terms = photometric_loss(render, target, perc, sample_weight=weight)
    per_mse = ((render - target) ** 2).flatten(1).mean(1)
    per_l1 = (render - target).abs().flatten(2).mean(2).mean(1)
    torch.testing.assert_close(terms["loss"], ((per_mse + 0.5 * per_l1) * weight).mean())
    torch.testing.assert_close(terms["mse"], per_mse.detach().mean())
    terms["loss"].backward()
    assert render.grad[0].abs().max() == 0 and render.grad[1].abs().max() > 0


def test_perceptual_weight_without_weights_is_a_clear_error(tmp_path, tiny_config, monkeypatch):
    missing = types.ModuleType("rayzer.eval.lpips")  # provides nothing usable
    monkeypatch.setitem(sys.modules, "rayzer.eval.lpips", missing)
    with pytest.raises(RuntimeError, match="perceptual"):
        Trainer(tiny_config("train.perceptual_weight=0.2"), tmp_path)


def test_training_with_the_real_perceptual_loss(tmp_path, tiny_config):
    try:
        build_perceptual_loss("vgg")
    except RuntimeError as err:
        pytest.skip(f"LPIPS weights unavailable: {err}")
    # sense_mirror=both: every sample counts in the loss (with "resolved", samples whose mirror
    # won leave the loss but not the logged MSE / perceptual means)
    cfg = tiny_config(
        "train.perceptual_weight=0.5",
        "train.steps=2",
        "train.image_every=0",
        "model.sense_mirror=both",
    )
    trainer = Trainer(cfg, tmp_path)
    from rayzer.data.stream import TrainStream

    stats = trainer.train_step(iter(TrainStream(cfg.data, 0, trainer.layout)))
    trainer.close()
    perceptual = stats.terms["perceptual"]
    assert perceptual > 0 and not stats.skipped
    # the model's total: photometric + the sense head's cross-entropy (weight 1)
    assert stats.loss == pytest.approx(
        stats.mse + 0.5 * perceptual + stats.terms["sense_loss"], rel=1e-5
    )
    assert "perceptual" not in "".join(trainer.model.state_dict())  # never checkpointed


def test_resume_with_overrides_follows_the_new_schedule(tmp_path, tiny_config):
    _train(tiny_config("train.steps=2", "train.image_every=0"), tmp_path)
    cfg = tiny_config("train.steps=10", "train.lr=1e-2", "train.betas=[0.8,0.9]")
    trainer, summary = _train(cfg, tmp_path, resume="auto")
    schedule = WarmupCosine(cfg.train.warmup_steps, 10, cfg.train.min_lr_ratio)
    assert [s.lr for s in summary.history] == pytest.approx(
        [1e-2 * schedule(k) for k in range(2, 10)]
    )
    assert all(g["betas"] == (0.8, 0.9) for g in trainer.optimizer.param_groups)


def test_spike_guard_waits_for_the_warmup(tmp_path, tiny_config):
    for warmup, expected in ((50, 50), (3, 20)):
        trainer = Trainer(tiny_config(f"train.warmup_steps={warmup}"), tmp_path / f"w{warmup}")
        try:
            assert trainer.guard.min_history == expected
        finally:
            trainer.close()


@pytest.mark.parametrize("model_name", ["rayzer", "lvsm"])
def test_progressive_resolution_trains_small_then_full(
    tmp_path, tiny_config, monkeypatch, caplog, model_name
):
    """data.low_res_*: the first steps train on 8-px images, the rest on 16 px, and a run
    resumed after the switch from a checkpoint before it equals the uninterrupted run."""
    sizes: list[int] = []
    original = Trainer.compute_loss

    def spy(self, batch):
        sizes.append(batch["image"].shape[-1])
        terms, render = original(self, batch)
        assert render.shape[-2:] == batch["image"].shape[-2:]  # renders at the input size
        return terms, render

    monkeypatch.setattr(Trainer, "compute_loss", spy)
    cfg = tiny_config(
        "train.steps=5",
        "train.ckpt_every=2",
        "data.low_res_size=8",
        "data.low_res_steps=3",
        f"model.name={model_name}",
    )
    with caplog.at_level(logging.INFO, logger="rayzer.train"):
        full, full_summary = _train(cfg, tmp_path / "full")
    assert sizes == [8, 8, 8, 16, 16]
    switches = [
        r.getMessage() for r in caplog.records if "progressive resolution" in r.getMessage()
    ]
    assert switches == [
        "step 1: training on 8 px images (progressive resolution)",
        "step 4: training on 16 px images (progressive resolution)",
    ]
    assert all(math.isfinite(s.loss) for s in full_summary.history)
    sizes.clear()
    resumed, summary = _train(
        cfg, tmp_path / "resumed", resume=tmp_path / "full" / "checkpoints" / "step_000002"
    )
    assert sizes == [8, 16, 16]
    for a, b in zip(full_summary.history[2:], summary.history):
        assert (a.loss, a.grad_norm) == (b.loss, b.grad_norm)
    for n, p in _params(resumed.model).items():
        assert torch.equal(p, _params(full.model)[n]), n


def test_eta_counts_the_full_size_steps_still_to_come():
    """The progress line's ETA: low-res steps at the measured speed, the full-size steps after
    the switch scaled by the pixel ratio, all capped by what is left of a time budget."""
    from rayzer.config import DataConfig
    from rayzer.train.loop import remaining_seconds

    progressive = DataConfig(image_size=64, low_res_size=32, low_res_steps=1500)
    # 500 low-res steps left at 0.5 s, then 500 full-size steps at 4 × 0.5 s
    assert remaining_seconds(progressive, 1000, 2000, 0.5, None) == pytest.approx(1250.0)
    # at the switch the measured steps were small, everything left is full size
    assert remaining_seconds(progressive, 1500, 2000, 0.5, None) == pytest.approx(1000.0)
    # after the switch the measured speed is already that of full-size steps
    assert remaining_seconds(progressive, 1800, 2000, 2.0, None) == pytest.approx(400.0)
    assert remaining_seconds(DataConfig(), 1000, 2000, 0.5, None) == pytest.approx(500.0)
    assert remaining_seconds(progressive, 1000, 2000, 0.5, 600.0) == pytest.approx(600.0)
    assert remaining_seconds(progressive, 1000, 2000, 0.5, -5.0) == 0.0
    assert remaining_seconds(DataConfig(), 2000, 2000, 0.5, None) == 0.0
    # non-square: the pixel ratio of 24 × 40 to the low-res 16 × 24 the stream loads at patch
    # 8 (2.5; the long side unrounded, 16 × 27, gave 2.22; the short sides squared 2.25)
    wide = DataConfig(image_size=[24, 40], low_res_size=16, low_res_steps=1500)
    assert remaining_seconds(wide, 1500, 2000, 0.5, None, multiple=8) == pytest.approx(625.0)


@pytest.mark.parametrize("mode", ["both", "resolved"])
def test_sense_head_training_logs(tmp_path, tiny_config, mode):
    """model.sense_head with either mirror test (model.sense_mirror) trains; the head's
    cross-entropy and the mirror's win rate are logged."""
    cfg = tiny_config(
        "model.sense_head=true",
        f"model.sense_mirror={mode}",
        "model.keep_input_tokens=true",
        "model.decoder_readout=sweep",
        "model.sweep_depths=4",
        "train.steps=3",
        "train.log_every=1",
    )
    trainer, summary = _train(cfg, tmp_path / "run")
    assert trainer.step == 3
    assert all(
        math.isfinite(s.loss) and math.isfinite(s.terms["sense_loss"]) for s in summary.history
    )
    assert all(0.0 <= s.terms["mirror_won"] <= 1.0 for s in summary.history)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    logged = [r for r in rows if "sense_loss" in r]
    assert len(logged) == 3 and all("mirror_won" in r for r in logged)
    # the sense head is a part of the model (trained and saved with it)
    assert any(n.startswith("sense_head.") for n, _ in trainer.model.named_parameters())


def test_mirror_hypothesis_keeps_the_better_render_or_drops_the_loser():
    """ "both": each sample's loss uses the better of the renders of its path and of the
    path's mirror; "resolved": the path's own render stays and a sample whose mirror won gets
    weight 0."""
    from rayzer.models.sense import mirror_camera_path, mirror_test

    # sample 0's mirror render is exact, sample 1's own render is
    target = torch.rand(2, 2, 3, 8, 8)
    noise = torch.full_like(target, 0.2)
    own = torch.stack((target[0] + noise[0], target[1]))
    mirror = torch.stack((target[0], target[1] + noise[1]))
    c2w = mirror_camera_path(torch.eye(4).repeat(2, 5, 1, 1))
    c2w[:, :, 0, 3] = 1.0
    logits = torch.zeros(2, 4)
    render, weight, sense_loss, won = mirror_test(own, mirror, target, c2w, logits, True)
    assert torch.equal(render[0], target[0]) and torch.equal(render[1], target[1])
    assert weight is None and won.item() == 0.5
    assert sense_loss.item() == 0.0  # no view turned: nothing to learn yet
    # model.sense_mirror="resolved": the own render stays, the sample whose mirror won leaves
    # the loss
    render, weight, _, won = mirror_test(own, mirror, target, c2w, logits, keep_better=False)
    assert torch.equal(render, own) and weight.tolist() == [0.0, 1.0] and won.item() == 0.5


def test_resume_from_an_older_checkpoint_starts_a_branch(tmp_path, tiny_config):
    """Resuming a run from an older checkpoint moves the later ones aside (kept, but no longer
    found by --resume auto or pruning), and the metrics readers drop the abandoned steps."""
    cfg = tiny_config(
        "train.steps=6", "train.ckpt_every=2", "train.keep_last=2", "train.log_every=1"
    )
    _train(cfg, tmp_path)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_000004", "step_000006"]
    old_branch = {
        p.name: (p / "model.safetensors").read_bytes() for p in list_checkpoints(tmp_path)
    }
    branch_cfg = tiny_config(
        "train.steps=5",
        "train.ckpt_every=2",
        "train.keep_last=2",
        "train.log_every=1",
        "train.lr=0.003",
    )
    _, summary = _train(branch_cfg, tmp_path, resume=tmp_path / "checkpoints" / "step_000004")
    assert [s.step for s in summary.history] == [5]
    # the new branch is what --resume auto finds; keep_last=2 did not prune step 4 for step 6
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_000004", "step_000005"]
    assert latest_checkpoint(tmp_path).name == "step_000005"
    # nothing already written is lost: the abandoned step 6 sits under checkpoints/superseded
    (moved,) = (tmp_path / "checkpoints" / SUPERSEDED_DIR).iterdir()
    assert sorted(p.name for p in moved.iterdir()) == ["step_000006"]
    assert (moved / "step_000006" / "model.safetensors").read_bytes() == old_branch["step_000006"]
    scalars, events = read_metrics(tmp_path)
    assert [r["step"] for r in scalars] == [1, 2, 3, 4, 5]
    assert scalars[-1]["loss"] == pytest.approx(summary.history[0].loss)
    (resume,) = [e for e in events if e["event"] == "resume"]
    assert resume["step"] == 4 and resume["superseded"][0].endswith("step_000006")
    # a checkpoint of another run cannot be resumed into a folder that holds checkpoints
    other = tmp_path.parent / (tmp_path.name + "-other")
    _train(tiny_config("train.steps=1"), other)
    with pytest.raises(ValueError, match="another run"):
        Trainer(cfg, tmp_path, resume=other)
    # nor can a superseded one (it is another branch), and the message says which it is
    with pytest.raises(ValueError, match="superseded checkpoint of this run"):
        Trainer(cfg, tmp_path, resume=moved / "step_000006")


def test_resume_branch_edge_cases(tmp_path, tiny_config):
    """A symlink to the run's own checkpoint is the run's; a leftover .old copy of a later step
    (an interrupted re-save) moves with its branch; a resume that fails to open its data
    moves nothing."""
    cfg = tiny_config("train.steps=4", "train.ckpt_every=2", "train.keep_last=0")
    run = tmp_path / "run"
    _train(cfg, run)
    ckpts = run / "checkpoints"
    (ckpts / "step_000004").rename(ckpts / ".old-step_000004-999")  # cut re-save of step 4
    with pytest.raises(ValueError, match="no such file or folder"):
        Trainer(tiny_config("data.source=/no/such/data"), run, resume=ckpts / "step_000002")
    assert [p.name for p in list_checkpoints(run)] == ["step_000002", ".old-step_000004-999"]
    link = tmp_path / "link"
    link.symlink_to(ckpts / "step_000002")
    trainer, _ = _train(tiny_config("train.steps=3", "train.ckpt_every=2"), run, resume=link)
    assert trainer.step == 3
    assert [p.name for p in list_checkpoints(run)] == ["step_000002", "step_000003"]
    (moved,) = (ckpts / SUPERSEDED_DIR).iterdir()
    assert [p.name for p in moved.iterdir()] == ["step_000004"]


def test_metrics_readers_drop_an_abandoned_branch(tmp_path):
    lines = [
        {"step": 1, "loss": 1.0},
        {"step": 2, "loss": 0.9},
        {"step": 2, "event": "checkpoint"},
        {"step": 3, "loss": 0.8},
        {"step": 3, "event": "skipped_update", "grad_norm": 9.0},
        {"step": 2, "event": "resume", "checkpoint": "step_000002"},
        {"step": 3, "loss": 0.7},
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    scalars, events = read_metrics(tmp_path)
    assert [(r["step"], r["loss"]) for r in scalars] == [(1, 1.0), (2, 0.9), (3, 0.7)]
    assert [e["event"] for e in events] == ["checkpoint", "resume"]


def _stream(trainer, cfg):
    return iter(TrainStream(cfg.data, 0, trainer.layout))


def test_gradients_are_clipped_per_group(tmp_path, tiny_config):
    """train.grad_clip caps the norm of the update's gradients: the model's and, separately,
    the sense head's; the logged grad norm is the one before clipping."""
    cfg = tiny_config("train.grad_clip=0.001", "train.grad_spike_factor=0", *SENSE)
    trainer = Trainer(cfg, tmp_path)
    head = {id(p) for p in trainer.model.sense_head.parameters()}
    seen = []

    def measure(_optimizer, _args, _kwargs):  # what the optimizer is about to apply
        groups = ([], [])
        for p in trainer.model.parameters():
            if p.grad is not None:
                groups[id(p) in head].append(p.grad.flatten())
        seen.append([float(torch.cat(g).norm()) for g in groups])

    trainer.optimizer.register_step_pre_hook(measure)
    batches = _stream(trainer, cfg)
    stats = [trainer.train_step(batches) for _ in range(2)]
    trainer.close()
    assert len(seen) == 2
    assert all(s.grad_norm > 0.01 for s in stats)  # clipping had work to do
    for body, head_norm in seen:
        assert body == pytest.approx(0.001, rel=1e-3)
        assert head_norm <= 0.001 * (1 + 1e-3)


def test_a_nan_sense_head_gradient_skips_the_update(tmp_path, tiny_config):
    """The sense head is clipped apart from the model, but a non-finite gradient there still
    skips the whole update (it would write NaN weights) and is logged."""
    cfg = tiny_config(*SENSE)
    trainer = Trainer(cfg, tmp_path)
    batches = _stream(trainer, cfg)
    trainer.train_step(batches)
    before = _params(trainer.model)
    weight = next(trainer.model.sense_head.parameters())
    handle = weight.register_hook(lambda g: g * float("nan"))
    stats = trainer.train_step(batches)
    handle.remove()
    trainer.close()
    assert stats.skipped and math.isfinite(stats.grad_norm)
    for n, p in _params(trainer.model).items():
        assert torch.equal(p, before[n]), n
    events = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    (skip,) = [e for e in events if e.get("event") == "skipped_update"]
    assert skip["sense_head_grad_norm"] == "nan"


def test_precision_follows_the_config_and_device(tmp_path, tiny_config, caplog):
    """fp32 on CPU by default; precision=bf16 autocasts on CPU too (with a warning: slow)."""
    trainer = Trainer(tiny_config(), tmp_path / "auto")
    with trainer.autocast():
        assert not torch.is_autocast_enabled("cpu")
    assert trainer.use_bf16 is False
    trainer.close()
    with caplog.at_level(logging.WARNING, logger="rayzer.train"):
        trainer = Trainer(tiny_config("train.precision=bf16"), tmp_path / "bf16")
    assert "bf16 autocast on CPU" in caplog.text
    with trainer.autocast():
        assert torch.is_autocast_enabled("cpu")
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16
        y = torch.nn.functional.linear(torch.rand(2, 4), torch.rand(3, 4))
    assert y.dtype == torch.bfloat16
    trainer.close()


def test_release_guards_skip_updates(tmp_path, tiny_config):
    # A gradient-element bound below any real gradient skips every update; a norm bound of
    # 1e-9 × clip from step 2 on skips from the third update.
    cfg = tiny_config("train.steps=10", "train.grad_skip_element=1e-12", "model.sense_head=false")
    trainer = Trainer(cfg, tmp_path / "element")
    batches = iter(TrainStream(cfg.data, 0, trainer.layout))
    before = _params(trainer.model)
    assert trainer.train_step(batches).skipped
    assert all(torch.equal(p, before[n]) for n, p in _params(trainer.model).items())
    trainer.close()
    cfg = tiny_config(
        "train.steps=10",
        "train.grad_skip_clip_factor=1e-9",
        "train.grad_skip_after=2",
        "model.sense_head=false",
    )
    trainer = Trainer(cfg, tmp_path / "norm")
    batches = iter(TrainStream(cfg.data, 0, trainer.layout))
    assert [trainer.train_step(batches).skipped for _ in range(3)] == [False, False, True]
    trainer.close()


def test_process_clock_budget(tmp_path, tiny_config, monkeypatch):
    # The budget counts CPU time of this process: with a frozen process clock the run goes on
    # to train.steps; with one that jumps a minute per reading it stops at the first check.
    cfg = tiny_config(
        "train.steps=3",
        "train.time_budget_minutes=0.5",
        "train.time_budget_clock=process",
        "model.sense_head=false",
    )

    def train(out):
        trainer = Trainer(cfg, out)
        try:
            return trainer.train()
        finally:
            trainer.close()

    monkeypatch.setattr(time, "process_time", lambda: 0.0)
    assert train(tmp_path / "frozen").step == 3
    ticks = iter(range(0, 10_000, 60))
    monkeypatch.setattr(time, "process_time", lambda: float(next(ticks)))
    summary = train(tmp_path / "jumping")
    assert summary.stopped_by == "time_budget" and summary.step == 1
