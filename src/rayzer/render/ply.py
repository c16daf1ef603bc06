"""Standard 3DGS ``.ply`` files: what SuperSplat, gsplat's viewer and nerfstudio open.

Layout (one ``vertex`` element, binary little-endian float32, in this order): ``x y z``,
``nx ny nz`` (zeros), ``f_dc_0..2`` (SH DC per channel), ``f_rest_0..`` (the other SH
coefficients, **channel-major**: ``f_rest_{c * (K-1) + k}`` is coefficient ``k + 1`` of channel
``c``), ``opacity`` (logit), ``scale_0..2`` (natural log), ``rot_0..3`` (quaternion ``w x y z``).
Plain RGB colours are stored as the DC term ``(rgb - 0.5) / C0``.

Written with numpy (the layout is one structured array; no plyfile dependency). The reader
accepts any property order, big- or little-endian binary files, other scalar types and extra
elements before the vertices (e.g. from other tools), and names the missing field and the file
when a ply is not a 3DGS one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rayzer.render.sh import SH_C0, sh_degree_from_bases

__all__ = ["GaussianPly", "load_ply", "save_ply"]

_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip
_MAX_HEADER_LINES = 10_000  # a longer header is not a ply header (e.g. a binary file)
_OPACITY_EPS = 1e-7  # opacities are clamped to [eps, 1 - eps] so the logit stays finite
_SCALE_MIN = 1e-30  # scales are clamped below so the log stays finite


@dataclass
class GaussianPly:
    """Gaussians as a 3DGS ply stores them (float32 CPU tensors, raw parameters).

    Attributes:
        means: ``(N, 3)``; quats: ``(N, 4)`` ``(w, x, y, z)`` as stored (not normalised);
        log_scales: ``(N, 3)``; opacity_logits: ``(N,)``; sh: ``(N, K, 3)`` with ``K = (d+1)²``.

    ``scales``, ``opacities`` and ``colors`` give the activated values that :func:`rasterize`
    takes (``colors`` is the SH tensor, or RGB ``(N, 3)`` when only the DC term is stored).
    """

    means: torch.Tensor
    quats: torch.Tensor
    log_scales: torch.Tensor
    opacity_logits: torch.Tensor
    sh: torch.Tensor

    @property
    def scales(self) -> torch.Tensor:
        return torch.exp(self.log_scales.double()).float()

    @property
    def opacities(self) -> torch.Tensor:
        return torch.sigmoid(self.opacity_logits.double()).float()

    @property
    def sh_degree(self) -> int:
        return sh_degree_from_bases(self.sh.shape[1])

    @property
    def colors(self) -> torch.Tensor:
        if self.sh.shape[1] == 1:
            return (self.sh[:, 0].double() * SH_C0 + 0.5).float()
        return self.sh

    def __len__(self) -> int:
        return self.means.shape[0]

    @classmethod
    def from_activated(
        cls,
        means: torch.Tensor,
        quats: torch.Tensor,
        scales: torch.Tensor,
        opacities: torch.Tensor,
        colors: torch.Tensor,
    ) -> GaussianPly:
        """From :func:`rasterize`'s inputs of one scene: ``(N, 3)``, ``(N, 4)``, ``(N, 3)``,
        ``(N,)`` and ``colors (N, 3)`` RGB or ``(N, K, 3)`` SH. Log / logit in float64."""
        n = means.shape[0]
        shapes = {"means": (means, (n, 3)), "quats": (quats, (n, 4)), "scales": (scales, (n, 3))}
        shapes["opacities"] = (opacities, (n,))
        for name, (x, shape) in shapes.items():
            if tuple(x.shape) != shape:
                raise ValueError(f"{name}: expected shape {shape}, got {tuple(x.shape)}")
        if colors.ndim == 2 and colors.shape == (n, 3):
            sh = ((colors.detach().double() - 0.5) / SH_C0)[:, None, :]
        elif colors.ndim == 3 and colors.shape[0] == n and colors.shape[2] == 3:
            sh_degree_from_bases(colors.shape[1])
            sh = colors.detach().double()
        else:
            raise ValueError(
                f"colors: expected (N, 3) RGB or (N, K, 3) SH, got {tuple(colors.shape)}"
            )
        o = opacities.detach().double().clamp(_OPACITY_EPS, 1 - _OPACITY_EPS)
        return cls(
            means=means.detach().cpu().float(),
            quats=quats.detach().cpu().float(),
            log_scales=torch.log(scales.detach().double().clamp_min(_SCALE_MIN)).cpu().float(),
            opacity_logits=torch.logit(o).cpu().float(),
            sh=sh.cpu().float(),
        )

    def field_names(self) -> list[str]:
        """Property names in file order."""
        k = self.sh.shape[1]
        return (
            ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
            + [f"f_rest_{i}" for i in range(3 * (k - 1))]
            + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
        )

    def save(self, path: str | Path) -> Path:
        """Write the binary little-endian ply; returns the path."""
        n, k = self.sh.shape[:2]
        sh = self.sh.numpy()
        rest = sh[:, 1:, :].transpose(0, 2, 1).reshape(n, 3 * (k - 1))  # channel-major
        columns = np.concatenate(
            [
                self.means.numpy(),
                np.zeros((n, 3), np.float32),
                sh[:, 0, :],
                rest,
                self.opacity_logits.numpy()[:, None],
                self.log_scales.numpy(),
                self.quats.numpy(),
            ],
            axis=1,
        ).astype("<f4")
        names = self.field_names()
        header = "ply\nformat binary_little_endian 1.0\n" + f"element vertex {n}\n"
        header += "".join(f"property float {name}\n" for name in names) + "end_header\n"
        path = Path(path)
        with open(path, "wb") as f:
            f.write(header.encode("ascii"))
            f.write(np.ascontiguousarray(columns).tobytes())
        return path


def save_ply(
    path: str | Path,
    means: torch.Tensor,
    quats: torch.Tensor,
    scales: torch.Tensor,
    opacities: torch.Tensor,
    colors: torch.Tensor,
) -> Path:
    """Write one scene's Gaussians (activated values, as :func:`rasterize` takes them, without
    the batch dim) as a standard 3DGS ply. See :meth:`GaussianPly.from_activated`."""
    return GaussianPly.from_activated(means, quats, scales, opacities, colors).save(path)


def _read_header(f, path: Path) -> tuple[str, list[tuple[str, int, list[tuple[str, str]]]]]:
    if f.readline().strip() != b"ply":
        raise ValueError(f"{path}: not a ply file (no 'ply' magic line)")
    fmt = None
    elements: list[tuple[str, int, list[tuple[str, str]]]] = []
    for number in range(2, _MAX_HEADER_LINES):
        raw = f.readline()
        if not raw:
            raise ValueError(f"{path}: truncated ply header (no end_header)")
        words = raw.decode("ascii", errors="replace").split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        if words[0] == "end_header":
            break
        try:
            if words[0] == "format":
                fmt = words[1]
            elif words[0] == "element":
                count = int(words[2])
                if count < 0:
                    raise ValueError("negative count")
                elements.append((words[1], count, []))
            elif words[0] == "property":
                if not elements:
                    raise ValueError(f"{path}: property before any element in the ply header")
                if words[1] == "list":
                    elements[-1][2].append((words[4], "list"))
                elif words[1] in _PLY_TYPES:
                    elements[-1][2].append((words[2], _PLY_TYPES[words[1]]))
                else:
                    raise ValueError(f"{path}: unknown ply property type {words[1]!r}")
        except (IndexError, ValueError) as err:
            if str(err).startswith(str(path)):
                raise
            line = raw.decode("ascii", errors="replace").strip()
            raise ValueError(f"{path}: malformed ply header line {number}: {line!r}") from None
    else:
        raise ValueError(f"{path}: no end_header in the first {_MAX_HEADER_LINES} lines")
    if fmt not in ("binary_little_endian", "binary_big_endian"):
        raise ValueError(
            f"{path}: ply format {fmt!r} is not supported (binary only; 3DGS tools write "
            "binary_little_endian)"
        )
    return fmt, elements


#: Vertex properties every 3DGS ply has (``f_rest_*`` and the normals are optional).
REQUIRED_PROPERTIES = (
    ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity"]
    + [f"scale_{i}" for i in range(3)]
    + [f"rot_{i}" for i in range(4)]
)


def _check_required(path: Path, names: tuple[str, ...], elements: list[str]) -> None:
    """Name the first missing 3DGS property, how many more are missing, and what the file seems
    to be instead (a mesh or a coloured point cloud are the usual cases)."""
    missing = [name for name in REQUIRED_PROPERTIES if name not in names]
    if not missing:
        return
    more = f" (and {len(missing) - 1} more: {', '.join(missing[1:])})" if len(missing) > 1 else ""
    has = ", ".join(names) if len(names) <= 12 else ", ".join(names[:12]) + ", ..."
    kind = ""
    if "face" in elements:
        kind = "; it has faces: a mesh, not 3D Gaussians"
    elif {"x", "y", "z"} <= set(names) and not any(n.startswith("scale_") for n in names):
        kind = "; a point cloud, not 3D Gaussians"
    raise ValueError(
        f"{path}: not a 3DGS ply, missing vertex property {missing[0]!r}{more}; the vertices "
        f"have: {has or 'no properties'}{kind}"
    )


def load_ply(path: str | Path) -> GaussianPly:
    """Read a 3DGS ply (see the module docstring for the layout).

    Raises:
        ValueError: not a binary ply, no ``vertex`` element, a required property missing (named
            with the file), an ``f_rest`` count that is not an SH layout, or a truncated file.
    """
    path = Path(path)
    with open(path, "rb") as f:
        fmt, elements = _read_header(f, path)
        endian = "<" if fmt == "binary_little_endian" else ">"
        body = f.read()
    vertex = None
    offset = 0
    for name, count, props in elements:
        if any(t == "list" for _, t in props):
            if name == "vertex":
                raise ValueError(f"{path}: list properties in the vertex element")
            raise ValueError(f"{path}: list-valued element {name!r} before the vertices")
        dtype = np.dtype([(p, endian + t) for p, t in props])
        if offset + dtype.itemsize * count > len(body):
            raise ValueError(f"{path}: truncated ply ({name}: {count} rows expected)")
        data = np.frombuffer(body, dtype=dtype, count=count, offset=offset)
        offset += dtype.itemsize * count
        if name == "vertex":
            vertex = data
            break
    if vertex is None:
        raise ValueError(f"{path}: no 'vertex' element in the ply")
    fields = set(vertex.dtype.names or ())
    _check_required(path, vertex.dtype.names or (), [name for name, _, _ in elements])
    n_rest = sum(1 for name in fields if name.startswith("f_rest_"))
    k = n_rest // 3 + 1
    if n_rest % 3 or (math.isqrt(k) ** 2 != k) or k > 25:
        raise ValueError(
            f"{path}: {n_rest} f_rest properties do not form an SH layout of degree <= 4"
        )
    for i in range(n_rest):
        if f"f_rest_{i}" not in fields:
            raise ValueError(f"{path}: not a 3DGS ply, missing vertex property 'f_rest_{i}'")

    def cols(names: list[str]) -> torch.Tensor:
        if not names:
            return torch.zeros(len(vertex), 0)
        arr = np.stack([vertex[name].astype(np.float32) for name in names], axis=1)
        return torch.from_numpy(np.ascontiguousarray(arr).reshape(len(vertex), len(names)))

    n = len(vertex)
    dc = cols(["f_dc_0", "f_dc_1", "f_dc_2"])
    rest = cols([f"f_rest_{i}" for i in range(n_rest)]).reshape(n, 3, k - 1).transpose(1, 2)
    return GaussianPly(
        means=cols(["x", "y", "z"]),
        quats=cols([f"rot_{i}" for i in range(4)]),
        log_scales=cols([f"scale_{i}" for i in range(3)]),
        opacity_logits=cols(["opacity"])[:, 0].contiguous(),
        sh=torch.cat((dc[:, None, :], rest), dim=1).contiguous(),
    )
