"""`rayzer serve`: the request handler on uploads / examples / nothing, and an end-to-end run in
a real browser (Debian's headless Chromium driven by Playwright: upload photos, click Run, wait
for the novel-view video). Skipped where Gradio, Playwright or Chromium is not installed."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import zipfile
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
gr = pytest.importorskip("gradio")

from rayzer.infer.model import load_model  # noqa: E402
from rayzer.infer.serve import EXAMPLES, Runner, build_app  # noqa: E402

# Gradio's own queue code trips pandas deprecation warnings; they are not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")

CHROMIUM = os.environ.get("RAYZER_CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",  # the closed network refuses Chromium's own connections
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def model(tiny_ckpt: Path):
    return load_model(tiny_ckpt, "cpu")


def test_runner_on_uploads_examples_and_nothing(model, tmp_path: Path, helpers) -> None:
    runner = Runner(model, tmp_path / "work", frames=3)
    uploads = helpers.write_images(tmp_path / "photos", 3)
    plot, video, renders, depth, gaussians, archive, summary = runner(
        [str(p) for p in uploads], None, None, 24
    )
    assert Path(plot).is_file() and Path(video).is_file() and len(renders) == 3
    assert depth == [] and gaussians is None  # a latent model: no depth, no Gaussians
    with zipfile.ZipFile(archive) as z:
        names = set(z.namelist())
    assert {"cameras.json", "transforms.json", "sparse/0/images.txt", "summary.json"} <= names
    assert summary["input"]["used"] == 3

    example = next(iter(EXAMPLES))
    *_, summary = runner(None, None, example, 4)
    assert summary["input"]["used"] == 4  # 8 synthetic frames, 4 kept

    with pytest.raises(gr.Error, match="upload images or a video"):
        runner(None, None, None, 24)
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    with pytest.raises(gr.Error, match=r"1 usable view.*bad\.jpg"):
        runner([str(bad), str(uploads[0])], None, None, 24)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _browser_page(app, extra_args: list[str] | None = None, drop: tuple[str, ...] = ()):
    """Launch ``app`` on 127.0.0.1 and open it in Chromium through Playwright (skips without
    either); yields the page once the Run button is there. Closes the browser and the app."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    _, url, _ = app.queue().launch(
        server_name="127.0.0.1",
        server_port=_free_port(),
        prevent_thread_lock=True,
        quiet=True,
        footer_links=[],
    )
    try:
        assert url.startswith("http://127.0.0.1:")
        args = [a for a in CHROMIUM_ARGS if a not in drop] + (extra_args or [])
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=args)
            try:
                page = browser.new_page()
                page.goto(url)
                page.wait_for_selector("#run", timeout=30_000)
                yield page
            finally:
                browser.close()
    finally:
        app.close()


def _upload(page, photos: list[Path]) -> None:
    """Upload ``photos`` and wait until the last one is listed."""
    page.locator("#images input[type=file]").set_input_files([str(f) for f in photos])
    page.wait_for_selector(f"#images td[aria-label='{photos[-1].name}']", timeout=30_000)


@pytest.mark.slow
def test_browser_upload_run_and_video(model, tmp_path: Path, helpers) -> None:
    photos = helpers.write_images(tmp_path / "photos", 4)
    with _browser_page(build_app(model, tmp_path / "work", frames=3)) as page:
        # RayZer outputs no depth: the refinement slider is offered but disabled
        assert page.locator("#refine input[type=range]").is_disabled()
        _upload(page, photos)
        page.click("#run")
        video = page.wait_for_selector("#novel_video video[src]", timeout=60_000)
        src = video.get_attribute("src")
        assert src and src.endswith("novel_views.mp4")
        response = page.request.get(src)
        assert response.ok and len(response.body()) > 1000  # a real MP4 is served
        page.wait_for_selector("#renders img", timeout=30_000)
        assert page.locator("#renders img").count() == 4
        page.wait_for_selector("#summary >> text=reconstruction_psnr_db", timeout=30_000)
    runs = list((tmp_path / "work").glob("*/rayzer_outputs/summary.json"))
    assert len(runs) == 1 and json.loads(runs[0].read_text())["input"]["used"] == 4


def _explicit_model():
    import torch

    from _tiny import tiny_data
    from rayzer.config import load_config
    from rayzer.infer.model import LoadedModel
    from rayzer.models import build_model

    cfg = load_config("erayzer-tiny-cpu", tiny_data(32))
    torch.manual_seed(0)
    return LoadedModel.from_module(build_model(cfg.model).eval(), 32)


