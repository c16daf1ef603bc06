import torch
import torch.nn.functional as F

from _tiny import TINY_MODEL, tiny_data
from rayzer.bench.flops import count_flops
from rayzer.bench.speed import markdown_table, time_training_step


def test_flop_counter_counts_cpu_attention_forward_and_backward():
    b, h, n, d = 2, 3, 40, 16
    q = torch.randn(b, h, n, d, requires_grad=True)

    def fwd_bwd():
        F.scaled_dot_product_attention(q, q, q).sum().backward()

    forward = 4 * b * h * n * n * d  # QKᵀ and (softmax)V, 2 FLOPs per multiply-add
    assert count_flops(fwd_bwd) == int(3.5 * forward)  # backward = 2.5 × forward


def test_training_step_row_is_complete_and_counts_matmuls():
    overrides = [*TINY_MODEL, *tiny_data(16, span_start_max=4)]
    row = time_training_step("tiny-cpu", None, 2, 1, 1, "cpu", overrides)
    assert row["views"] == 4 and row["batch"] == 2 and row["input_views"] == 2
    assert row["step_s"] > 0 and row["achieved_gflops"] > 0
    # twice the views: more than 1.5× the work (camera estimator and decoder grow with V)
    wider = time_training_step("tiny-cpu", 8, 2, 1, 1, "cpu", overrides)
    assert wider["gflop_per_step"] > 1.5 * row["gflop_per_step"]
    assert "peak_mem_mib" in markdown_table([row], ["config", "step_s", "peak_mem_mib"])
