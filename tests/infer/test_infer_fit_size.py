"""``rayzer infer --fit STEPS --fit-size N``: the model runs at its input size, the Gaussians are
fitted to the same photos (same crop) prepared at N; the cameras written keep the model size's
intrinsics; bad ``--fit-size`` is refused before any work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from _tiny import orbit_photos, tiny_data
from rayzer.config import load_config
from rayzer.data.images import load_image_folder
from rayzer.infer.model import LoadedModel
from rayzer.infer.pipeline import run_inference
from rayzer.infer.predict import as_images
from rayzer.models import build_model

SIZE = 32  # the model's input size
FIT = 64  # the fit's


def _loaded() -> LoadedModel:
    cfg = load_config("erayzer-tiny-cpu", tiny_data(SIZE))
    torch.manual_seed(0)
    return LoadedModel.from_module(build_model(cfg.model).eval(), SIZE)


def _recording(monkeypatch) -> list[torch.Tensor]:
    """Record the photos handed to every fit (the fit and the leave-one-out fit) and make the
    leave-one-out figure keep the fitted scene (this test is about sizes, not the verdict)."""
    import rayzer.refine.splat as splat

    seen: list[torch.Tensor] = []
    real_fit, real_held = splat.fit_scene, splat.held_out_fit_psnr

    def fit(images, *args, **kwargs):
        seen.append(images.detach().cpu().clone())
        return real_fit(images, *args, **kwargs)

    def held(*args, **kwargs):
        fig = real_held(*args, **kwargs)
        fig.psnr_after = fig.psnr_before + 1.0
        return fig

    monkeypatch.setattr(splat, "fit_scene", fit)
    monkeypatch.setattr(splat, "held_out_fit_psnr", held)
    return seen


@pytest.mark.parametrize("fit_cameras", [False, True])
def test_the_fit_sees_the_photos_at_the_fit_size_and_the_cameras_keep_the_model_size(
    tmp_path: Path, monkeypatch, fit_cameras: bool
):
    model = _loaded()
    photos = orbit_photos(tmp_path / "photos", 96)  # larger than both sizes
    common = {"model": model, "path_frames": 2, "spiral_frames": 0, "size": SIZE}
    plain = run_inference(photos, out=tmp_path / "plain", **common)
    seen = _recording(monkeypatch)
    result = run_inference(
        photos, out=tmp_path / "out", fit=3, fit_size=FIT, fit_cameras=fit_cameras, **common
    )
    # both fits (all views; all but the left-out one) got the photos at 64 px, the same crop as
    # the model's 32 px input: exactly what the image loader makes at 64 px
    expected = as_images(load_image_folder(photos, FIT, model.patch_size), model).cpu()
    assert [tuple(s.shape) for s in seen] == [(4, 3, FIT, FIT), (3, 3, FIT, FIT)]
    torch.testing.assert_close(seen[0], expected)
    fit = result.summary["fit"]
    assert fit["fit_size"] == [FIT, FIT] and fit["scene"] == "fitted"
    on_disk = json.loads((tmp_path / "out" / "summary.json").read_text())["fit"]
    assert on_disk["fit_size"] == [FIT, FIT]
    # the written cameras' intrinsics are those of the model's 32 px input, not the fit's 64 px
    cams, before = result.cameras, plain.cameras
    assert (cams.height, cams.width) == (SIZE, SIZE)
    if fit_cameras:  # one shared focal scale, near 1 after 3 steps (2 if K were left at 64 px)
        ratio = cams.K[:, 0] / before.K[:, 0]
        assert float((ratio - 1).abs().max()) < 0.05, ratio
        assert fit["camera_change"]["focal_scale"] == pytest.approx(1.0, abs=0.05)
        torch.testing.assert_close(cams.K[:, 2:], before.K[:, 2:], atol=1e-4, rtol=1e-5)
    else:
        torch.testing.assert_close(cams.K, before.K, atol=1e-5, rtol=1e-5)
    # the renders written are the model size's
    from PIL import Image

    renders = sorted((tmp_path / "out" / "renders").iterdir())
    assert renders and all(Image.open(f).size == (SIZE, SIZE) for f in renders)


def test_the_default_fit_size_is_the_model_input_size(tmp_path: Path, monkeypatch):
    seen = _recording(monkeypatch)
    photos = orbit_photos(tmp_path / "photos", 96)
    result = run_inference(photos, model=_loaded(), out=tmp_path / "out", path_frames=2,
                           spiral_frames=0, size=SIZE, fit=2)  # fmt: skip
    assert tuple(seen[0].shape[-2:]) == (SIZE, SIZE)
    assert result.summary["fit"]["fit_size"] == [SIZE, SIZE]


def _no_work(monkeypatch) -> None:
    import rayzer.infer.pipeline as pipeline

    def no_work(*args, **kwargs):
        raise AssertionError("the model ran before --fit-size was checked")

    monkeypatch.setattr(pipeline, "_predict", no_work)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fit_size": 64}, "--fit-size needs --fit STEPS"),
        ({"fit": 2, "fit_size": 0}, "--fit-size must be a positive number of pixels"),
        ({"fit": 2, "fit_size": 60}, "--fit-size 60 must be a multiple of the model's patch"),
        ({"fit": 2, "fit_size": 100000}, "--fit-size 100000 must be a multiple"),
    ],
)
def test_bad_fit_size_is_refused_before_any_work(
    tmp_path: Path, monkeypatch, helpers, kwargs: dict, message: str
):
    _no_work(monkeypatch)
    photos = orbit_photos(tmp_path / "photos", 64)
    with pytest.raises(ValueError, match=message):
        run_inference(photos, model=_loaded(), out=tmp_path / "out", size=SIZE, **kwargs)
    helpers.no_output(tmp_path / "out")


def test_a_fit_size_that_changes_the_aspect_ratio_is_refused(tmp_path: Path, monkeypatch, helpers):
    """--aspect keep rounds the long side to the patch size: 3:2 photos give 48x32 at 32 px but
    96x64 at 64 px would be fine, while 16 px gives 16x16 (another crop)."""
    from PIL import Image

    _no_work(monkeypatch)
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        Image.new("RGB", (90, 60), (40 * i, 80, 120)).save(photos / f"{i}.png")
    model = _loaded()
    p = model.patch_size
    with pytest.raises(ValueError, match="not the aspect ratio of the model input"):
        run_inference(photos, model=model, out=tmp_path / "out", size=2 * p, aspect="keep",
                      fit=2, fit_size=p)  # fmt: skip
    helpers.no_output(tmp_path / "out")


def test_cli_fit_size_without_fit_is_a_clear_error(cli, tmp_path: Path, helpers):
    photos = orbit_photos(tmp_path / "photos", 64)
    code, _, err = cli("infer", "--images", photos, "--out", tmp_path / "out", "--fit-size", "64")
    assert code != 0 and "--fit-size needs --fit STEPS" in err and "Traceback" not in err
    helpers.no_output(tmp_path / "out")


def test_a_video_is_fitted_at_the_fit_size_too(tmp_path: Path, monkeypatch, helpers):
    seen = _recording(monkeypatch)
    video = helpers.write_video(tmp_path / "clip.mp4", frames=6, size=(96, 64))
    result = run_inference(video=video, model=_loaded(), out=tmp_path / "out", path_frames=2,
                           spiral_frames=0, size=SIZE, max_views=3, fit=2, fit_size=FIT)  # fmt: skip
    assert tuple(seen[0].shape) == (3, 3, FIT, FIT)
    assert result.summary["fit"]["fit_size"] == [FIT, FIT]
    # frame k is grey 20 + 20 k: the fit got the same frames as the model, in the same order
    means = seen[0].mean(dim=(1, 2, 3))
    assert bool((means[1:] > means[:-1]).all()), means


def test_each_photo_is_decoded_once(tmp_path: Path, monkeypatch):
    """--fit-size fits the photos at both sizes from one decode each (they were decoded twice:
    once for the model, once again for the fit)."""
    import rayzer.data.images as images

    decoded: list[str] = []
    real = images.decode_image

    def counting(path, out_hw=None):
        decoded.append(Path(path).name)
        return real(path, out_hw)

    monkeypatch.setattr(images, "decode_image", counting)
    _recording(monkeypatch)
    photos = orbit_photos(tmp_path / "photos", 96)
    run_inference(photos, model=_loaded(), out=tmp_path / "out", path_frames=2,
                  spiral_frames=0, size=SIZE, fit=2, fit_size=FIT)  # fmt: skip
    assert sorted(decoded) == sorted(p.name for p in photos.iterdir())


@pytest.mark.parametrize("aspect", ["square", "keep"])
def test_also_sizes_equal_a_load_at_that_size(tmp_path: Path, aspect: str):
    """The views fitted at another size from the same decode are those a load at that size
    gives (the same crop), also for --aspect keep; the model-size views are unchanged."""
    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    gen = torch.Generator().manual_seed(0)
    for i in range(3):
        pixels = (torch.rand(60, 90, 3, generator=gen) * 255).to(torch.uint8).numpy()
        Image.fromarray(pixels).save(folder / f"{i}.png")
    both = load_image_folder(folder, 16, 8, aspect, also_sizes=(32,))
    alone = {s: load_image_folder(folder, s, 8, aspect) for s in (16, 32)}
    assert list(both.at_sizes) == [32]
    assert (both.images == alone[16].images).all()
    assert both.at_sizes[32].shape == alone[32].images.shape
    assert (both.at_sizes[32] == alone[32].images).all()
    assert [v.box for v in both.views] == [v.box for v in alone[16].views]