def _centre_grey_levels(png: Path) -> int:
    """Distinct grey levels in the middle half of a screenshot (away from the viewer's label
    and buttons, which overlay its corners)."""
    from PIL import Image

    a = np.asarray(Image.open(png).convert("L"))
    h, w = a.shape
    return len(np.unique(a[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4]))


@pytest.mark.slow
def test_browser_waits_for_the_3d_view_of_the_gaussians(tmp_path: Path, helpers) -> None:
    """E-RayZer in the page: upload, Run, and the Model3D viewer draws the splats (WebGL through
    Chromium's software renderer): its canvas shows more than the empty background."""
    photos = helpers.write_images(tmp_path / "photos", 3)
    app = build_app(_explicit_model(), tmp_path / "work", frames=2)
    webgl = ["--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist"]
    with _browser_page(app, webgl, drop=("--disable-gpu",)) as page:
        _upload(page, photos)
        page.click("#run")
        canvas = page.wait_for_selector("#gaussians canvas", timeout=120_000)
        page.wait_for_selector("#depth img", timeout=30_000)
        assert page.locator("#depth img").count() == 3
        shot = tmp_path / "viewer.png"
        levels = []
        for _ in range(20):  # the splats are loaded and drawn asynchronously
            page.wait_for_timeout(500)
            canvas.screenshot(path=str(shot))
            levels.append(_centre_grey_levels(shot))
            if levels[-1] > 32:
                break
        # An empty view is one flat colour (checked: 1 grey level with every Gaussian
        # transparent); drawn splats give dozens (about 70 for this scene).
        assert levels[-1] > 32, f"the 3D view stayed empty (grey levels: {levels})"


@pytest.mark.slow
def test_browser_refines_the_cameras_when_asked(tmp_path: Path, helpers) -> None:
    """E-RayZer in the page, the refinement slider set to 3 iterations: Run, and the page shows
    the refinement's note (before/after figures and which cameras were kept); the run's
    summary.json has the refinement's report."""
    photos = helpers.write_images(tmp_path / "photos", 3)
    with _browser_page(build_app(_explicit_model(), tmp_path / "work", frames=2)) as page:
        assert page.locator("#refine input[type=range]").is_enabled()
        number = page.locator("#refine input[type=number]")
        number.fill("3")
        number.press("Enter")
        _upload(page, photos)
        page.click("#run")
        note = page.wait_for_selector("#refine_summary >> text=Camera refinement", timeout=120_000)
        text = page.locator("#refine_summary").inner_text()
        assert "3 iterations" in text and "kept:" in text, text
        assert note.is_visible()
    runs = list((tmp_path / "work").glob("*/rayzer_outputs/summary.json"))
    assert len(runs) == 1
    report = json.loads(runs[0].read_text())["refine"]
    assert report["steps"] == 3 and report["cameras"] in ("refined", "input")


def test_handler_accepts_only_uploaded_files_under_the_limit(model, tmp_path: Path, helpers):
    """A request may name any path: files outside the server's upload folder are refused (they
    were once processed), and so is an upload over the size limit, both with a clear message."""
    uploads = tmp_path / "gradio"
    photos = helpers.write_images(uploads / "abc123", 3)
    elsewhere = helpers.write_images(tmp_path / "elsewhere", 1, names=["secret.jpg"])
    runner = Runner(model, tmp_path / "work", frames=2, upload_dir=uploads)
    *_, summary = runner([str(p) for p in photos], None, None, 24)
    assert summary["input"]["used"] == 3
    for files, video in (([str(photos[0]), str(elsewhere[0])], None), (None, str(elsewhere[0]))):
        with pytest.raises(gr.Error, match=r"secret\.jpg: not a file uploaded to this server"):
            runner(files, video, None, 24)
    escape = str(uploads / ".." / "elsewhere" / "secret.jpg")
    with pytest.raises(gr.Error, match="not a file uploaded"):
        runner([escape, str(photos[0])], None, None, 24)
    total_mb = sum(p.stat().st_size for p in photos) / 2**20
    small = Runner(model, tmp_path / "work", 2, upload_dir=uploads, max_upload_mb=total_mb / 2)
    with pytest.raises(gr.Error, match=r"over this server's limit of .* MB \(rayzer serve"):
        small([str(p) for p in photos], None, None, 24)


