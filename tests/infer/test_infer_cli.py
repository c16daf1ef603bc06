"""`rayzer infer` end to end on a tiny random checkpoint: every output is written and agrees
with the model; bad input fails with a clear message naming the file, exit code != 0, no
traceback and no output folder."""

from __future__ import annotations

import json
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from rayzer import api, bundled
from rayzer.checkpoints import read_model_weights
from rayzer.eval.image_metrics import psnr

NOVEL = ("--path-frames", "5", "--spiral-frames", "4", "--quiet")


def _load(folder: Path) -> torch.Tensor:
    files = sorted(folder.glob("*.png"))
    return torch.stack(
        [torch.from_numpy(np.array(Image.open(f))).permute(2, 0, 1).float() / 255 for f in files]
    )


def test_infer_images_writes_complete_consistent_outputs(
    cli, tiny_ckpt: Path, tmp_path: Path, helpers
) -> None:
    helpers.write_images(tmp_path / "photos", 6, size=(64, 48))
    out = tmp_path / "out"
    code, stdout, err = cli(
        "infer", "--images", tmp_path / "photos", "--ckpt", tiny_ckpt, "--out", out, *NOVEL
    )
    assert code == 0, err
    assert f"wrote {out}: 6 views at 32x32" in stdout
    expected = {
        "cameras.json", "cameras.png", "images", "novel_cameras.json", "novel_views.gif",
        "novel_views.mp4", "renders", "sparse", "summary.json", "transforms.json", ".rayzer-output",
    }  # fmt: skip
    assert {p.name for p in out.iterdir()} == expected
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []

    summary = json.loads((out / "summary.json").read_text())
    stages = summary["timings_s"]
    for stage in ("load_model", "load_images", "predict_cameras", "reconstruct", "render_inputs",
                  "render_novel", "write_exports", "write_video", "plot", "total"):  # fmt: skip
        assert stages[stage] >= 0
    assert stages["total"] >= sum(v for k, v in stages.items() if k != "total")
    assert summary["peak_memory_mb"]["cpu_rss"] > 0
    assert summary["model"]["step"] == 7 and summary["input"]["used"] == 6

    # The cameras are the model's for the exported images (lossless PNGs of the input views).
    model = api.load_model(tiny_ckpt, "cpu")
    images = _load(out / "images")
    cams = api.predict_cameras(model, images)
    doc = json.loads((out / "cameras.json").read_text())
    c2w = torch.tensor([f["c2w"] for f in doc["frames"]], dtype=torch.float32)
    torch.testing.assert_close(c2w, cams.c2w, atol=1e-6, rtol=0)
    assert doc["frames"][0]["source_file"].endswith("img0.jpg")
    assert doc["frames"][0]["source_width"] == 64 and doc["canonical_view"] == 3

    # Reconstruction PSNR in the summary = PSNR of the written renders (8-bit) vs the inputs.
    renders = _load(out / "renders")
    measured = psnr(renders, images)
    per_view = summary["reconstruction_psnr_db"]["per_view"]
    assert list(per_view) == [f"{i:03d}_img{i}" for i in range(6)]
    np.testing.assert_allclose(list(per_view.values()), measured.numpy(), atol=0.1)

    # The video and GIF hold the path then the spiral; the path starts/ends at the input cameras.
    frames, _ = imageio_ffmpeg.count_frames_and_secs(str(out / "novel_views.mp4"))
    assert frames == 9
    with Image.open(out / "novel_views.gif") as gif:
        assert gif.n_frames == 9 and gif.size == (32, 32)
    novel = json.loads((out / "novel_cameras.json").read_text())["frames"]
    assert [f["path"] for f in novel] == ["path"] * 5 + ["spiral"] * 4
    torch.testing.assert_close(
        torch.tensor(novel[0]["c2w"]).float(), cams.c2w[0], atol=1e-6, rtol=0
    )
    torch.testing.assert_close(
        torch.tensor(novel[4]["c2w"]).float(), cams.c2w[5], atol=1e-6, rtol=0
    )
    with Image.open(out / "cameras.png") as plot:
        assert plot.size == (640, 640)
        assert len(np.unique(np.asarray(plot.convert("RGB")).reshape(-1, 3), axis=0)) > 20

    # existing output: refused without --overwrite, left untouched; replaced with it
    code, _, err = cli(
        "infer", "--images", tmp_path / "photos", "--ckpt", tiny_ckpt, "--out", out, *NOVEL
    )
    assert code == 2 and "already exists" in err and "--overwrite" in err
    assert (out / "summary.json").is_file()


