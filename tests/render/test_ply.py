"""3DGS .ply files: exact round trips, gsplat's layout, clear errors for foreign files."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from rayzer.render import GaussianPly, load_ply, save_ply


def _gaussians(n=50, degree=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        "means": torch.randn(n, 3, generator=g),
        "quats": torch.randn(n, 4, generator=g),
        "scales": torch.rand(n, 3, generator=g) * 0.1 + 1e-3,
        "opacities": torch.rand(n, generator=g) * 0.98 + 0.01,
        "colors": torch.randn(n, (degree + 1) ** 2, 3, generator=g),
    }


def test_round_trip_is_exact(tmp_path):
    a = GaussianPly.from_activated(**_gaussians())
    a.save(tmp_path / "a.ply")
    b = load_ply(tmp_path / "a.ply")
    for name in ("means", "quats", "log_scales", "opacity_logits", "sh"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    b.save(tmp_path / "b.ply")
    assert (tmp_path / "a.ply").read_bytes() == (tmp_path / "b.ply").read_bytes()


def test_activated_values_survive_to_float32_precision(tmp_path):
    g = _gaussians(degree=0)
    rgb = torch.rand(50, 3)
    save_ply(tmp_path / "g.ply", g["means"], g["quats"], g["scales"], g["opacities"], rgb)
    back = load_ply(tmp_path / "g.ply")
    assert back.sh_degree == 0 and len(back) == 50
    assert torch.equal(back.means, g["means"])
    assert torch.allclose(back.scales, g["scales"], rtol=1e-6)
    assert torch.allclose(back.opacities, g["opacities"], rtol=1e-6)
    assert torch.allclose(back.colors, rgb, atol=1e-6)


def test_layout_is_3dgs(tmp_path):
    save_ply(tmp_path / "g.ply", **_gaussians(n=3, degree=1))
    raw = (tmp_path / "g.ply").read_bytes()
    header = raw[: raw.index(b"end_header\n")].decode().splitlines()
    props = [line.split()[-1] for line in header if line.startswith("property")]
    assert props[:9] == ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    assert props[9:18] == [f"f_rest_{i}" for i in range(9)]
    assert props[18:] == [
        "opacity",
        "scale_0",
        "scale_1",
        "scale_2",
        "rot_0",
        "rot_1",
        "rot_2",
        "rot_3",
    ]
    assert "format binary_little_endian 1.0" in header
    assert len(raw) - raw.index(b"end_header\n") - 11 == 3 * len(props) * 4


def test_byte_identical_to_gsplat_save_ply(tmp_path):
    utils = pytest.importorskip(
        "gsplat.utils", reason="gsplat not installed (pip install --no-deps gsplat)"
    )
    g = _gaussians(n=20, degree=2)
    ours = GaussianPly.from_activated(**g)
    splats = {
        "means": ours.means,
        "scales": ours.log_scales,  # gsplat keeps raw parameters: log scales, logit opacities
        "quats": ours.quats,
        "opacities": ours.opacity_logits,
        "sh0": ours.sh[:, :1],
        "shN": ours.sh[:, 1:],
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        utils.save_ply(splats, str(tmp_path / "gsplat.ply"))
    ours.save(tmp_path / "ours.ply")
    assert (tmp_path / "ours.ply").read_bytes() == (tmp_path / "gsplat.ply").read_bytes()


def test_reads_gsplat_exporter_output(tmp_path):
    exporter = pytest.importorskip(
        "gsplat.exporter", reason="gsplat not installed (pip install --no-deps gsplat)"
    )
    g = GaussianPly.from_activated(**_gaussians(n=10, degree=1))
    exporter.export_splats(
        g.means, g.log_scales, g.quats, g.opacity_logits, g.sh[:, :1], g.sh[:, 1:],
        format="ply", save_to=str(tmp_path / "e.ply"),
    )  # fmt: skip
    back = load_ply(tmp_path / "e.ply")  # no normals in this file: the reader does not need them
    for name in ("means", "quats", "log_scales", "opacity_logits", "sh"):
        assert torch.equal(getattr(back, name), getattr(g, name)), name


def _write_ply(path, fields, rows, endian="<", extra_element=True):
    dtype = np.dtype([(name, endian + t) for name, t in fields])
    data = np.zeros(rows, dtype=dtype)
    for name in dtype.names:
        data[name] = np.arange(rows) + len(name)
    fmt = "binary_little_endian" if endian == "<" else "binary_big_endian"
    types = {"f4": "float", "f8": "double", "u1": "uchar"}
    lines = ["ply", f"format {fmt} 1.0", "comment made by a test"]
    if extra_element:
        lines += ["element camera 1", "property float fov"]
    lines += [f"element vertex {rows}"] + [f"property {types[t]} {n}" for n, t in fields]
    with open(path, "wb") as f:
        f.write(("\n".join([*lines, "end_header"]) + "\n").encode())
        if extra_element:
            f.write(np.array([1.0], dtype=endian + "f4").tobytes())
        f.write(data.tobytes())
    return data


def test_foreign_order_types_and_endianness(tmp_path):
    fields = [
        ("rot_0", "f4"),
        ("rot_1", "f4"),
        ("rot_2", "f4"),
        ("rot_3", "f4"),
        ("x", "f8"),
        ("y", "f8"),
        ("z", "f8"),
    ]
    fields += [
        ("red", "u1"),
        ("f_dc_0", "f4"),
        ("f_dc_1", "f4"),
        ("f_dc_2", "f4"),
        ("opacity", "f4"),
    ]
    fields += [("scale_0", "f4"), ("scale_1", "f4"), ("scale_2", "f4")]
    data = _write_ply(tmp_path / "f.ply", fields, 4, endian=">")
    g = load_ply(tmp_path / "f.ply")
    assert torch.equal(g.means[:, 0], torch.from_numpy(data["x"].astype(np.float32)))
    assert torch.equal(g.quats[:, 3], torch.from_numpy(data["rot_3"].astype(np.float32)))
    assert g.sh.shape == (4, 1, 3)


def test_missing_field_names_the_field_and_the_file(tmp_path):
    fields = [("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1")]
    _write_ply(tmp_path / "points.ply", fields, 3)
    with pytest.raises(ValueError, match=r"points\.ply.*missing vertex property 'f_dc_0'"):
        load_ply(tmp_path / "points.ply")


def test_not_a_ply_and_truncated(tmp_path):
    (tmp_path / "x.ply").write_bytes(b"hello\n")
    with pytest.raises(ValueError, match="not a ply"):
        load_ply(tmp_path / "x.ply")
    save_ply(tmp_path / "t.ply", **_gaussians(n=5, degree=0))
    raw = (tmp_path / "t.ply").read_bytes()
    (tmp_path / "t.ply").write_bytes(raw[:-10])
    with pytest.raises(ValueError, match="truncated"):
        load_ply(tmp_path / "t.ply")


def _header_ply(path, lines, body=b""):
    path.write_bytes(("\n".join(["ply", *lines, "end_header"]) + "\n").encode() + body)
    return path


def test_other_tools_files_are_named_for_what_they_are(tmp_path):
    """A coloured point cloud, a mesh and a splat missing one field: each error names the file,
    the first missing field (and how many more), what the vertices have, and what it looks like."""
    cloud = [("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")]
    _write_ply(tmp_path / "cloud.ply", cloud, 3, extra_element=False)
    with pytest.raises(ValueError) as err:
        load_ply(tmp_path / "cloud.ply")
    msg = str(err.value)
    assert "cloud.ply: not a 3DGS ply, missing vertex property 'f_dc_0' (and 10 more:" in msg
    assert "have: x, y, z, red, green, blue; a point cloud, not 3D Gaussians" in msg

    vertex = np.zeros(3, dtype="<f4,<f4,<f4").tobytes()
    face = np.array([3], "u1").tobytes() + np.array([0, 1, 2], "<i4").tobytes()
    lines = ["format binary_little_endian 1.0", "element vertex 3", "property float x",
             "property float y", "property float z", "element face 1",
             "property list uchar int vertex_indices"]  # fmt: skip
    _header_ply(tmp_path / "mesh.ply", lines, vertex + face)
    with pytest.raises(ValueError, match=r"mesh\.ply: .*'f_dc_0'.*it has faces: a mesh"):
        load_ply(tmp_path / "mesh.ply")

    fields = [(name, "f4") for name in ("x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity")]
    fields += [(f"scale_{i}", "f4") for i in range(3)] + [(f"rot_{i}", "f4") for i in range(3)]
    _write_ply(tmp_path / "splat.ply", fields, 2, extra_element=False)
    with pytest.raises(ValueError, match=r"splat\.ply: .*missing vertex property 'rot_3'; the"):
        load_ply(tmp_path / "splat.ply")


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["format ascii 1.0", "element vertex 1", "property float x"], "'ascii' is not supported"),
        (["format binary_little_endian 1.0", "element vertex many"], "malformed ply header line 3"),
        (["format binary_little_endian 1.0", "element vertex -4"], "malformed ply header line 3"),
        (["format binary_little_endian 1.0", "element vertex 1", "property float"], "line 4"),
        (["format"], "malformed ply header line 2: 'format'"),
        (["format binary_little_endian 1.0", "property float x"], "property before any element"),
        (["format binary_little_endian 1.0", "element v 1", "property half x"], "type 'half'"),
    ],
)
def test_malformed_headers_are_clear_errors(tmp_path, lines, message):
    _header_ply(tmp_path / "bad.ply", lines)
    with pytest.raises(ValueError, match=rf"bad\.ply: .*{message}"):
        load_ply(tmp_path / "bad.ply")


def test_binary_junk_after_the_magic_line_is_refused(tmp_path):
    (tmp_path / "junk.ply").write_bytes(b"ply\n" + b"x\n" * 20_000)
    with pytest.raises(ValueError, match=r"junk\.ply: no end_header in the first"):
        load_ply(tmp_path / "junk.ply")