def _http(url: str, data: bytes | None = None, headers: dict | None = None) -> tuple[int, bytes]:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def _multipart(name: str, payload: bytes) -> tuple[bytes, dict]:
    boundary = "rayzerboundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
            f"Content-Type: image/png\r\n\r\n"
        ).encode()
        + payload
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def test_server_serves_only_its_private_folder_and_removes_it(tiny_ckpt: Path, tmp_path: Path):
    """On 127.0.0.1: a file elsewhere in the temp folder is not served (it once was), an upload
    over --max-upload-mb is refused, an upload within it lands in the server's private folder,
    and that folder is gone after the server stops."""
    import tempfile

    from rayzer.infer.serve import serve

    outside = Path(tempfile.mkstemp(suffix=".txt", prefix="rayzer-test-")[1])
    outside.write_text("not for visitors")
    before = os.environ.get("GRADIO_TEMP_DIR")
    server = serve(tiny_ckpt, port=_free_port(), device="cpu", block=False, max_upload_mb=0.01)
    try:
        assert server.url.startswith("http://127.0.0.1:")
        assert stat_mode(server.folder) == 0o700
        code, body = _http(f"{server.url}gradio_api/file={outside}")
        assert code == 403 and b"not for visitors" not in body
        code, body = _http(f"{server.url}gradio_api/upload", *_multipart("big.png", bytes(20_000)))
        assert code == 413, (code, body)
        code, body = _http(f"{server.url}gradio_api/upload", *_multipart("ok.png", b"x" * 100))
        assert code == 200, (code, body)
        (stored,) = json.loads(body)
        assert Path(stored).resolve().is_relative_to(server.folder.resolve())
    finally:
        server.close()
        outside.unlink()
    assert not server.folder.exists()
    assert os.environ.get("GRADIO_TEMP_DIR") == before


def stat_mode(path: Path) -> int:
    import stat

    return stat.S_IMODE(path.stat().st_mode)


def _component(app, elem_id: str) -> dict:
    (found,) = [
        c for c in app.get_config_file()["components"] if c["props"].get("elem_id") == elem_id
    ]
    return found


#: What Gradio's Model3D viewer needs to draw a .ply as Gaussian splats rather than as a mesh
#: (read from the Model3D frontend of the installed Gradio, 6.31): these vertex properties and
#: at least three colour ones (red/green/blue or f_dc_0..2), and no faces.
SPLAT_PROPERTIES = {"x", "y", "z", "scale_0", "scale_1", "scale_2", "opacity"} | {
    f"rot_{i}" for i in range(4)
}


def test_explicit_model_shows_gaussians_in_a_3d_viewer_and_depth(tmp_path: Path, helpers):
    """The served page of an E-RayZer has a Model3D (the 3D view) and a depth gallery wired to
    the run; the run hands the viewer the scene's gaussians.ply, a file it draws as splats."""
    from rayzer.render import load_ply

    model = _explicit_model()
    app = build_app(model, tmp_path / "work", frames=2)
    viewer, depth = _component(app, "gaussians"), _component(app, "depth")
    assert viewer["type"] == "model3d" and viewer["props"]["visible"] is True
    assert depth["type"] == "gallery" and depth["props"]["visible"] is True
    (run,) = [d for d in app.get_config_file()["dependencies"] if viewer["id"] in d["outputs"]]
    assert depth["id"] in run["outputs"]
    assert app.fns[run["id"]].tracks_progress  # the page mirrors the render progress bars

    runner = Runner(model, tmp_path / "work", frames=2)
    uploads = helpers.write_images(tmp_path / "photos", 3)
    *_, depth_pngs, ply, _archive, summary = runner([str(p) for p in uploads], None, None, 24)
    assert len(depth_pngs) == 3 and all(Path(p).is_file() for p in depth_pngs)
    assert ply.endswith(".ply") and len(load_ply(ply)) == 3 * 32 * 32
    header = Path(ply).read_bytes().split(b"end_header")[0].decode().split("\n")
    props = {line.split()[-1] for line in header if line.startswith("property")}
    assert props >= SPLAT_PROPERTIES | {"f_dc_0", "f_dc_1", "f_dc_2"}
    assert not any(line.startswith("element face") for line in header)
    value = gr.Model3D().postprocess(ply)  # what the page receives
    assert value.path == ply
    assert summary["outputs"][-1] == "summary.json"


def test_latent_model_hides_the_3d_viewer(model, tmp_path: Path):
    app = build_app(model, tmp_path / "work", frames=2)
    assert _component(app, "gaussians")["props"]["visible"] is False
    assert _component(app, "depth")["props"]["visible"] is False


