"""``rayzer bench infer``: argument errors are clear, the report has the rows it promises (a
stubbed run: no model is trained or timed here)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from PIL import Image

from rayzer.bench import infer as infer_bench


def _args(images: Path, **kw) -> argparse.Namespace:
    base = {"images": images, "views": 2, "ckpt": ["m=ckpt"], "src": [], "threads": 1}
    base.update(repeats=1, out=None)
    base.update(kw)
    return argparse.Namespace(**base)


def _photos(folder: Path, n: int) -> Path:
    folder.mkdir()
    for i in range(n):
        Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(folder / f"{i:03d}.png")
    return folder


def test_bad_arguments_are_named(tmp_path: Path):
    photos = _photos(tmp_path / "p", 2)
    with pytest.raises(ValueError, match="--ckpt expects LABEL=VALUE"):
        infer_bench.run(_args(photos, ckpt=["nolabel"]))
    with pytest.raises(ValueError, match="at least one --ckpt"):
        infer_bench.run(_args(photos, ckpt=[]))
    with pytest.raises(ValueError, match="2 photos, --views asks for 3"):
        infer_bench.run(_args(photos, views=3))


def test_rows_per_model_and_tree(tmp_path: Path, monkeypatch):
    photos = _photos(tmp_path / "p", 3)
    calls = []

    def fake_run(ckpt, images, out, threads, src):
        calls.append((ckpt, sorted(p.name for p in images.iterdir()), threads, src))
        stages = {"render_inputs": 1.0, "render_novel": 2.0, "total": 4.0}
        wall = 5.0 if src is None else 12.0
        return {"wall_s": wall, "load_before": 1.0, "load_after": 2.0, "stages_s": stages,
                "summary_peak_rss_mb": 500.0, "torch_threads": threads}  # fmt: skip

    monkeypatch.setattr(infer_bench, "run_once", fake_run)
    result = infer_bench.run(_args(photos, src=["old=/some/tree"], repeats=2))
    assert len(calls) == 4  # 2 repeats x (this tree, old tree), alternating
    assert [c[3] for c in calls] == [None, "/some/tree", None, "/some/tree"]
    assert calls[0][1] == ["000.png", "001.png"]  # the first --views photos
    rows = {r["tree"]: r for r in result["rows"]}
    assert rows["this"]["meets_target"] and not rows["old"]["meets_target"]  # 5 s vs 12 s
    assert rows["this"]["render_s"] == 3.0
    assert "| m | this | 1 | 5 |" in infer_bench.to_markdown(result)
