"""``rayzer bench paper-forward``: a preset built on the CPU and run forward once, its outputs
checked (shapes, finiteness, one Gaussian per input pixel), failures named and exit code 2."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from rayzer.bench import paper_forward
from rayzer.cli import main

#: 16 px, 2 + 1 views, the smallest widths: the code path of the paper presets in a second.
SMALL = ["data.image_size=16", "data.num_input_views=2", "data.num_target_views=1",
         "model.dim=32", "model.num_heads=2", "model.pos_enc_dim=16"]  # fmt: skip
EXPLICIT = {
    "erayzer-tiny-cpu": [*SMALL, "model.pose_depth=1", "model.scene_depth=1"],
    "nas3r-tiny-cpu": [*SMALL, "model.depth=1", "model.head_taps=[0]", "model.head_features=16"],
}


@pytest.mark.parametrize("preset", sorted(EXPLICIT))
def test_forward_row_checks_the_explicit_outputs(preset):
    row = paper_forward.forward_row(preset, EXPLICIT[preset], batch=2, threads=1)
    assert row["ok"] and row["problems"] == []
    assert (row["input_views"], row["target_views"], row["image_size"]) == (2, 1, 16)
    assert row["params_M"] > 0 and row["forward_tflop"] > 0 and row["forward_cpu_s"] > 0
    assert row["peak_rss_gib"] > 0


def test_wrong_outputs_are_named():
    caps = SimpleNamespace(predicts_cameras=True, outputs_depth=True, outputs_gaussians=True)
    model = SimpleNamespace(capabilities=caps)
    render = torch.zeros(1, 1, 3, 8, 8)
    render[0, 0, 0, 0, 0] = float("nan")
    out = SimpleNamespace(
        render=render,
        cameras=SimpleNamespace(c2w=torch.zeros(1, 2, 4, 4)),
        input_depth=torch.zeros(1, 2, 1, 8, 8),
        scene=SimpleNamespace(num_gaussians=64),
    )
    assert paper_forward._output_problems(out, model, 1, 2, 1, 8, 8) == [
        "render not finite",
        "cameras.c2w shape (1, 2, 4, 4), expected (1, 3, 4, 4)",
        "64 Gaussians, expected one per input pixel (128)",
    ]  # the depth has the right shape: not named


def test_cli_writes_its_report_and_fails_on_a_bad_preset(tmp_path, capsys):
    # One preset, so one spawned process (the good path of a row: the tests above).
    out = tmp_path / "pf"
    args = ["bench", "paper-forward", "--presets", "no-such-preset", "--out", str(out)]
    assert main(args) == 2
    result = json.loads((out / "paper_forward.json").read_text())
    (bad,) = result["rows"]
    assert not bad["ok"] and "no-such-preset" in bad["error"]
    assert result["failures"] == [f"no-such-preset: {bad['error']}"]
    assert "**failed**: no-such-preset" in (out / "paper_forward.md").read_text()
    assert "paper-forward failed: no-such-preset" in capsys.readouterr().err


def test_forward_row_at_a_non_square_size():
    """data.image_size=[H, W]: random inputs of that size, outputs checked against it."""
    over = [*EXPLICIT["nas3r-tiny-cpu"], "data.image_size=[16,24]"]
    row = paper_forward.forward_row("nas3r-tiny-cpu", over, batch=1, threads=1)
    assert row["ok"] and row["problems"] == [] and row["image_size"] == [16, 24]
