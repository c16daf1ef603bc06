import json

import pytest
import torch
import torch.nn.functional as F

from _tiny import TINY_MODEL, tiny_data
from rayzer.bench.flops import count_flops
from rayzer.bench.speed import (
    DERIVED_CONFIGS,
    markdown_table,
    measure_matmul_peak,
    random_batch,
    time_training_step,
)


def test_flop_counter_counts_cpu_attention_forward_and_backward():
    b, h, n, d = 2, 3, 40, 16
    q = torch.randn(b, h, n, d, requires_grad=True)

    def fwd_bwd():
        F.scaled_dot_product_attention(q, q, q).sum().backward()

    forward = 4 * b * h * n * n * d  # QKᵀ and (softmax)V, 2 FLOPs per multiply-add
    assert count_flops(fwd_bwd) == int(3.5 * forward)  # backward = 2.5 × forward


@pytest.mark.parametrize(
    ("size", "hw"), [(16, (16, 16)), ((16, 24), (16, 24)), ([24, 16], (24, 16))]
)
def test_random_batch_is_h_by_w_with_a_centred_principal_point(size, hw):
    """The benchmarks' random inputs at a side S or (H, W): images (B, V, 3, H, W), cameras on
    a line, fx = fy = W, (cx, cy) = (W/2, H/2) (a non-square cy of W/2 passed every test)."""
    batch = random_batch(2, 3, size, "cpu")
    h, w = hw
    assert batch["image"].shape == (2, 3, 3, h, w)
    assert torch.equal(batch["K"], torch.tensor([w, w, w / 2, h / 2]).expand(2, 3, 4))
    assert torch.equal(batch["c2w"][0, :, 0, 3], torch.tensor([-1.0, 0.0, 1.0]))


def test_matmul_peak_per_wall_and_cpu_second():
    wall, cpu = measure_matmul_peak(size=128, repeats=2)
    assert wall > 0 and cpu > 0


def test_training_step_row_is_complete_and_counts_matmuls():
    overrides = [*TINY_MODEL, *tiny_data(16, span_start_max=4)]
    row = time_training_step("tiny-cpu", None, 2, 1, 1, "cpu", overrides)
    assert row["views"] == 4 and row["batch"] == 2 and row["input_views"] == 2
    assert row["step_s"] > 0 and row["achieved_gflops"] > 0
    assert row["step_cpu_s"] > 0 and len(row["step_cpu_s_all"]) == 1
    assert not row["compiled"] and row["compile_s"] is None  # eager unless asked
    # twice the views: more than 1.5× the work (camera estimator and decoder grow with V)
    wider = time_training_step("tiny-cpu", 8, 2, 1, 1, "cpu", overrides)
    assert wider["gflop_per_step"] > 1.5 * row["gflop_per_step"]
    assert "peak_mem_mib" in markdown_table([row], ["config", "step_s", "peak_mem_mib"])


def test_derived_config_is_a_plain_yaml_any_rayzer_loads(tmp_path):
    from rayzer.bench.speed import config_file
    from rayzer.config import load_config

    path = config_file("paper-decoder-cpu", tmp_path)
    cfg = load_config(path)
    assert cfg.model.decoder.readout == "regress" and not cfg.model.sense.enabled
    assert not cfg.model.scene.keep_input_tokens and cfg.model.dim == 128
    assert (cfg.train.batch_size, cfg.data.num_views, cfg.data.image_size) == (8, 8, 64)
    assert config_file("tiny-cpu", tmp_path) == "tiny-cpu"


