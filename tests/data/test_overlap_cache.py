"""``rayzer data overlap``: per-scene overlap statistics cached as ``overlap.json``, and the
training stream reading them.

The scenes are tiny synthetic orbit clips written as scene folders: one with cameras and depth
(geometric overlap), one with cameras only and one unposed (both label-free image overlap).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import pytest
import torch

from _tiny import TINY_MODEL, tiny_data
from rayzer.cli import main
from rayzer.config import load_config
from rayzer.data import overlap_cache
from rayzer.data.clip_sources import open_clip_sources
from rayzer.data.overlap import OVERLAP_FILE, geometric_overlap
from rayzer.data.scene_folder import write_scene_folder
from rayzer.data.stream import BatchLayout, TrainStream
from rayzer.data.synthetic import SynthConfig, render_clip

FRAMES = 8
SIDE = 32  # = overlap_cache.DEPTH_SIDE: the geometric curve is measured at the stored size


@pytest.fixture(scope="module")
def clip():
    return render_clip(7, SynthConfig(family="orbit", frames=FRAMES, height=SIDE, width=SIDE))


@pytest.fixture
def dataset(tmp_path: Path, clip) -> Path:
    """scenes/{depth: cameras + depth, posed: cameras only, unposed: frames.json only}."""
    root = tmp_path / "scenes"
    write_scene_folder(root / "depth", clip.images, clip.c2w, clip.K, depth=clip.depth)
    write_scene_folder(root / "posed", clip.images, clip.c2w, clip.K)
    write_scene_folder(root / "unposed", clip.images)
    return root


@pytest.fixture
def compute_calls(monkeypatch) -> list[str]:
    """The scene names :func:`overlap_cache.compute_scene_overlap` is called for."""
    calls: list[str] = []
    real = overlap_cache.compute_scene_overlap

    def counting(scene_dir, method="auto"):
        calls.append(Path(scene_dir).name)
        return real(scene_dir, method)

    monkeypatch.setattr(overlap_cache, "compute_scene_overlap", counting)
    return calls


def _rows(table: str) -> dict[str, list[str]]:
    """Markdown table rows by scene name: the cells after the name."""
    rows = {}
    for line in table.strip().splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return rows


def test_cli_caches_each_scene_skips_fresh_ones_and_recomputes_with_force(
    dataset, compute_calls, capsys
):
    assert main(["data", "overlap", str(dataset)]) == 0
    out, err = capsys.readouterr()
    assert sorted(compute_calls) == ["depth", "posed", "unposed"]
    assert "[1/3]" in err and "[3/3]" in err
    rows = _rows(out)
    assert {name: row[:3] for name, row in rows.items()} == {
        "depth": ["computed", "geometric", str(FRAMES)],
        "posed": ["computed", "image", str(FRAMES)],
        "unposed": ["computed", "image", str(FRAMES)],
    }
    files = {name: dataset / name / OVERLAP_FILE for name in rows}
    for name, path in files.items():
        doc = json.loads(path.read_text())
        assert doc["num_frames"] == FRAMES and len(doc["overlap"]) == FRAMES
        assert doc["fingerprint"] == overlap_cache.scene_fingerprint(dataset / name)
        assert rows[name][3] == f"{doc['overlap'][1]:.3f}"  # the @1 column
    written = {name: path.stat().st_mtime_ns for name, path in files.items()}

    compute_calls.clear()
    assert main(["data", "overlap", str(dataset)]) == 0
    assert compute_calls == []
    assert {row[0] for row in _rows(capsys.readouterr().out).values()} == {"cached"}
    assert {name: path.stat().st_mtime_ns for name, path in files.items()} == written

    assert main(["data", "overlap", str(dataset / "posed"), "--force"]) == 0
    assert compute_calls == ["posed"]
    assert _rows(capsys.readouterr().out)["posed"][0] == "computed"

    # a training manifest names the scenes too
    manifest = dataset.parent / "manifest.txt"
    manifest.write_text("scenes/unposed  # one scene\n")
    assert main(["data", "overlap", str(manifest), "--force"]) == 0
    assert compute_calls == ["posed", "unposed"]
    assert list(_rows(capsys.readouterr().out)) == ["unposed"]


def test_a_changed_frame_makes_only_its_scene_stale(dataset, compute_calls, capsys):
    assert main(["data", "overlap", str(dataset)]) == 0
    compute_calls.clear()
    image = dataset / "unposed" / "images" / "003.png"
    stat = image.stat()
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert overlap_cache.cached_scene_overlap(dataset / "unposed") is None
    assert main(["data", "overlap", str(dataset)]) == 0
    assert compute_calls == ["unposed"]


def test_geometric_cache_matches_the_overlap_of_the_exact_depth(dataset, clip):
    curve = overlap_cache.compute_scene_overlap(dataset / "depth")
    expected = geometric_overlap(clip.depth, clip.c2w, clip.K, size=SIDE)
    assert curve.method == "geometric"
    assert curve.overlap == pytest.approx(expected.overlap, abs=1e-6)


def test_json_output_and_plot(dataset, tmp_path, capsys):
    plot = tmp_path / "curves.png"
    assert main(["data", "overlap", str(dataset), "--json", "--plot", str(plot)]) == 0
    docs = {d["scene"]: d for d in json.loads(capsys.readouterr().out)}
    assert set(docs) == {"depth", "posed", "unposed"}
    for doc in docs.values():
        assert doc["status"] == "computed" and doc["error"] is None
        assert doc["overlap"][0] == 1.0 and doc["max_gap"] == FRAMES - 1
        assert doc["overlap_gap_10"] is None  # the clip is shorter than 10 frames
        assert 0 <= doc["widest_gap_0.5"] <= FRAMES - 1
        assert doc["overlap_gap_1"] == pytest.approx(doc["overlap"][1], abs=1e-4)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_scenes_are_named_and_the_others_still_cached(dataset, capsys):
    (dataset / "posed" / "images" / "002.png").write_bytes(b"not a png")
    assert main(["data", "overlap", str(dataset)]) != 0
    out, err = capsys.readouterr()
    rows = _rows(out)
    assert rows["posed"][0] == "failed" and rows["depth"][0] == rows["unposed"][0] == "computed"
    assert "overlap failed for 1 of 3 scene(s)" in err and "002.png" in err
    assert not (dataset / "posed" / OVERLAP_FILE).exists()
    assert (dataset / "unposed" / OVERLAP_FILE).is_file()
    # geometric overlap needs depth: asked for on a scene without, it fails with the reason
    assert main(["data", "overlap", str(dataset / "unposed"), "--method", "geometric"]) != 0
    assert "needs cameras.json and per-frame depth maps" in capsys.readouterr().err


def _stream(dataset: Path) -> TrainStream:
    cfg = load_config(
        "tiny-cpu",
        [
            *TINY_MODEL,
            *tiny_data(16),
            f"data.source={dataset}",
            "data.view_sampler=overlap",
            "data.num_input_views=2",
            "data.num_target_views=2",
        ],
    )
    return TrainStream(cfg.data, 0, BatchLayout(3))


def _forbid_computing(monkeypatch) -> None:
    def fail(*_, **__):
        raise AssertionError("overlap computed although a fresh cache exists")

    monkeypatch.setattr(overlap_cache, "image_overlap", fail)
    monkeypatch.setattr(overlap_cache, "geometric_overlap", fail)


def test_the_training_stream_uses_the_cache(dataset, monkeypatch, capsys):
    assert main(["data", "overlap", str(dataset)]) == 0
    _forbid_computing(monkeypatch)
    batch = _stream(dataset).micro_batch(0)
    assert batch["image"].shape[:2] == (3, 4) and torch.isfinite(batch["image"]).all()
    # without its cache the same scene would be computed (and here fail)
    (dataset / "depth" / OVERLAP_FILE).unlink()
    sources = open_clip_sources(_stream(dataset).cfg)
    clip = [p.name for p in sources[0].paths].index("depth")
    with pytest.raises(AssertionError, match="computed although"):
        sources[0].overlap_curve(clip)


def test_missing_caches_are_computed_with_one_warning(dataset, caplog):
    source = open_clip_sources(_stream(dataset).cfg)[0]
    with caplog.at_level(logging.WARNING, logger="rayzer.data.real_clips"):
        curves = [source.overlap_curve(c) for c in range(len(source))]
    warnings = [r for r in caplog.records if "rayzer data overlap" in r.getMessage()]
    assert len(warnings) == 1
    assert [c.method for c in curves] == [
        "geometric" if p.name == "depth" else "image" for p in source.paths
    ]
    assert not any((p / OVERLAP_FILE).exists() for p in source.paths)  # training never writes


def test_an_invalid_cache_is_a_clear_error_naming_the_file(dataset, capsys):
    assert main(["data", "overlap", str(dataset)]) == 0
    capsys.readouterr()
    bad = dataset / "unposed" / OVERLAP_FILE
    bad.write_text("{not json")
    source = open_clip_sources(_stream(dataset).cfg)[0]
    clip = [p.name for p in source.paths].index("unposed")
    with pytest.raises(ValueError, match=f"{bad}: unreadable overlap statistics"):
        source.overlap_curve(clip)
    # a curve for another frame count, under the right fingerprint
    doc = {
        "overlap": [1.0, 0.5],
        "method": "image",
        "num_frames": 2,
        "fingerprint": overlap_cache.scene_fingerprint(dataset / "unposed"),
    }
    bad.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=f"{bad}: a curve of 2 frames for a scene of {FRAMES}"):
        open_clip_sources(_stream(dataset).cfg)[0].overlap_curve(clip)
    # the CLI replaces an invalid cache
    assert main(["data", "overlap", str(dataset)]) == 0
    assert _rows(capsys.readouterr().out)["unposed"][0] == "computed"
    assert json.loads(bad.read_text())["num_frames"] == FRAMES


def test_a_copied_dataset_keeps_a_fresh_cache_when_times_are_kept(dataset, tmp_path, capsys):
    assert main(["data", "overlap", str(dataset)]) == 0
    copy = shutil.copytree(dataset, tmp_path / "copy")  # copy2: keeps modification times
    assert overlap_cache.cached_scene_overlap(copy / "depth") is not None


def test_parallel_jobs_write_the_same_caches(dataset, tmp_path, capsys):
    serial = shutil.copytree(dataset, tmp_path / "serial")
    assert main(["data", "overlap", str(serial)]) == 0
    assert main(["data", "overlap", str(dataset), "--jobs", "2"]) == 0
    out, err = capsys.readouterr()
    assert "[3/3]" in err
    rows = _rows(out.rsplit("| scene |", 1)[1])  # the parallel run's table, in scene order
    assert list(rows) == ["depth", "posed", "unposed"]
    assert {row[0] for row in rows.values()} == {"computed"}
    for name in ("depth", "posed", "unposed"):
        doc = json.loads((dataset / name / OVERLAP_FILE).read_text())
        ref = json.loads((serial / name / OVERLAP_FILE).read_text())
        assert doc["method"] == ref["method"]
        assert doc["overlap"] == pytest.approx(ref["overlap"], abs=1e-5)
    assert main(["data", "overlap", str(dataset), "--jobs", "0"]) != 0
    assert "--jobs must be >= 1" in capsys.readouterr().err