def test_infer_video_keep_aspect(cli, tiny_ckpt: Path, tmp_path: Path, helpers) -> None:
    video = helpers.write_video(tmp_path / "walk.mp4", frames=12, size=(64, 32))
    out = tmp_path / "vid_out"
    code, _, err = cli(
        "infer", "--video", video, "--ckpt", tiny_ckpt, "--out", out, "--max-views", "3",
        "--aspect", "keep", "--size", "16", "--spiral-frames", "0", "--path-frames", "3", "--quiet",
    )  # fmt: skip
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["input"]["files"] == [f"walk.mp4#frame={k}" for k in (0, 6, 11)]
    assert (summary["preprocessing"]["height"], summary["preprocessing"]["width"]) == (16, 32)
    assert summary["novel_views"]["segments"] == {"path": 3}
    names = sorted(p.name for p in (out / "images").iterdir())
    assert names == ["000_frame_000000.png", "001_frame_000006.png", "002_frame_000011.png"]


def test_skip_bad_warns_and_records(cli, tiny_ckpt: Path, tmp_path: Path, helpers) -> None:
    paths = helpers.write_images(tmp_path / "photos", 4, size=(64, 64))
    helpers.truncate(paths[1], keep=0.4)
    out = tmp_path / "out"
    code, _, err = cli("infer", "--images", tmp_path / "photos", "--ckpt", tiny_ckpt, "--out", out,
                       "--skip-bad", *NOVEL)  # fmt: skip
    assert code == 0, err
    assert "WARNING: skipped" in err and "img1.jpg" in err and "truncated" in err
    summary = json.loads((out / "summary.json").read_text())
    assert [Path(s["file"]).name for s in summary["input"]["skipped"]] == ["img1.jpg"]
    assert summary["input"]["used"] == 3


def _bad_inputs(tmp: Path, helpers, tiny_ckpt: Path, lvsm_ckpt: Path):
    """name -> (argv without --out, expected message fragments)."""
    (tmp / "empty").mkdir()
    helpers.write_images(tmp / "one", 1)
    helpers.write_images(tmp / "fake", 3)
    (tmp / "fake" / "img1.jpg").write_text("<html>not a photo</html>")
    paths = helpers.write_images(tmp / "trunc", 3, size=(64, 64))
    helpers.truncate(paths[2])
    (tmp / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 100)
    helpers.write_images(tmp / "ok", 3)
    corrupt = tmp / "corrupt_ckpt"
    corrupt.mkdir()
    (corrupt / "config.yaml").write_text((tiny_ckpt / "config.yaml").read_text())
    (corrupt / "model.safetensors").write_bytes(
        (tiny_ckpt / "model.safetensors").read_bytes()[:200]
    )
    nan = tmp / "nan_ckpt"
    nan.mkdir()
    (nan / "config.yaml").write_text((tiny_ckpt / "config.yaml").read_text())
    tensors, metadata = read_model_weights(tiny_ckpt)
    tensors = {k: v.clone() for k, v in tensors.items()}
    next(iter(sorted(tensors.items())))[1].fill_(float("nan"))
    save_file(tensors, str(nan / "model.safetensors"), metadata=metadata)
    ck = ("--ckpt", tiny_ckpt)
    return {
        "empty folder": (("--images", tmp / "empty", *ck), ["empty: no image files"]),
        "one image": (("--images", tmp / "one", *ck), ["1 usable view", "at least 2"]),
        "not an image": (("--images", tmp / "fake", *ck), ["img1.jpg: not an image file"]),
        "truncated jpeg": (("--images", tmp / "trunc", *ck), ["img2.jpg", "truncated"]),
        "missing folder": (("--images", tmp / "nope", *ck), ["image folder not found", "nope"]),
        "undecodable video": (("--video", tmp / "broken.mp4", *ck), ["broken.mp4", "video"]),
        "lvsm checkpoint": (("--images", tmp / "ok", "--ckpt", lvsm_ckpt), ["'lvsm' model", str(lvsm_ckpt)]),
        "corrupt checkpoint": (("--images", tmp / "ok", "--ckpt", corrupt), ["corrupt_ckpt/model.safetensors", "corrupt"]),
        "nan checkpoint": (("--images", tmp / "ok", "--ckpt", nan), ["nan_ckpt/model.safetensors", "non-finite"]),
        "bad size": (("--images", tmp / "ok", *ck, "--size", "30"), ["--size 30", "patch size 8"]),
        "huge size": (("--images", tmp / "ok", *ck, "--size", "100000"), ["--size 100000", "at most 1024"]),
        "too many views": (("--images", tmp / "ok", *ck, "--max-views", "100"), ["--max-views"]),
    }  # fmt: skip


