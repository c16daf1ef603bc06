"""Texture bank for the synthetic scenes: real photographs + periodic procedural patterns.

The bank is built once per process (``functools.lru_cache``) and holds every texture as a
``TEXTURE_SIZE``² RGB image with a full mip pyramid (128, 64, ..., 1), flattened into one
``(3, total_texels)`` float32 array so that texture look-ups for all pixels of all frames are a
single vectorised gather (trilinear: two mip levels × 4 bilinear taps).

Photographs come from ``skimage.data`` (they ship inside scikit-image, no download). Grey-scale
photographs and all procedural patterns are stored grey (R = G = B) and are coloured per surface
by an affine colour map ``colour = base + gain * texel`` (see :class:`Material`), so one bank
serves many looks. Procedural patterns are periodic over the tile, so they repeat seamlessly.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from PIL import Image

TEXTURE_SIZE = 128
MIP_LEVELS = 8  # 128, 64, 32, 16, 8, 4, 2, 1

# Photographs shipped inside scikit-image (checked to load offline). Colour ones keep their colours.
COLOUR_PHOTOS = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
)
GREY_PHOTOS = ("brick", "grass", "gravel", "camera", "moon", "coins", "text")


@dataclass(frozen=True)
class TextureBank:
    """All textures with their mip pyramids in one flat array.

    Attributes:
        names: texture names, ``(T,)``.
        is_photo: ``(T,)`` bool, True for photographs.
        is_colour: ``(T,)`` bool, True for colour photographs (False: grey, to be colour-mapped).
        texels: ``(3, total)`` float32 in [0, 1]; texture ``k`` level ``l`` texel ``(y, x)`` sits at
            ``base[k] + level_offset[l] + y * level_size[l] + x``.
        base: ``(T,)`` int64 start of each texture in ``texels``.
        level_offset: ``(MIP_LEVELS,)`` int64 start of each level inside one texture.
        level_size: ``(MIP_LEVELS,)`` int64 side length of each level.
    """

    names: tuple[str, ...]
    is_photo: np.ndarray
    is_colour: np.ndarray
    texels: np.ndarray
    base: np.ndarray
    level_offset: np.ndarray
    level_size: np.ndarray

    def indices(self, kind: str) -> np.ndarray:
        """Texture ids of one kind: ``"colour_photo"``, ``"grey_photo"``, ``"procedural"``, ``"grey"``."""
        if kind == "colour_photo":
            mask = self.is_colour
        elif kind == "grey_photo":
            mask = self.is_photo & ~self.is_colour
        elif kind == "procedural":
            mask = ~self.is_photo
        elif kind == "grey":
            mask = ~self.is_colour
        else:
            raise ValueError(f"unknown texture kind {kind!r}")
        return np.flatnonzero(mask)


def _square_resize(img: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop to a square and resize (Pillow LANCZOS, antialiased) -> (size, size, C) float32."""
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[..., :3]
    h, w = img.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    img = np.ascontiguousarray(img[top : top + s, left : left + s])
    if img.dtype != np.uint8:
        img = np.clip(np.asarray(img, np.float64) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    pil = Image.fromarray(img).resize((size, size), Image.Resampling.LANCZOS)
    out = np.asarray(pil, np.float32) / 255.0
    return out if out.ndim == 3 else out[..., None]


def _load_photo(name: str) -> np.ndarray:
    import skimage.data  # local import: only needed when the bank is built

    return _square_resize(getattr(skimage.data, name)(), TEXTURE_SIZE)


def _normalise(x: np.ndarray) -> np.ndarray:
    lo, hi = float(x.min()), float(x.max())
    return ((x - lo) / max(hi - lo, 1e-8)).astype(np.float32)


def _periodic_noise(rng: np.random.Generator, size: int, cutoff: float) -> np.ndarray:
    """Band-limited white noise: low-pass in Fourier space, hence exactly periodic over the tile."""
    f = np.fft.fftfreq(size) * size
    radius = np.sqrt(f[:, None] ** 2 + f[None, :] ** 2)
    spectrum = np.fft.fft2(rng.standard_normal((size, size))) * np.exp(-((radius / cutoff) ** 2))
    return _normalise(np.real(np.fft.ifft2(spectrum)))


def _procedural_patterns(size: int) -> dict[str, np.ndarray]:
    """Grey periodic patterns in [0, 1] (size, size); fixed RNG so the bank never changes."""
    rng = np.random.default_rng(20240521)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size  # [0, 1) over one tile
    tau = 2.0 * np.pi
    pats: dict[str, np.ndarray] = {}
    for k in (2, 4, 8):
        pats[f"checker{k}"] = ((np.floor(x * k) + np.floor(y * k)) % 2).astype(np.float32)
    pats["stripes4"] = (np.floor(y * 8) % 2).astype(np.float32)
    pats["stripes_diag"] = (np.floor((x + y) * 6) % 2).astype(np.float32)
    pats["sine"] = 0.5 + 0.5 * np.sin(tau * 3 * x) * np.cos(tau * 2 * y)
    pats["ramp"] = 1.0 - np.abs(2.0 * x - 1.0)  # periodic triangle-wave gradient
    pats["ramp_diag"] = 0.5 + 0.5 * np.cos(tau * (x + 2 * y))
    pats["grid"] = ((np.abs((x * 4) % 1 - 0.5) > 0.42) | (np.abs((y * 4) % 1 - 0.5) > 0.42)).astype(
        np.float32
    )
    dx, dy = (x * 5) % 1 - 0.5, (y * 5) % 1 - 0.5
    pats["dots"] = (dx**2 + dy**2 < 0.3**2).astype(np.float32)
    row = np.floor(y * 8)
    bx = (x * 4 + 0.5 * (row % 2)) % 1
    by = (y * 8) % 1
    pats["bricks"] = ((bx > 0.06) & (by > 0.12)).astype(np.float32)
    for cutoff in (3.0, 8.0, 20.0):
        pats[f"noise{int(cutoff)}"] = _periodic_noise(rng, size, cutoff)
    pats["marble"] = _normalise(np.sin(tau * (2 * x + 3 * _periodic_noise(rng, size, 4.0))))
    pats["plaster"] = 0.35 + 0.3 * _periodic_noise(rng, size, 30.0)  # low-contrast wall finish
    return {k: np.asarray(v, np.float32) for k, v in pats.items()}


def _mip_pyramid(tex: np.ndarray) -> list[np.ndarray]:
    """2×2 box-filter pyramid down to 1×1; tex is (S, S, 3)."""
    levels = [tex]
    for _ in range(MIP_LEVELS - 1):
        t = levels[-1]
        levels.append(0.25 * (t[0::2, 0::2] + t[1::2, 0::2] + t[0::2, 1::2] + t[1::2, 1::2]))
    return levels


@functools.lru_cache(maxsize=1)
def texture_bank() -> TextureBank:
    """Build (once per process) and return the texture bank."""
    textures: list[np.ndarray] = []
    names: list[str] = []
    is_photo: list[bool] = []
    is_colour: list[bool] = []
    for name in COLOUR_PHOTOS:
        textures.append(_load_photo(name))
        names.append(name)
        is_photo.append(True)
        is_colour.append(True)
    for name in GREY_PHOTOS:
        textures.append(_normalise(_load_photo(name)[..., :1].mean(-1, keepdims=True)))
        names.append(name)
        is_photo.append(True)
        is_colour.append(False)
    for name, pat in _procedural_patterns(TEXTURE_SIZE).items():
        textures.append(pat[..., None])
        names.append(name)
        is_photo.append(False)
        is_colour.append(False)

    level_size = np.array([TEXTURE_SIZE >> lv for lv in range(MIP_LEVELS)], np.int64)
    level_offset = np.concatenate([[0], np.cumsum(level_size**2)[:-1]]).astype(np.int64)
    per_texture = int((level_size**2).sum())
    texels = np.empty((len(textures) * per_texture, 3), np.float32)
    for k, tex in enumerate(textures):
        tex3 = np.broadcast_to(tex, (TEXTURE_SIZE, TEXTURE_SIZE, 3)).astype(np.float32)
        for lv, level in enumerate(_mip_pyramid(tex3)):
            start = k * per_texture + level_offset[lv]
            texels[start : start + level_size[lv] ** 2] = level.reshape(-1, 3)
    texels = np.ascontiguousarray(texels.T)  # channel-first: gathers return (3, ...) directly
    texels.setflags(write=False)
    return TextureBank(
        names=tuple(names),
        is_photo=np.array(is_photo),
        is_colour=np.array(is_colour),
        texels=texels,
        base=np.arange(len(textures), dtype=np.int64) * per_texture,
        level_offset=level_offset,
        level_size=level_size,
    )


def sample_textures(
    bank: TextureBank, tex_id: np.ndarray | int, uv: np.ndarray, level: np.ndarray
) -> np.ndarray:
    """Trilinear, wrap-around texture look-up.

    Args:
        bank: the texture bank.
        tex_id: texture id (int) or ``(M,)`` ints.
        uv: ``(2, M)`` texture coordinates in tiles (1.0 = one texture repeat; u along x, v along y).
        level: ``(M,)`` mip level (0 = full resolution), clipped to the pyramid.
    Returns:
        ``(3, M)`` float32 texel colours.
    """
    level = np.clip(level, 0.0, MIP_LEVELS - 1.0).astype(np.float32)
    lo = np.floor(level).astype(np.int64)
    hi = np.minimum(lo + 1, MIP_LEVELS - 1)
    w_hi = level - lo
    frac = (uv - np.floor(uv)).astype(np.float32)  # wrap into [0, 1)
    base = bank.base[tex_id]
    idx_lo, w_lo = _bilinear_taps(bank, base, frac, lo)
    idx_hi, w_hi4 = _bilinear_taps(bank, base, frac, hi)
    idx = np.concatenate([idx_lo, idx_hi])  # (8, M): 4 taps on each of two mip levels
    w = np.concatenate([w_lo * (1.0 - w_hi), w_hi4 * w_hi])
    return np.einsum("ckm,km->cm", bank.texels[:, idx], w)


def _bilinear_taps(bank: TextureBank, base, frac: np.ndarray, lv: np.ndarray):
    """Flat texel indices ``(4, M)`` and weights ``(4, M)`` of bilinear filtering on level ``lv``."""
    size = bank.level_size[lv]
    start = base + bank.level_offset[lv]
    sf = size.astype(np.float32)
    x = frac[0] * sf - 0.5  # texel centres at +0.5
    y = frac[1] * sf - 0.5
    x0f, y0f = np.floor(x), np.floor(y)
    wx, wy = x - x0f, y - y0f
    x0 = x0f.astype(np.int64) % size
    y0 = y0f.astype(np.int64) % size
    x1 = (x0 + 1) % size
    y1 = (y0 + 1) % size
    row0, row1 = start + y0 * size, start + y1 * size
    idx = np.stack([row0 + x0, row0 + x1, row1 + x0, row1 + x1])
    w = np.stack([(1 - wx) * (1 - wy), wx * (1 - wy), (1 - wx) * wy, wx * wy])
    return idx, w
