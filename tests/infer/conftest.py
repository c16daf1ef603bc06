"""Fixtures for the inference tests: tiny randomly initialised checkpoints written through the
project's own checkpoint code, image folders and videos, and a CLI runner.

Helpers reach the tests through fixtures (tests are imported with importlib, so they cannot
import this module by name).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from _tiny import TINY_MODEL, tiny_data
from rayzer.cli import main
from rayzer.config import load_config
from rayzer.models import build_model
from rayzer.train.checkpoint import save_checkpoint

#: A RayZer small enough for CPU tests: dim 32, 1+1+1 layers, 32×32 input, patch 8.
TINY = [*TINY_MODEL, *tiny_data(32)]


def _checkpoint(root: Path, *overrides: str) -> Path:
    cfg = load_config("tiny-cpu", [*TINY, *overrides])
    torch.manual_seed(0)
    model = build_model(cfg.model)
    return save_checkpoint(root, 7, model, {}, cfg)


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory) -> Path:
    """A randomly initialised tiny RayZer checkpoint directory (step 7)."""
    return _checkpoint(tmp_path_factory.mktemp("rayzer_run"))


@pytest.fixture(scope="session")
def erayzer_ckpt(tmp_path_factory) -> Path:
    """A randomly initialised tiny E-RayZer checkpoint directory (step 7, 32 px): depth maps and
    Gaussians, for the explicit-3D outputs, ``--refine`` and ``--fit``."""
    cfg = load_config("erayzer-tiny-cpu", tiny_data(32))
    torch.manual_seed(0)
    model = build_model(cfg.model).eval()
    return save_checkpoint(tmp_path_factory.mktemp("erayzer_run"), 7, model, {}, cfg)


@pytest.fixture(scope="session")
def lvsm_ckpt(tmp_path_factory) -> Path:
    """A tiny LVSM checkpoint: another model, to be refused by inference."""
    return _checkpoint(tmp_path_factory.mktemp("lvsm_run"), "model.name=lvsm")


@pytest.fixture(autouse=True)
def _one_thread(one_thread) -> None:
    """Every test here at one thread (tests/conftest.py's ``one_thread``): tiny models."""


def write_images(
    folder: Path,
    count: int,
    size: tuple[int, int] = (48, 40),
    ext: str = "jpg",
    names: list[str] | None = None,
    seed: int = 0,
) -> list[Path]:
    """``count`` smooth random colour images of ``size = (W, H)`` named ``img<i>.<ext>``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    W, H = size
    paths = []
    for i in range(count):
        coarse = rng.random((4, 4, 3))
        img = Image.fromarray((coarse * 255).astype(np.uint8)).resize((W, H), Image.BILINEAR)
        path = folder / (names[i] if names else f"img{i}.{ext}")
        img.save(path)
        paths.append(path)
    return paths


def png16(path: Path, array: np.ndarray) -> Path:
    """A 16-bit PNG (gray, RGB or RGBA) written from the PNG spec (Pillow cannot write 48-bit)."""
    h, w = array.shape[:2]
    channels = 1 if array.ndim == 2 else array.shape[2]
    color_type = {1: 0, 3: 2, 4: 6}[channels]
    rows = array.reshape(h, w * channels).astype(">u2")
    raw = b"".join(b"\x00" + rows[i].tobytes() for i in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(tag + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
    return path


def write_video(path: Path, frames: int = 10, size: tuple[int, int] = (48, 32)) -> Path:
    """An H.264 video whose frame k is uniformly grey with brightness 20 + 20 k."""
    import imageio_ffmpeg

    W, H = size
    writer = imageio_ffmpeg.write_frames(
        str(path), (W, H), fps=10, codec="libx264", quality=9, ffmpeg_log_level="error"
    )
    writer.send(None)
    for k in range(frames):
        writer.send(np.full((H, W, 3), 20 + 20 * k, np.uint8))
    writer.close()
    return path


def truncate(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def assert_no_output(out: Path) -> None:
    """Nothing that looks like (part of) an output folder was left behind."""
    assert not out.exists(), f"{out} was created"
    if out.parent.exists():
        leftovers = [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]
        assert not leftovers, leftovers


@pytest.fixture
def helpers() -> SimpleNamespace:
    return SimpleNamespace(
        write_images=write_images,
        png16=png16,
        write_video=write_video,
        truncate=truncate,
        no_output=assert_no_output,
    )


@pytest.fixture
def cli(capsys):
    """Run ``rayzer ARGS``: returns (exit code, stdout, stderr)."""

    def run(*args: str | Path) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run
