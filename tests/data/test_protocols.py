"""Evaluation protocols (even / random target sampling) and index files (pixelSplat / LVSM /
RayZer JSON): exact values, invariants, determinism by seed, validation and the CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from rayzer.cli import main
from rayzer.data.protocols import (
    ViewSplit,
    build_index,
    even_split,
    make_index,
    random_split,
    read_index,
    write_index,
)

REAL = Path(
    os.environ.get(
        "RAYZER_REAL_DATA", Path(__file__).resolve().parents[3] / "shared" / "data" / "real"
    )
)


def _invariants(split: ViewSplit, n: int, C: int, T: int, span: int | None = None) -> None:
    assert len(split.context) == C and len(split.target) == T
    assert list(split.context) == sorted(split.context) and list(split.target) == sorted(
        split.target
    )
    assert not set(split.context) & set(split.target)
    views = split.views
    assert views[0] >= 0 and views[-1] < n
    # both window ends are context views: targets are interpolated
    assert views[0] in split.context and views[-1] in split.context
    assert views[0] < min(split.target) and max(split.target) < views[-1]
    if span is not None:
        assert views[-1] - views[0] <= span - 1


def test_even_exact_values() -> None:
    assert even_split(10, 2, 1) == ViewSplit((0, 9), (5,))
    # pixelSplat-style 2 + 3 over 100 frames: 5 evenly spaced frames, ends as context
    assert even_split(100, 2, 3) == ViewSplit((0, 99), (25, 50, 74))
    # RayZer DL3DV-style 16 + 8 in a 24-frame scene: every frame used, targets evenly interleaved
    s = even_split(24, 16, 8)
    assert s.target == (3, 5, 8, 10, 13, 15, 18, 20)
    assert s.views == tuple(range(24))
    # a centred window
    assert even_split(100, 2, 1, span=11) == ViewSplit((44, 54), (49,))


@pytest.mark.parametrize(
    ("n", "C", "T", "span"), [(5, 2, 3, None), (57, 4, 3, None), (300, 16, 8, 100), (30, 3, 1, 7)]
)
def test_split_invariants(n, C, T, span) -> None:
    _invariants(even_split(n, C, T, span), n, C, T, span)
    for seed in range(20):
        _invariants(random_split(n, C, T, seed=seed, scene="s", span=span), n, C, T, span)


def test_random_is_deterministic_by_seed_and_scene() -> None:
    a = random_split(200, 4, 4, seed=7, scene="abc", span=60)
    assert a == random_split(200, 4, 4, seed=7, scene="abc", span=60)
    others = {random_split(200, 4, 4, seed=s, scene="abc", span=60) for s in range(8)}
    assert len(others) == 8
    assert random_split(200, 4, 4, seed=7, scene="abd", span=60) != a
    # a scene's split does not depend on the other scenes in the index
    full = build_index({"x": 120, "abc": 200, "y": 80}, "random", 4, 4, seed=7, span=60)
    assert full["abc"] == a
    assert build_index({"abc": 200}, "random", 4, 4, seed=7, span=60)["abc"] == a


def test_random_covers_every_interior_frame() -> None:
    """Over many seeds every interior frame is drawn as a target and the ends never are."""
    counts = np.zeros(12, int)
    for seed in range(400):
        for t in random_split(12, 2, 2, seed=seed, scene="s").target:
            counts[t] += 1
    assert counts[0] == counts[11] == 0
    assert counts[1:11].min() > 0.5 * counts[1:11].mean()


def test_too_few_frames_and_bad_arguments() -> None:
    assert even_split(4, 2, 3) is None
    assert random_split(4, 2, 3, seed=0) is None
    with pytest.raises(ValueError, match="num_context must be >= 2"):
        even_split(10, 1, 1)
    with pytest.raises(ValueError, match="num_target"):
        even_split(10, 2, 0)
    with pytest.raises(ValueError, match="span 4 is shorter"):
        random_split(10, 2, 3, seed=0, span=4)
    with pytest.raises(ValueError, match="unknown protocol"):
        build_index({"a": 10}, "uniform", 2, 1)


def test_positions_follow_rayzer_loader() -> None:
    s = ViewSplit(context=(10, 30, 50), target=(20, 40))
    assert s.views == (10, 20, 30, 40, 50)
    assert s.positions() == ([0, 2, 4], [1, 3])


def test_index_round_trip_and_reading_published_format(tmp_path: Path) -> None:
    index = build_index({"a": 50, "b": 3, "c": 40}, "even", 2, 3)
    path = write_index(index, tmp_path / "idx.json")
    raw = json.loads(path.read_text())
    assert raw == {
        "a": {"context": [0, 49], "target": [12, 25, 37]},
        "b": None,
        "c": {"context": [0, 39], "target": [10, 20, 29]},
    }
    assert read_index(path) == index
    # a file in the published pixelSplat / LVSM layout
    (tmp_path / "pub.json").write_text(
        '{"5aca87f95a9412c6": {"context": [58, 133], "target": [111, 89, 77]}, "x": null}'
    )
    pub = read_index(tmp_path / "pub.json", frame_counts={"5aca87f95a9412c6": 150, "x": 10})
    assert pub["5aca87f95a9412c6"].target == (111, 89, 77) and pub["x"] is None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[1, 2]", "expected an object"),
        ('{"a": {"context": [0, 5]}}', "expected {'context'"),
        ('{"a": {"context": [0, -5], "target": [2]}}', "non-negative integers"),
        ('{"a": {"context": [0, 5], "target": []}}', "non-empty list"),
        ('{"a": {"context": [0, 5, 5], "target": [2]}}', "repeated"),
        ('{"a": {"context": [0, 50], "target": [2]}}', "out of range for 10 frames"),
        ('{"zz": {"context": [0, 5], "target": [2]}}', "no such scene"),
        ('{"a": ', "invalid JSON"),
    ],
)
def test_bad_index_files(content: str, message: str, tmp_path: Path) -> None:
    (tmp_path / "i.json").write_text(content)
    with pytest.raises(ValueError, match=message):
        read_index(tmp_path / "i.json", frame_counts={"a": 10})


def test_make_index_on_real_scenes(tmp_path: Path, capsys) -> None:
    if not (REAL / "fox_instantngp").is_dir():
        pytest.skip("shared real data not available")
    out = tmp_path / "idx.json"
    assert (
        main(
            [
                "data",
                "make-index",
                "--data",
                str(REAL),
                "--out",
                str(out),
                "--protocol",
                "random",
                "--seed",
                "3",
            ]
        )
        == 0
    )
    assert "6 scene(s) (0 skipped" in capsys.readouterr().out
    index = read_index(
        out,
        frame_counts={
            "fox_instantngp": 67,
            "nerf_synthetic_lego": 100,
            "colosseum_video": 24,
            "middlebury_templeSparseRing": 16,
            "mipnerf360_kitchen_subset": 25,
            "vggsfm_statue": 9,
        },
    )
    assert all(len(s.context) == 2 and len(s.target) == 3 for s in index.values())
    # RayZer DL3DV style needs 24 frames: the 16- and 9-frame scenes are skipped (null)
    make_index(REAL, out, "even", style="rayzer-dl3dv")
    index = read_index(out)
    assert index["middlebury_templeSparseRing"] is None and index["vggsfm_statue"] is None
    assert index["colosseum_video"].views == tuple(range(24))
    assert len(index["fox_instantngp"].context) == 16 and len(index["fox_instantngp"].target) == 8


def test_make_index_on_a_chunk_source(tmp_path: Path) -> None:
    """Indices can be made straight from a RealEstate10K chunk (frames counted, not decoded)."""
    cams = torch.zeros(30, 18)
    cams[:, :4] = torch.tensor([1.0, 1.0, 0.5, 0.5])
    cams[:, 6:] = torch.eye(4)[:3].reshape(-1)
    scenes = [
        {
            "key": "k1",
            "cameras": cams,
            "images": [torch.tensor([255, 216], dtype=torch.uint8)] * 30,
        },
        {
            "key": "k2",
            "cameras": cams[:4],
            "images": [torch.tensor([255, 216], dtype=torch.uint8)] * 4,
        },
    ]
    (tmp_path / "test").mkdir()
    torch.save(scenes, tmp_path / "test" / "000000.torch")
    index = make_index(tmp_path / "test", tmp_path / "idx.json", "even")
    assert index == {"k1": ViewSplit((0, 29), (7, 15, 22)), "k2": None}


def test_make_index_fails_when_no_scene_is_long_enough(tmp_path: Path, capsys) -> None:
    if not (REAL / "vggsfm_statue").is_dir():
        pytest.skip("shared real data not available")
    code = main(
        [
            "data",
            "make-index",
            "--data",
            str(REAL / "vggsfm_statue"),
            "--out",
            str(tmp_path / "i.json"),
            "--context",
            "8",
            "--target",
            "4",
        ]
    )
    assert code != 0 and "no scene has the 12 frames" in capsys.readouterr().err
    assert not (tmp_path / "i.json").exists()