def test_viewer_copy_is_centred_and_scaled_uniformly(tmp_path: Path):
    import torch

    from rayzer.infer.serve import VIEWER_ORBIT_RADIUS, viewer_ply
    from rayzer.render import GaussianPly, load_ply

    g = torch.Generator().manual_seed(0)
    src = GaussianPly.from_activated(
        torch.randn(500, 3, generator=g) * 0.1 + torch.tensor([0.0, 0.0, 3.0]),
        torch.randn(500, 4, generator=g),
        torch.rand(500, 3, generator=g) * 0.01 + 1e-3,
        torch.rand(500, generator=g),
        torch.rand(500, 3, generator=g),
    )
    src.save(tmp_path / "g.ply")
    view = load_ply(viewer_ply(tmp_path / "g.ply", tmp_path / "view.ply"))
    assert torch.allclose(view.means.median(dim=0).values, torch.zeros(3), atol=1e-4)
    r = torch.quantile(view.means.norm(dim=-1), 0.98)
    assert abs(float(r) - 0.4 * VIEWER_ORBIT_RADIUS) < 0.05
    k = (view.means - view.means[0]).norm(dim=-1)[1:] / (src.means - src.means[0]).norm(dim=-1)[1:]
    assert torch.allclose(k, k[0].expand_as(k), rtol=1e-3)  # one uniform scale
    assert torch.allclose(view.log_scales - src.log_scales, torch.log(k[0]), atol=1e-4)
    for name in ("quats", "opacity_logits", "sh"):
        assert torch.equal(getattr(view, name), getattr(src, name)), name


def test_viewer_copy_ignores_non_finite_centres(tmp_path: Path):
    """One NaN centre must not make the whole view NaN (the median / quantile would be)."""
    import torch

    from rayzer.infer.serve import VIEWER_ORBIT_RADIUS, viewer_ply
    from rayzer.render import GaussianPly, load_ply

    g = torch.Generator().manual_seed(0)
    means = torch.randn(200, 3, generator=g) * 0.1 + torch.tensor([0.0, 0.0, 3.0])
    means[7] = float("nan")
    src = GaussianPly.from_activated(
        means,
        torch.randn(200, 4, generator=g),
        torch.rand(200, 3, generator=g) * 0.01 + 1e-3,
        torch.rand(200, generator=g),
        torch.rand(200, 3, generator=g),
    )
    src.save(tmp_path / "g.ply")
    view = load_ply(viewer_ply(tmp_path / "g.ply", tmp_path / "view.ply"))
    finite = torch.isfinite(view.means).all(dim=-1)
    assert int(finite.sum()) == 199
    assert torch.allclose(view.means[finite].median(dim=0).values, torch.zeros(3), atol=1e-4)
    r = torch.quantile(view.means[finite].norm(dim=-1), 0.98)
    assert abs(float(r) - 0.4 * VIEWER_ORBIT_RADIUS) < 0.05


def test_refine_option_runs_the_refinement_with_progress_and_shows_its_figures(
    tmp_path: Path, helpers
):
    """An explicit model: the page offers refinement (off by default, capped), the run refines
    with its progress reported, and the page's note gives the before/after figures."""
    from rayzer.infer.serve import MAX_REFINE_STEPS, refine_note

    model = _explicit_model()
    app = build_app(model, tmp_path / "work", frames=2)
    slider = _component(app, "refine")
    assert slider["props"]["interactive"] is True and slider["props"]["value"] == 0
    assert slider["props"]["maximum"] == MAX_REFINE_STEPS
    note = _component(app, "refine_summary")
    (run,) = [d for d in app.get_config_file()["dependencies"] if note["id"] in d["outputs"]]
    assert slider["id"] in run["inputs"]

    runner = Runner(model, tmp_path / "work", frames=2, max_refine_steps=5)
    uploads = helpers.write_images(tmp_path / "photos", 3)
    seen: list[tuple[int, int, str]] = []
    *_, summary = runner(
        [str(p) for p in uploads],
        None,
        None,
        24,
        refine=3,
        refine_progress=lambda *a: seen.append(a),
    )
    report = summary["refine"]
    assert report["steps"] == 3 and report["cameras"] in ("refined", "input")
    assert seen and seen[-1][:2] == (12, 12)  # 3 iterations + 3 x 3 for the leave-one-out check
    assert [d for d, _, _ in seen] == sorted(d for d, _, _ in seen)
    text = refine_note(summary)
    assert text.startswith("**Camera refinement**, 3 iterations")
    before, after = report["reprojection_psnr_before"], report["reprojection_psnr_after"]
    assert f"{before:.2f} dB → {after:.2f} dB" in text
    assert f"leave-one-out PSNR of view {report['held_out']['view']}" in text
    assert "- kept: " in text

    jobs = set((tmp_path / "work").iterdir())
    with pytest.raises(gr.Error, match="between 0 and 5 on this server"):
        runner([str(p) for p in uploads], None, None, 24, refine=6)
    assert set((tmp_path / "work").iterdir()) == jobs  # refused before any work
    *_, summary = runner([str(p) for p in uploads], None, None, 24)  # off by default
    assert "refine" not in summary and refine_note(summary) == ""