def test_compare_pairs_before_and_after_runs_by_configuration():
    from rayzer.bench.speed import compare

    def row(code, step):  # three steps per run
        return {
            "section": "configs",
            "code": code,
            "config": "c",
            "batch": 8,
            "views": 8,
            "step_s": step,
            "step_s_all": [step, step + 0.1, step + 0.2],
            "flop_utilisation": 1.0 / step,
            "step_cpu_s": step / 2,
            "flop_utilisation_cpu": 2.0 / step,
            "peak_mem_mib": 100.0,
        }

    rows = [row("before", 2.0), row("after", 1.0), row("before", 2.2), row("after", 1.2)]
    rows.append({"section": "configs", "code": "after", "error": "x"})  # failed runs skipped
    (entry,) = compare(rows)
    assert entry["step_s_before"] == 2.1 and entry["step_s_after"] == 1.1
    assert abs(entry["speedup"] - 2.1 / 1.1) < 1e-12
    assert entry["best_s_before"] == 2.0 and entry["best_s_after"] == 1.0
    # CPU seconds per step (the load-independent figure) are compared the same way
    assert abs(entry["step_cpu_s_before"] - 1.05) < 1e-12
    assert abs(entry["step_cpu_s_after"] - 0.55) < 1e-12
    assert abs(entry["speedup_cpu"] - 1.05 / 0.55) < 1e-12
    assert abs(entry["util_cpu_after"] - (2.0 + 2.0 / 1.2) / 2) < 1e-12  # median of two runs


def test_rasterizer_share_is_measured_for_an_explicit_model():
    row = time_training_step(
        "erayzer-tiny-cpu", None, 1, 1, 2, "cpu", [*tiny_data(16, span_start_max=4)]
    )
    assert row["raster_calls"] >= 1 and row["raster_share"] > 0


def test_compiled_row_compiles_before_the_timed_steps():
    """With a compile backend the model is compiled, and the compiling step is reported apart
    from the timed ones. A counting backend (no code generation) shows the compile happened."""
    graphs: list[torch.fx.GraphModule] = []
    options_seen: list[dict] = []

    def counting_backend(gm, example_inputs, options=None):
        graphs.append(gm)
        options_seen.append(options)
        return gm.forward

    # the paper-decoder variant: fewer ops for dynamo to trace than the sweep readout
    overrides = [*TINY_MODEL, *tiny_data(16, span_start_max=4), *DERIVED_CONFIGS[
        "paper-decoder-cpu"][1]]  # fmt: skip
    row = time_training_step(
        "tiny-cpu", None, 1, 2, 2, "cpu", overrides, counting_backend, {"cpp_wrapper": True}
    )
    assert graphs, "the model was not compiled"
    # the inductor options reach the compile of every graph (--compile-option)
    assert options_seen and all(o == {"cpp_wrapper": True} for o in options_seen)
    assert row["compile_options"] == {"cpp_wrapper": True}
    assert row["compiled"] and row["compile_s"] > 0 and row["compile_cpu_s"] > 0
    assert len(row["step_s_all"]) == 2 and row["raster_s"] is None


def test_compile_flag_adds_a_compiled_side_to_every_ab_round(monkeypatch, tmp_path, capsys):
    """`--compile` times this tree a third time per round, compiled with the chosen backend, and
    compares it with the baseline and with this tree's eager rows; the baseline never compiles."""
    import argparse

    from rayzer.bench import speed

    calls = []

    def fake_run(job, source, threads):
        compiled = "--compile" in job
        step = 1.0 if compiled else (2.0 if source is not None else 1.6)
        calls.append((source is not None, compiled, job))
        return {
            "config": "c",
            "batch": 8,
            "views": 8,
            "step_s": step,
            "step_s_all": [step],
            "achieved_gflops": 10.0 / step,
            "gflop_per_step": 10.0,
            "step_cpu_s": step,
            "peak_mem_mib": 1.0,
            "compile_s": 30.0 if compiled else None,
            "compile_cpu_s": 20.0 if compiled else None,
        }

    monkeypatch.setattr(speed, "_run_isolated", fake_run)
    monkeypatch.setattr(speed, "measure_matmul_peak", lambda device: (100.0, 100.0))
    monkeypatch.setattr(speed, "export_source", lambda rev, folder: tmp_path)
    parser = argparse.ArgumentParser()
    speed.add_arguments(parser)
    args = parser.parse_args(
        ["--configs", "tiny-cpu", "--scaling-views", "--baseline", "X", "--compile",
         "--compile-backend", "eager", "--device", "cpu"]
    )  # fmt: skip
    result = speed.run(args)
    assert [(b, c) for b, c, _ in calls] == [(True, False), (False, False), (False, True)] * 2
    for _, compiled, job in calls:
        assert ("--compile-backend" in job) == compiled
        if compiled:
            assert job[job.index("--compile-backend") + 1] == "eager"
    by_codes = {e["codes"]: e for e in result["comparison"]}
    assert set(by_codes) == {"before→after", "before→compiled", "after→compiled"}
    assert by_codes["before→compiled"]["speedup_cpu"] == 2.0
    assert by_codes["after→compiled"]["speedup"] == 1.6
    assert by_codes["before→compiled"]["compile_s_runs"] == [30.0, 30.0]
    assert "compile_s_runs" not in by_codes["before→after"]
    assert "before→compiled" in speed.to_markdown(result)
    assert "Before (git X) / after (this tree" in speed.to_markdown(result)
    # each row's figures are printed as it finishes (an interrupted run still shows them)
    assert capsys.readouterr().err.count("compile 30.0 s (20.0 CPU-s)") == 2
    # without a baseline: this tree eager and compiled, alternating, compared with each other
    calls.clear()
    alone = speed.run(parser.parse_args(["--configs", "tiny-cpu", "--scaling-views", "--compile"]))
    assert [(b, c) for b, c, _ in calls] == [(False, False), (False, True)] * 2
    assert [e["codes"] for e in alone["comparison"]] == ["after→compiled"]
    assert "After (this tree" in speed.to_markdown(alone) and "None" not in speed.to_markdown(alone)


