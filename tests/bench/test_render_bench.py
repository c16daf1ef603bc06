"""Smoke test of ``rayzer bench render`` at tiny sizes (the real run is 64 / 128 / 256 px)."""

from __future__ import annotations

import json

import torch

from rayzer.bench.render import pixel_aligned_scene
from rayzer.cli import main


def test_pixel_aligned_scene_shapes():
    s = pixel_aligned_scene(8, inputs=3, targets=2)
    assert s["means"].shape == (1, 3 * 64, 3) and s["c2w"].shape == (1, 2, 4, 4)
    assert bool(torch.isfinite(s["means"]).all()) and float(s["scales"].min()) > 0


def test_bench_render_cli_writes_json_and_markdown(tmp_path, capsys):
    rc = main(["bench", "render", "--sizes", "12", "16", "--reference-sizes", "12", "--repeats", "1",
               "--out", str(tmp_path)])  # fmt: skip
    assert rc == 0
    result = json.loads((tmp_path / "render.json").read_text())
    rows = {r["size"]: r for r in result["rows"]}
    assert set(rows) == {12, 16}
    for row in rows.values():
        assert "error" not in row, row
        assert row["gaussians"] == 4 * row["size"] ** 2
        assert 0 < row["forward_s"] <= row["fwd_bwd_s"]
        assert 0 < row["pairs"] <= row["candidates"] and row["peak_mem_mib"] > 0
    assert rows[12]["reference_max_abs_diff_rgb"] < 1e-4
    assert "| size |" in (tmp_path / "render.md").read_text()
    assert "reference_forward_s" in capsys.readouterr().out
