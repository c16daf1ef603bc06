"""Training data from real sources: scene folders, manifests, RealEstate10K chunks and mixes.

Small scene folders are written from synthetic clips (exact cameras, 24×32 non-square images),
so every test but the last one runs without the shared real data.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from _tiny import TINY_MODEL, tiny_data
from rayzer.cli import main
from rayzer.config import load_config
from rayzer.data.clip_sources import (
    Clip,
    ClipSource,
    SyntheticClips,
    choose_source,
    open_clip_sources,
)
from rayzer.data.scene_folder import write_scene_folder
from rayzer.data.stream import BatchLayout, TrainStream, make_loader, sample_generator
from rayzer.data.synthetic import SynthConfig, render_clip
from rayzer.geometry import look_at

REAL = Path(
    os.environ.get(
        "RAYZER_REAL_DATA", Path(__file__).resolve().parents[3] / "shared" / "data" / "real"
    )
)
SIZE = 16  # training resolution of these tests


def write_scene(folder: Path, seed: int, frames: int, posed: bool = True, hw=(24, 32)) -> Path:
    """A scene folder from a synthetic clip: exact OpenCV cameras, pixel intrinsics."""
    cfg = SynthConfig(family="orbit", frames=frames, height=hw[0], width=hw[1])
    clip = render_clip(seed, cfg)
    cams = (clip.c2w, clip.K) if posed else (None, None)
    return write_scene_folder(folder, clip.images, *cams)


def write_chunk(path: Path, scenes: dict[str, Path]) -> Path:
    """A pixelSplat chunk of scene folders, written from the format facts: cameras = normalised
    fx fy cx cy, two unused values, row-major 3×4 w2c; images = JPEG bytes."""
    examples = []
    for key, folder in scenes.items():
        doc = json.loads((folder / "cameras.json").read_text())
        cams, images = [], []
        for fr in doc["frames"]:
            W, H = fr["width"], fr["height"]
            w2c = np.linalg.inv(np.array(fr["c2w"]))[:3]
            cams.append(
                [fr["fx"] / W, fr["fy"] / H, fr["cx"] / W, fr["cy"] / H, 0, 0, *w2c.ravel()]
            )
            buf = io.BytesIO()
            Image.open(folder / fr["file"]).convert("RGB").save(buf, "JPEG", quality=95)
            images.append(torch.frombuffer(bytearray(buf.getvalue()), dtype=torch.uint8))
        examples.append(
            {"key": key, "cameras": torch.tensor(cams, dtype=torch.float32), "images": images}
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(examples, path)
    return path


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """scenes/{a: 12 frames, b: 20 frames, c: 12 unposed, short: 3}, chunks/train/000.torch with
    a and b, and a manifest listing a and b."""
    root = tmp_path_factory.mktemp("train_data")
    scenes = root / "scenes"
    write_scene(scenes / "a", 11, 12)
    write_scene(scenes / "b", 12, 20)
    write_scene(scenes / "c", 13, 12, posed=False)
    write_scene(scenes / "short", 14, 3)
    write_chunk(root / "chunks" / "train" / "000.torch", {"a": scenes / "a", "b": scenes / "b"})
    (root / "manifest.txt").write_text("# two scenes\nscenes/a\n\n" + str(scenes / "b") + "\n")
    return root


def config(source: str, *extra: str):
    return load_config(
        "tiny-cpu",
        [*TINY_MODEL, *tiny_data(SIZE), f"data.source={source}", *extra],
    )


# ------------------------------------------------------------------------------------------------
# sources


def test_folder_manifest_and_chunk_sources_agree(dataset):
    cfg = config(f"{dataset / 'scenes'},{dataset / 'manifest.txt'},{dataset / 'chunks'}").data
    folder, manifest, chunks = open_clip_sources(cfg)
    assert [p.name for p in folder.paths] == ["a", "b", "c"]  # "short" is skipped
    assert [k.name for k in folder.skipped] == [str(dataset / "scenes" / "short")]
    assert [p.name for p in manifest.paths] == ["a", "b"]
    assert chunks.keys == ["a", "b"] and [chunks.num_frames(i) for i in (0, 1)] == [12, 20]
    frames = torch.tensor([0, 3, 7, 11])
    for clip in (0, 1):
        a, b = folder.load(clip, frames), chunks.load(clip, frames)
        assert a.images.shape == b.images.shape == (4, 3, SIZE, SIZE)
        torch.testing.assert_close(b.c2w, a.c2w, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(b.K, a.K, atol=1e-4, rtol=1e-5)
        assert (a.images - b.images).abs().mean() < 0.03  # PNG vs JPEG of the same pixels
        # 24x32 -> 16x21 (round(32·16/24) = 21), crop 2 columns on the left
        raw = json.loads((folder.paths[clip] / "cameras.json").read_text())["frames"][0]
        s = 16 / 24
        expected = [raw["fx"] * 21 / 32, raw["fy"] * s, raw["cx"] * 21 / 32 - 2, raw["cy"] * s]
        torch.testing.assert_close(a.K[0], torch.tensor(expected, dtype=torch.float32))


def test_folder_and_chunk_sources_agree_at_a_non_square_size(dataset):
    """data.image_size=[16, 24]: both real sources resize the 24×32 frames to cover 16 × 24
    (18 × 24: the width sets the scale) and crop one row on top, intrinsics to match."""
    cfg = config(f"{dataset / 'scenes'},{dataset / 'chunks'}", "data.image_size=[16,24]").data
    folder, chunks = open_clip_sources(cfg)
    frames = torch.tensor([0, 5, 11])
    for clip in (0, 1):
        a, b = folder.load(clip, frames), chunks.load(clip, frames)
        assert a.images.shape == b.images.shape == (3, 3, 16, 24)
        torch.testing.assert_close(b.K, a.K, atol=1e-4, rtol=1e-5)
        assert (a.images - b.images).abs().mean() < 0.03  # PNG vs JPEG of the same pixels
        raw = json.loads((folder.paths[clip] / "cameras.json").read_text())["frames"][0]
        sx, sy = 24 / 32, 18 / 24
        expected = [raw["fx"] * sx, raw["fy"] * sy, raw["cx"] * sx, raw["cy"] * sy - 1]
        torch.testing.assert_close(a.K[0], torch.tensor(expected, dtype=torch.float32))


def test_stream_samples_are_reproducible_and_independent_of_workers(dataset):
    cfg = config(f"{dataset / 'scenes'},{dataset / 'chunks'}", "data.source_weights=[1,2]").data
    one = TrainStream(cfg, 0, BatchLayout(4))
    again = TrainStream(cfg, 0, BatchLayout(4))
    for k in (0, 5, 13):
        x, y = one.sample(k), again.sample(k)
        assert x.keys() == y.keys()
        for key in x:
            assert torch.equal(x[key].nan_to_num(7.0), y[key].nan_to_num(7.0)), key
    other = TrainStream(cfg, 1, BatchLayout(4))
    assert not torch.equal(one.micro_batch(0)["image"], other.micro_batch(0)["image"])
    # 2 ranks × 2 micro-batches of 1 sample hold the same global batch as 1 × 4
    layout = BatchLayout(4, world_size=2, grad_accum=2)
    parts = [
        TrainStream(cfg, 0, layout, rank=r).micro_batch(a)["image"] for a in (0, 1) for r in (0, 1)
    ]
    assert torch.equal(torch.cat(parts), one.micro_batch(0)["image"])
    # 0 and 2 DataLoader workers give the same batches, in order
    stream = TrainStream(cfg, 0, BatchLayout(2), start=1, limit=4)
    serial = list(make_loader(stream, num_workers=0))
    parallel = list(make_loader(stream, num_workers=2))
    assert len(serial) == len(parallel) == 4
    for x, y in zip(serial, parallel):
        for key in x:
            assert torch.equal(x[key].nan_to_num(7.0), y[key].nan_to_num(7.0)), key
    assert {int(s) for b in serial for s in b["source_index"]} <= {0, 1}


def test_batches_have_the_synthetic_stream_keys_and_conventions(dataset):
    cfg = config(f"synthetic,{dataset / 'scenes'}")
    stream = TrainStream(cfg.data, 0, BatchLayout(8))
    b = stream.micro_batch(0)
    assert b["image"].shape == (8, 4, 3, SIZE, SIZE) and b["image"].dtype == torch.float32
    assert b["c2w"].shape == (8, 4, 4, 4) and b["K"].shape == (8, 4, 4)
    assert b["input_index"].shape == (8, 2) and b["target_index"].shape == (8, 2)
    assert set(b["source_index"].tolist()) == {0, 1}
    posed = b["posed"]
    real_unposed = (b["source_index"] == 1) & (b["clip_id"] == 2)  # scene c has no cameras
    assert torch.equal(~posed, real_unposed)
    assert torch.isnan(b["c2w"][~posed]).all() and torch.isnan(b["K"][~posed]).all()
    # posed samples: canonical middle view = identity, mean camera distance 1
    torch.testing.assert_close(b["c2w"][posed, 2], torch.eye(4).expand(int(posed.sum()), 4, 4))
    dist = b["c2w"][posed][..., :3, 3].norm(dim=-1).sum(-1) / 3
    torch.testing.assert_close(dist, torch.ones_like(dist))
    # the trainer's model-dependent switch: LVSM skips scenes without cameras
    lvsm = TrainStream(cfg.data, 0, BatchLayout(8), require_poses=True)
    assert lvsm.micro_batch(0)["posed"].all()


def test_spans_follow_the_curriculum_and_scene_length(dataset):
    cfg = config(
        str(dataset / "scenes"),
        "data.span_min=4",
        "data.span_start_max=5",
        "data.span_end_max=16",
        "data.curriculum_steps=3",
    )
    stream = TrainStream(cfg.data, 0, BatchLayout(4))
    lengths = stream.sources[0].frames
    for step in range(6):
        b = stream.micro_batch(step)
        span = b["index"][:, -1] - b["index"][:, 0] + 1
        cap = torch.tensor(
            [min(stream.curriculum.max_span(step), lengths[c]) for c in b["clip_id"]]
        )
        assert torch.all(span >= 4) and torch.all(span <= cap), (step, span, cap)
        if step == 0:
            assert torch.all(span <= 5)


class _FakeSource(ClipSource):
    """Blank clips with a camera arc: exercises the stream without decoding anything."""

    def __init__(self, name: str, frames: int):
        self.name, self.frames, self.skipped = name, frames, []

    def __len__(self) -> int:
        return 3

    def num_frames(self, clip: int) -> int:
        return self.frames

    def clip_id(self, clip: int) -> int:
        return clip

    def load(self, clip: int, frames: torch.Tensor, size: int | None = None) -> Clip:
        a = frames.double() * 0.1
        eye = torch.stack((3 * a.cos(), 3 * a.sin(), torch.ones_like(a)), -1)
        c2w = look_at(
            eye, torch.zeros_like(eye), torch.tensor([0.0, 0.0, 1.0], dtype=a.dtype).expand_as(eye)
        )
        K = torch.tensor([10.0, 10.0, 8.0, 8.0]).expand(len(frames), 4)
        return Clip(torch.zeros(len(frames), 3, SIZE, SIZE), c2w.float(), K)


def test_mix_weights_are_respected():
    weights = [0.6, 0.3, 0.1]
    cfg = config("x,y,z", f"data.source_weights={weights}").data  # paths never opened
    sources = [_FakeSource(n, f) for n, f in (("x", 8), ("y", 12), ("z", 30))]
    stream = TrainStream(cfg, 3, BatchLayout(4), sources=sources)
    n = 2000
    picked = torch.tensor([int(stream.sample(i)["source_index"]) for i in range(n)])
    counts = torch.bincount(picked, minlength=3).double()
    for count, w in zip(counts, weights):
        sd = math.sqrt(n * w * (1 - w))
        assert abs(count - n * w) < 4 * sd, (counts, weights)
    # the choice is a pure function of (seed, sample number)
    probs = torch.tensor(cfg.source_probabilities(), dtype=torch.float64)
    assert [choose_source(probs, sample_generator(3, i)) for i in range(50)] == picked[:50].tolist()


# ------------------------------------------------------------------------------------------------
# bad input


def test_bad_sources_raise_clear_errors(dataset, tmp_path, caplog):
    with pytest.raises(FileNotFoundError, match="no_such_dir"):
        TrainStream(config(str(tmp_path / "no_such_dir")).data, 0, BatchLayout(4))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no scene folders"):
        TrainStream(config(str(tmp_path / "empty")).data, 0, BatchLayout(4))
    with pytest.raises(ValueError, match=r"no usable scene.*3 frames < span_min = 4"):
        TrainStream(config(str(dataset / "scenes" / "short")).data, 0, BatchLayout(4))
    with caplog.at_level(logging.WARNING):
        TrainStream(config(str(dataset / "scenes")).data, 0, BatchLayout(4))
    assert "skipping 1 scene" in caplog.text and "short: 3 frames < span_min" in caplog.text
    with pytest.raises(ValueError, match=r"source_weights has 1 value.*2 entries"):
        config(f"synthetic,{dataset / 'scenes'}", "data.source_weights=[1.0]")
    with pytest.raises(ValueError, match="source_weights must be finite and > 0"):
        config(f"synthetic,{dataset / 'scenes'}", "data.source_weights=[1.0,0]")
    with pytest.raises(ValueError, match="empty entry"):
        config("synthetic,")
    bad_manifest = tmp_path / "list.txt"
    bad_manifest.write_text(f"{dataset / 'scenes' / 'a'}\nmissing_scene\n")
    with pytest.raises(
        FileNotFoundError, match=r"list\.txt line 2: scene folder not found: .*missing_scene"
    ):
        TrainStream(config(str(bad_manifest)).data, 0, BatchLayout(4))
    bad_manifest.write_text("# nothing\n")
    with pytest.raises(ValueError, match="lists no scene folder"):
        TrainStream(config(str(bad_manifest)).data, 0, BatchLayout(4))
    (tmp_path / "re10k" / "test").mkdir(parents=True)
    shutil.copy(dataset / "chunks" / "train" / "000.torch", tmp_path / "re10k" / "test" / "0.torch")
    with pytest.raises(FileNotFoundError, match="no train/ folder"):
        TrainStream(config(str(tmp_path / "re10k")).data, 0, BatchLayout(4))
    (tmp_path / "broken.torch").write_bytes(b"not a chunk")
    with pytest.raises(ValueError, match=r"broken\.torch: cannot read the chunk"):
        TrainStream(config(str(tmp_path / "broken.torch")).data, 0, BatchLayout(4))


# ------------------------------------------------------------------------------------------------
# end to end


@pytest.mark.skipif(not REAL.is_dir(), reason="shared real data not available")
def test_rayzer_train_on_the_shared_real_scenes(tmp_path):
    out = tmp_path / "run"
    args = [
        "train",
        "--config",
        "tiny-cpu",
        *TINY_MODEL,
        *tiny_data(SIZE),
        f"data.source={REAL}",
        "train.steps=2",
        "train.batch_size=2",
        "train.log_every=1",
        "train.image_every=0",
        "train.num_threads=1",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    assert len(losses) == 2 and all(math.isfinite(x) and x > 0 for x in losses)
    assert (out / "checkpoints" / "step_000002" / "model.safetensors").is_file()


def test_rayzer_train_with_a_missing_source_fails_before_writing_anything(tmp_path, capsys):
    out = tmp_path / "run"
    missing = tmp_path / "no_such_dataset"
    args = ["train", "--config", "tiny-cpu", *TINY_MODEL, f"data.source={missing}"]
    assert main([*args, "train.steps=1", "--out", str(out)]) == 2
    assert "no_such_dataset" in capsys.readouterr().err
    assert not out.exists()  # no run folder that looks like a run


def test_progressive_resolution_loads_the_first_steps_smaller(dataset):
    """data.low_res_*: the same samples (clips, frames, cameras) at a smaller size early on."""
    source = f"synthetic,{dataset / 'scenes'}"
    full = TrainStream(config(source).data, 0, BatchLayout(4))
    cfg = config(source, "data.low_res_size=8", "data.low_res_steps=2").data
    low = TrainStream(cfg, 0, BatchLayout(4))
    assert [cfg.image_size_at(s) for s in (0, 1, 2, 9)] == [8, 8, SIZE, SIZE]
    for sample_id in range(8):  # steps 0 and 1
        a, b = full.sample(sample_id), low.sample(sample_id)
        assert b["image"].shape[-2:] == (8, 8)
        for key in ("index", "input_index", "target_index", "clip_id", "source_index"):
            assert torch.equal(a[key], b[key]), key
        torch.testing.assert_close(a["c2w"], b["c2w"], equal_nan=True)
        # same normalised intrinsics: exact for rendered scenes; real images are cropped on
        # whole pixels of each size, so their crop may shift by up to half a low-res pixel
        tol = 0.0 if int(a["source_index"]) == 0 else 1 / 16
        torch.testing.assert_close(a["K"] / SIZE, b["K"] / 8, equal_nan=True, atol=tol, rtol=1e-6)
    for sample_id in (8, 11):  # step 2: full size again, bit for bit
        assert torch.equal(full.sample(sample_id)["image"], low.sample(sample_id)["image"])
    assert low.micro_batch(0)["image"].shape == (4, 4, 3, 8, 8)


def test_synthetic_clips_render_at_a_requested_size():
    """A smaller render of the same frames is the same picture: close to the full-size render
    averaged over 2×2 pixels, much closer than the clip's other frames are."""
    source = SyntheticClips(SynthConfig(frames=8))
    frames = torch.tensor([0, 3, 6])
    for clip in range(3):
        full, half = source.load(clip, frames, 64), source.load(clip, frames, 32)
        assert half.images.shape == (3, 3, 32, 32) and full.images.shape == (3, 3, 64, 64)
        torch.testing.assert_close(full.c2w, half.c2w)
        torch.testing.assert_close(full.K / 64, half.K / 32)
        area = torch.nn.functional.avg_pool2d(full.images, 2)
        err = (area - half.images).abs().mean()
        assert err < 0.025 and err < 0.6 * (area.roll(1, 0) - half.images).abs().mean()
