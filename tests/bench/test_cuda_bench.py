"""``rayzer bench cuda`` on the CPU: every part's logic at tiny scale in fp32.

The command itself needs CUDA (bf16, flash attention, gsplat, NCCL); here the same functions
run on the CPU: the training step of each registered model from its tiny preset, the rasterizer
comparison against the dense ``reference`` backend (gsplat has no CPU kernels), and DDP with
gloo.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from _tiny import TINY_MODEL
from rayzer.bench import cuda as bench_cuda
from rayzer.bench.cuda import Deadline, SdpaCensus, StepSpec
from rayzer.cli import main
from rayzer.config import load_config
from rayzer.models import available_models
from rayzer.utils.report import write_report

CPU = torch.device("cpu")
_DATA = ["data.image_size=16", "data.num_input_views=2", "data.num_target_views=1"]
_SMALL = ["model.dim=32", "model.num_heads=2", "model.pos_enc_dim=16"]
#: A tiny spec of each registered model (16 px, 2 + 1 views, one layer or pair per stage).
TINY_SPECS = {
    "rayzer": StepSpec("rayzer-tiny-cpu", [*_DATA, *TINY_MODEL, "model.sense.enabled=false"], 1, 1, 1),
    "lvsm": StepSpec("lvsm-tiny-cpu", [*_DATA, *TINY_MODEL], 1, 1, 1),
    "erayzer": StepSpec("erayzer-tiny-cpu", [*_DATA, *_SMALL, "model.pose_depth=1",
                                            "model.scene_depth=1"], 1, 1, 1),
    "nas3r": StepSpec("nas3r-tiny-cpu", [*_DATA, *_SMALL, "model.depth=1", "model.head_taps=[0]",
                                        "model.head_features=16"], 1, 1, 1),
}  # fmt: skip


def test_the_paper_presets_cover_the_four_model_families():
    models = {load_config(p).model.name for p in bench_cuda.PAPER_PRESETS}
    assert models == set(TINY_SPECS) == {"rayzer", "lvsm", "erayzer", "nas3r"}
    assert models <= set(available_models())
    assert all(load_config(p).data.image_size >= 224 for p in bench_cuda.PAPER_PRESETS)


@pytest.mark.parametrize("name", sorted(TINY_SPECS))
def test_training_step_of_each_model(name):
    row = bench_cuda.train_step_row(TINY_SPECS[name], CPU, torch.float32)
    assert row["model"] == name and row["dtype"] == "fp32"
    assert row["loss_finite"] and row["grad_norm_finite"] and row["weights_finite"]
    assert len(row["losses"]) == 2  # the warm-up (census) step and the timed step
    assert row["timed_steps"] == 1 and row["step_s"] > 0 and row["images_per_s"] > 0
    assert row["tflop_per_step"] > 0 and row["peak_mem_gib"] is None  # CUDA only
    assert row["render_backend"] == ("torch" if name in ("erayzer", "nas3r") else None)
    # fp32 on the CPU: every attention call ran the fused CPU flash kernel.
    assert row["sdpa"]["calls"] > 0 and row["sdpa"]["math_calls"] == 0
    fwd = row["sdpa"]["kernels"]["_scaled_dot_product_flash_attention_for_cpu"]
    assert fwd == row["sdpa"]["calls"]


def test_sdpa_census_tells_fused_from_math_calls():
    q = torch.randn(1, 2, 16, 8, requires_grad=True)
    with SdpaCensus() as census:
        F.scaled_dot_product_attention(q, q, q).sum().backward()
        with sdpa_kernel([SDPBackend.MATH]):
            F.scaled_dot_product_attention(q, q, q).sum().backward()
    summary = census.summary()
    assert summary["calls"] == 2 and summary["math_calls"] == 1
    assert summary["kernels"]["_scaled_dot_product_flash_attention_for_cpu_backward"] == 1


def test_sdpa_probe_runs_the_flash_kernel():
    probe = bench_cuda.sdpa_probe(CPU, torch.float32, seq=64)
    assert probe["flash_only_call"] == "ok" and probe["grad_finite"]
    assert probe["max_abs_diff_vs_math_fp32"] < 1e-5


def test_rasterizer_comparison_agrees_with_the_reference_backend():
    r = bench_cuda.rasterizer_part(CPU, size=8, inputs=2, targets=2, repeats=1, other="reference")
    assert r["backends"] == ["torch", "reference"] and r["gaussians"] == 2 * 8 * 8
    assert r["rgb_max_abs_diff"] < 1e-5 and r["alpha_max_abs_diff"] < 1e-5
    assert 0 <= r["rgb_mean_abs_diff"] <= r["rgb_max_abs_diff"]
    assert set(r["grad_rel_diff"]) == {"means", "opacities", "colors"}
    assert max(r["grad_rel_diff"].values()) < 1e-4 and r["grad_finite"]
    for backend in ("torch", "reference"):
        t = r[f"{backend}_time"]
        assert 0 < t["forward_s"] <= t["fwd_bwd_s"]


def test_relative_gradient_difference_sees_a_wrong_gradient():
    b = torch.tensor([3.0, 4.0])
    assert bench_cuda._relative(b, b) == 0.0
    assert bench_cuda._relative(torch.zeros(2), b) == pytest.approx(1.0)


def test_one_process_ddp_equals_the_plain_step():
    r = bench_cuda.ddp_part(CPU)
    assert r["backend"] == "gloo" and r["world_size"] == 1 and r["steps"] == 2
    assert r["max_abs_weight_change"] > 1e-3  # the weights moved, so equality means something
    assert r["max_abs_weight_diff"] <= 1e-6 and r["equal"]
    assert r["group_destroyed"] and not torch.distributed.is_initialized()


def test_guard_records_errors_and_skips_when_out_of_time():
    def boom():
        raise RuntimeError("kaput")

    err = bench_cuda.guarded("x", Deadline(60), boom)
    assert err["status"] == "error" and err["error"] == "RuntimeError: kaput"
    assert bench_cuda.guarded("x", Deadline(0), lambda: {"a": 1}) == {"status": "skipped: time"}
    ok = bench_cuda.guarded("x", Deadline(60), lambda: {"a": 1})
    assert ok["status"] == "ok" and ok["a"] == 1 and ok["part_s"] >= 0


def test_failing_model_does_not_hide_the_others():
    bad = StepSpec("no-such-preset")
    out = bench_cuda.train_steps_part([bad], CPU, torch.float32, Deadline(60))
    (row,) = out["rows"]
    assert row["preset"] == "no-such-preset" and row["status"] == "error" and row["error"]


def test_run_all_result_schema_and_report(tmp_path):
    result = bench_cuda.run_all(CPU, torch.float32, [TINY_SPECS["lvsm"]], 120.0, render_size=8,
                                render_repeats=1, render_other="reference")  # fmt: skip
    for key in ("benchmark", "dtype", "budget_s", "torch", "cuda", "device", "machine", "gsplat",
                "sdpa_probe", "train_steps", "rasterizer", "ddp", "elapsed_s", "failures"):  # fmt: skip
        assert key in result, key
    assert result["failures"] == [], result["failures"]
    for part in ("sdpa_probe", "train_steps", "rasterizer", "ddp"):
        assert result[part]["status"] == "ok"
    (row,) = result["train_steps"]["rows"]
    assert row["status"] == "ok" and math.isfinite(row["step_s"])
    write_report(tmp_path, "cuda", result, bench_cuda.to_markdown(result))
    assert json.loads((tmp_path / "cuda.json").read_text())["ddp"]["equal"] is True
    assert "| preset | status |" in (tmp_path / "cuda.md").read_text()


def test_run_all_over_budget_skips_every_part_and_fails():
    result = bench_cuda.run_all(CPU, torch.float32, [TINY_SPECS["lvsm"]], 0.0,
                                render_skip="gsplat rasterizes on CUDA only")  # fmt: skip
    assert result["sdpa_probe"] == result["ddp"] == {"status": "skipped: time"}
    assert result["rasterizer"]["status"] == "skipped: gsplat rasterizes on CUDA only"
    assert "ddp: skipped: time" in result["failures"]
    assert not any(f.startswith("rasterizer") for f in result["failures"])
    assert "skipped: time" in bench_cuda.to_markdown(result)


def test_gsplat_kernel_state_is_known():
    assert bench_cuda.gsplat_kernels()["state"] in {
        "not installed", "prebuilt", "jit cached", "needs JIT build", "no CUDA toolkit"
    }  # fmt: skip


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without CUDA")
def test_command_refuses_without_cuda(tmp_path, capsys):
    rc = main(["bench", "cuda", "--out", str(tmp_path / "out")])
    assert rc != 0
    assert "needs a CUDA GPU" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert main(["bench", "cuda", "--steps", "0"]) != 0
    assert "--steps must be >= 1" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("state", "build", "runs"),
    [("prebuilt", False, True), ("jit cached", False, True), ("needs JIT build", False, False),
     ("no CUDA toolkit", True, False), ("not installed", False, False)],
)  # fmt: skip
def test_gsplat_plan_runs_gsplat_only_with_loadable_kernels(monkeypatch, state, build, runs):
    monkeypatch.setattr(bench_cuda, "gsplat_kernels", lambda: {"state": state})
    kernels, skip = bench_cuda.gsplat_plan(build)
    assert kernels["state"] == state and (skip is None) == runs
    if state == "needs JIT build":
        assert "--build-gsplat" in skip


def test_gsplat_plan_records_a_failed_build(monkeypatch):
    def fail() -> float:
        raise RuntimeError("nvcc exploded")

    monkeypatch.setattr(bench_cuda, "gsplat_kernels", lambda: {"state": "needs JIT build"})
    monkeypatch.setattr(bench_cuda, "build_gsplat", fail)
    kernels, skip = bench_cuda.gsplat_plan(True)
    assert kernels["build_error"] == "RuntimeError: nvcc exploded" and skip is not None


@pytest.mark.parametrize("gsplat_skip", [None, "gsplat kernels: needs JIT build"])
def test_command_wiring_with_cuda_faked(monkeypatch, tmp_path, capsys, gsplat_skip):
    """``main`` with CUDA faked and ``run_all`` replaced by a CPU run without models: the
    arguments reach the specs, the report is written, a skipped gsplat fails the check."""
    seen, real_run_all = {}, bench_cuda.run_all

    def fake_run_all(device, dtype, specs, budget_s, **kwargs):
        seen.update(device=device, dtype=dtype, specs=specs, budget_s=budget_s, **kwargs)
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the CPU run below
        return real_run_all(CPU, torch.float32, [], budget_s, render_skip="faked")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(bench_cuda, "gsplat_plan", lambda build: ({"state": "x"}, gsplat_skip))
    monkeypatch.setattr(bench_cuda, "run_all", fake_run_all)
    rc = main(["bench", "cuda", "--batch", "1", "--budget", "60", "--out", str(tmp_path)])
    assert seen["device"] == torch.device("cuda") and seen["dtype"] == torch.bfloat16
    assert [s.preset for s in seen["specs"]] == list(bench_cuda.PAPER_PRESETS)
    assert {(s.batch, s.render_backend) for s in seen["specs"]} == {
        (1, "torch" if gsplat_skip else "auto")
    }
    assert seen["budget_s"] == 60 and seen["render_skip"] == gsplat_skip
    written = json.loads((tmp_path / "cuda.json").read_text())
    assert written["gsplat_kernels"] == {"state": "x"} and written["ddp"]["status"] == "ok"
    assert written["benchmark"] in capsys.readouterr().out
    assert (rc == 0) == (gsplat_skip is None)
    assert any(f.startswith("rasterizer") for f in written["failures"]) == bool(gsplat_skip)