CASES = [
    "empty folder", "one image", "not an image", "truncated jpeg", "missing folder",
    "undecodable video", "lvsm checkpoint", "corrupt checkpoint", "nan checkpoint", "bad size",
    "huge size", "too many views",
]  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_bad_input_fails_cleanly(
    case, cli, tiny_ckpt: Path, lvsm_ckpt: Path, tmp_path: Path, helpers
) -> None:
    argv, fragments = _bad_inputs(tmp_path, helpers, tiny_ckpt, lvsm_ckpt)[case]
    out = tmp_path / "out"
    code, stdout, err = cli("infer", *argv, "--out", out, *NOVEL)
    assert code == 2, (stdout, err)
    assert err.startswith("rayzer: error: ") and "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    helpers.no_output(out)


def test_missing_bundled_model(cli, tmp_path: Path, helpers, monkeypatch) -> None:
    monkeypatch.setattr(bundled, "bundled_model_dir", lambda name="default": tmp_path / "no_assets")
    helpers.write_images(tmp_path / "ok", 3)
    code, _, err = cli("infer", "--images", tmp_path / "ok", "--out", tmp_path / "out", *NOVEL)
    assert code == 2 and "no bundled model in this install" in err and "--ckpt" in err
    helpers.no_output(tmp_path / "out")


def test_failure_while_writing_leaves_no_output(
    cli, tiny_ckpt: Path, tmp_path: Path, helpers, monkeypatch
) -> None:
    """A late failure (here: the video encoder) is reported with its stage, and the partly
    written output folder is removed."""
    from rayzer.infer import pipeline

    def broken(*_args, **_kwargs):
        raise RuntimeError("encoder crashed")

    monkeypatch.setattr(pipeline, "write_mp4", broken)
    helpers.write_images(tmp_path / "ok", 3)
    out = tmp_path / "out"
    code, _, err = cli(
        "infer", "--images", tmp_path / "ok", "--ckpt", tiny_ckpt, "--out", out, *NOVEL
    )
    assert code == 2 and "stage 'write_video' failed: RuntimeError: encoder crashed" in err
    assert "Traceback" not in err
    helpers.no_output(out)


def test_serve_without_gradio_says_how_to_install(cli, tiny_ckpt: Path, monkeypatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio -> ImportError
    code, _, err = cli("serve", "--ckpt", tiny_ckpt, "--port", "7999")
    assert code == 2 and "pip install 'rayzer[demo]'" in err and "Traceback" not in err


@pytest.mark.parametrize("where", ["same", "parent", "inside", "root"])
def test_output_overlapping_the_input_is_refused_and_input_kept(
    where, cli, tiny_ckpt: Path, tmp_path: Path, helpers
) -> None:
    """``--overwrite`` once replaced the photos with the outputs (``--out`` = ``--images``) or
    deleted them (``--out`` = a parent folder): refused before anything is written."""
    photos = tmp_path / "photos"
    files = helpers.write_images(photos, 3)
    before = {f: f.read_bytes() for f in files}
    out = {"same": photos, "parent": tmp_path, "inside": photos / "out", "root": Path("/")}[where]
    code, _, err = cli(
        "infer", "--images", photos, "--ckpt", tiny_ckpt, "--out", out, "--overwrite", *NOVEL
    )
    assert code == 2 and "Traceback" not in err
    assert f"output folder {out}" in err and f"the input --images {photos}" in err
    assert {f: f.read_bytes() for f in files} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos"]
    assert sorted(p.name for p in photos.iterdir()) == sorted(f.name for f in files)
