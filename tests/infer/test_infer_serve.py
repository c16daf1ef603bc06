"""`rayzer serve`: the request handler on uploads / examples / nothing, and an end-to-end run in
a real browser (Debian's headless Chromium driven by Playwright: upload photos, click Run, wait
for the novel-view video). Skipped where Gradio, Playwright or Chromium is not installed."""

from __future__ import annotations

import json
import os
import shutil
import socket
import zipfile
from pathlib import Path

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
    plot, video, renders, archive, summary = runner([str(p) for p in uploads], None, None, 24)
    assert Path(plot).is_file() and Path(video).is_file() and len(renders) == 3
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


@pytest.mark.slow
def test_browser_upload_run_and_video(model, tmp_path: Path, helpers) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    photos = helpers.write_images(tmp_path / "photos", 4)
    app = build_app(model, tmp_path / "work", frames=3)
    _, url, _ = app.queue().launch(
        server_name="127.0.0.1",
        server_port=_free_port(),
        prevent_thread_lock=True,
        quiet=True,
        footer_links=[],
    )
    try:
        assert url.startswith("http://127.0.0.1:")
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.goto(url)
                page.wait_for_selector("#run", timeout=30_000)
                page.locator("#images input[type=file]").set_input_files([str(f) for f in photos])
                page.wait_for_selector("#images td[aria-label='img3.jpg']", timeout=30_000)
                page.click("#run")
                video = page.wait_for_selector("#novel_video video[src]", timeout=60_000)
                src = video.get_attribute("src")
                assert src and src.endswith("novel_views.mp4")
                response = page.request.get(src)
                assert response.ok and len(response.body()) > 1000  # a real MP4 is served
                page.wait_for_selector("#renders img", timeout=30_000)
                assert page.locator("#renders img").count() == 4
                page.wait_for_selector("#summary >> text=reconstruction_psnr_db", timeout=30_000)
            finally:
                browser.close()
    finally:
        app.close()
    runs = list((tmp_path / "work").glob("*/rayzer_outputs/summary.json"))
    assert len(runs) == 1 and json.loads(runs[0].read_text())["input"]["used"] == 4
