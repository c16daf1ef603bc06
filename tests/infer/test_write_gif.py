"""write_gif quantizes the frames on worker threads: the file is byte-identical to Pillow's own
GIF writer given the RGB frames, for any number of workers."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from rayzer.infer.outputs import write_gif


def _frames() -> np.ndarray:
    """12 RGB frames of 24 x 20 px with more than 256 colours each (so quantizing matters)."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:20, 0:24]
    base = np.stack((x * 10, y * 12, (x + y) * 5), -1)
    return np.stack([(base + rng.integers(0, 40, base.shape) + 7 * i) % 256 for i in range(12)])


@pytest.mark.parametrize("workers", [1, 2, 5])
def test_gif_is_byte_identical_to_pillows_own(tmp_path, workers):
    frames = _frames().astype(np.uint8)
    assert len(np.unique(frames[0].reshape(-1, 3), axis=0)) > 256
    imgs = [Image.fromarray(f) for f in frames]  # Pillow quantizes RGB frames itself
    imgs[0].save(tmp_path / "pillow.gif", save_all=True, append_images=imgs[1:], duration=42,
                 loop=0, optimize=False)  # fmt: skip
    write_gif(tmp_path / "ours.gif", frames, 24.0, workers=workers)
    assert (tmp_path / "ours.gif").read_bytes() == (tmp_path / "pillow.gif").read_bytes()
    with Image.open(tmp_path / "ours.gif") as gif:
        assert gif.n_frames == len(frames) and gif.size == (24, 20)