def test_the_server_can_cap_or_turn_off_refinement(tmp_path: Path, helpers, cli):
    """``rayzer serve --max-refine-steps N``: the slider's maximum; 0 shows it disabled with the
    reason, and a request for refinement is then refused; a negative value is a clear error."""
    model = _explicit_model()
    slider = _component(build_app(model, tmp_path / "a", frames=2, max_refine_steps=7), "refine")
    assert slider["props"]["maximum"] == 7 and slider["props"]["interactive"] is True
    assert "at most 7 on this server" in slider["props"]["info"]
    slider = _component(build_app(model, tmp_path / "b", frames=2, max_refine_steps=0), "refine")
    assert slider["props"]["interactive"] is False
    assert "turned off on this server" in slider["props"]["info"]
    runner = Runner(model, tmp_path / "work", frames=2, max_refine_steps=0)
    uploads = helpers.write_images(tmp_path / "photos", 3)
    with pytest.raises(gr.Error, match="between 0 and 0 on this server"):
        runner([str(p) for p in uploads], None, None, 24, refine=1)
    code, _, err = cli("serve", "--max-refine-steps", "-1", "--port", str(_free_port()))
    assert code == 2 and "--max-refine-steps must be >= 0" in err and "Traceback" not in err


def test_refine_with_a_model_without_depth_is_a_clear_message(model, tmp_path: Path, helpers):
    app = build_app(model, tmp_path / "work", frames=2)
    slider = _component(app, "refine")
    assert slider["props"]["interactive"] is False
    assert "needs a model that outputs depth" in slider["props"]["info"]
    runner = Runner(model, tmp_path / "work", frames=2)
    uploads = helpers.write_images(tmp_path / "photos", 3)
    with pytest.raises(gr.Error, match=r"refinement needs a model that outputs depth.*RayZer"):
        runner([str(p) for p in uploads], None, None, 24, refine=5)
    assert not (tmp_path / "work").exists()  # nothing was run


def test_refine_note_says_which_cameras_were_kept_and_why():
    from rayzer.infer.serve import refine_note

    rejected = {
        "steps": 10,
        "total_seconds": 4.2,
        "reprojection_psnr_before": 20.0,
        "reprojection_psnr_after": 21.5,
        "held_out": {"view": 2, "psnr_before": 18.0, "psnr_after": None},
        "cameras": "input",
        "rejected": "the leave-one-out PSNR of view 2 fell",
    }
    text = refine_note({"refine": rejected})
    assert "(4.2 s)" in text and "20.00 dB → 21.50 dB" in text and "18.00 dB → n/a" in text
    assert "kept: the model's cameras: the leave-one-out PSNR of view 2 fell" in text
    kept = {**rejected, "cameras": "refined", "rejected": None, "rebuilt": {"outputs": ["x"]}}
    assert "kept: the refined cameras; the Gaussians, depth, renders and video were rebuilt" in (
        refine_note({"refine": kept})
    )


@pytest.mark.parametrize("steps", ["many", 2.5, float("nan"), True, -1])
def test_a_malformed_refine_request_is_refused(steps):
    from rayzer.infer.serve import check_refine_request

    with pytest.raises(ValueError, match="refinement iterations must be"):
        check_refine_request(_explicit_model(), steps, 10)


def test_the_page_handler_feeds_the_refinement_to_its_progress_bar(tmp_path: Path, helpers):
    """The function the Run button calls (as Gradio calls it, with its progress tracker; here a
    recorder): the refinement's iterations reach the tracker, and its note is the last output."""
    photos = helpers.write_images(tmp_path / "photos", 3)
    app = build_app(_explicit_model(), tmp_path / "work", frames=2, upload_dir=tmp_path)
    note = _component(app, "refine_summary")
    (run,) = [d for d in app.get_config_file()["dependencies"] if note["id"] in d["outputs"]]
    calls = []

    def tracker(progress, desc=None, total=None, unit="steps"):
        calls.append((progress, desc, unit))

    tracker.track_tqdm = True
    outputs = app.fns[run["id"]].fn([str(p) for p in photos], None, None, 24, 2, progress=tracker)
    assert len(outputs) == len(run["outputs"]) and outputs[-1].startswith("**Camera refinement**")
    refine = [(done, total, desc) for (done, total), desc, unit in calls if unit == "iterations"]
    assert refine[-1] == (8, 8, "refine: leave-one-out check")
    assert "refine: refining the cameras" in {desc for _, _, desc in refine}