def test_compile_options_reach_only_the_compiled_side(monkeypatch, tmp_path):
    """`--compile-option KEY=VALUE` (values read as YAML) goes to the compiled side's job as
    JSON and into the report; the eager sides never get it; a malformed one fails first."""
    import argparse

    from rayzer.bench import speed

    jobs = []

    def fake_run(job, source, threads):
        jobs.append(job)
        return {"config": "c", "batch": 8, "views": 8, "step_s": 1.0, "step_s_all": [1.0],
                "achieved_gflops": 1.0, "gflop_per_step": 1.0, "step_cpu_s": 1.0,
                "peak_mem_mib": 1.0}  # fmt: skip

    monkeypatch.setattr(speed, "_run_isolated", fake_run)
    monkeypatch.setattr(speed, "measure_matmul_peak", lambda device: (100.0, 100.0))
    parser = argparse.ArgumentParser()
    speed.add_arguments(parser)
    common = ["--configs", "tiny-cpu", "--scaling-views", "--compile", "--device", "cpu"]
    args = parser.parse_args(
        [*common, "--compile-option", "cpp_wrapper=true", "--compile-option", "compile_threads=3"]
    )
    result = speed.run(args)
    compiled = [j for j in jobs if "--compile" in j]
    assert compiled and len(compiled) < len(jobs)
    for job in jobs:
        if job in compiled:
            sent = json.loads(job[job.index("--compile-options-json") + 1])
            assert sent == {"cpp_wrapper": True, "compile_threads": 3}
        else:
            assert "--compile-options-json" not in job
    assert result["compile_options"] == {"cpp_wrapper": True, "compile_threads": 3}
    jobs.clear()
    with pytest.raises(ValueError, match=r"cpp_wrapper.*KEY=VALUE"):
        speed.run(parser.parse_args([*common, "--compile-option", "cpp_wrapper"]))
    # a name inductor does not know, and options without --compile: refused before any timing
    with pytest.raises(ValueError, match=r"inductor has no option 'x'"):
        speed.run(parser.parse_args([*common, "--compile-option", "x=3"]))
    no_compile = [c for c in common if c != "--compile"]
    with pytest.raises(ValueError, match=r"--compile-option needs --compile"):
        speed.run(parser.parse_args([*no_compile, "--compile-option", "cpp_wrapper=true"]))
    assert not jobs


def test_harness_imports_only_what_the_baseline_has():
    """`--baseline REV` runs this file as the harness next to REV's exported package, so its
    module-level rayzer imports must exist there too: rayzer.utils.compile_options at module
    level made every baseline run fail (ModuleNotFoundError). The modules below are those of the
    baseline of issue 20's runs, 19a70e9."""
    import ast
    from pathlib import Path

    from rayzer.bench import speed

    tree = ast.parse(Path(speed.__file__).read_text())
    top = {
        node.module
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("rayzer")
    }
    assert top <= {"rayzer.bench.flops", "rayzer.config", "rayzer.models", "rayzer.utils.report"}
