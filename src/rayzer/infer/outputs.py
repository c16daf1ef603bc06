"""Everything ``rayzer infer`` writes: the output folder (staged, then moved into place), the
camera exports, renders, the novel-view video / GIF and the camera-frustum plot.

Output folder layout::

    images/NNN_<name>.png      the input views as the model saw them (H x W)
    cameras.json               predicted cameras (scene-folder format: OpenCV c2w, pixel K of
                               images/); per frame also the source file and its intrinsics
    sparse/0/{cameras,images,points3D}.txt    COLMAP text model (points3D empty)
    transforms.json            nerfstudio (OpenGL c2w), file paths into images/
    renders/NNN_<name>.png     the input views rendered back from the scene
    depth/NNN_<name>.{npy,png} camera z-depth of each view (models with depth): float32 array in
                               the model's scale, and a colour picture of inverse depth
    points.ply                 models with depth: coloured point cloud, one point per input
                               pixel (depth/ unprojected through cameras.json, colour of images/,
                               normals from the depth map; MeshLab / CloudCompare / Open3D)
    gaussians.ply              the scene's 3D Gaussians, standard 3DGS layout (models with
                               Gaussians; any 3DGS viewer opens it)
    novel_views.mp4 / .gif     the smooth path through the cameras, then the spiral (at the
                               input size, or short side --render-size for models with Gaussians)
    novel_cameras.json         the cameras of every novel-view frame (pixel intrinsics of its size)
    cameras.png                camera-frustum plot
    summary.json               inputs, model, per-stage timings, peak memory, PSNR

With ``--refine``, when the refined cameras are kept (``summary.json["refine"]["cameras"]``),
everything is at them: cameras.json, sparse/0, transforms.json and cameras.png hold them, and
the scene is rebuilt there (``summary.json["refine"]["rebuilt"]``): the model's Gaussians are
re-lifted along the refined cameras' rays at the model's depth, rotations turned with each
camera, and gaussians.ply, renders/, depth/, points.ply and the novel views come from them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from rayzer.data.formats.export import write_colmap_text, write_transforms_json
from rayzer.data.scene_folder import CAMERAS_JSON, write_scene_folder
from rayzer.infer.predict import Cameras


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """``(N, 3, H, W)`` float in [0, 1] → ``(N, H, W, 3)`` uint8 (rounded)."""
    x = images.detach().float().clamp(0, 1).mul(255).add(0.5).to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def write_exports(
    folder: Path,
    images: np.ndarray,
    names: Sequence[str],
    cameras: Cameras,
    meta: dict[str, Any] | None = None,
    frame_extras: Sequence[dict[str, Any]] | None = None,
    scene: str | None = None,
) -> list[str]:
    """Write the scene folder (``images/`` + ``cameras.json``), the COLMAP text model and
    ``transforms.json`` for ``(V, H, W, 3)`` uint8 ``images`` and their cameras.

    ``folder`` must not exist yet (it is created atomically by the scene-folder writer);
    ``scene`` names the scene in ``cameras.json``. Returns the relative paths written.
    """
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
    write_scene_folder(
        folder,
        x,
        cameras.c2w.double(),
        cameras.K.double(),
        names=names,
        scene=scene,
        meta=meta,
    )
    if frame_extras is not None:  # per-frame provenance beside the scene-folder keys
        doc = json.loads((folder / CAMERAS_JSON).read_text())
        for frame, extra in zip(doc["frames"], frame_extras):
            for key, value in extra.items():
                frame.setdefault(key, value)
        (folder / CAMERAS_JSON).write_text(json.dumps(doc, indent=1, allow_nan=False))
    files = [f"{n}.png" for n in names]
    size = (cameras.width, cameras.height)
    write_colmap_text(folder / "sparse" / "0", files, cameras.c2w, cameras.K, size)
    write_transforms_json(
        folder / "transforms.json",
        [f"images/{f}" for f in files],
        cameras.c2w,
        cameras.K,
        size,
        extra={"generator": "rayzer infer (predicted cameras)"},
    )
    return [
        "images/",
        CAMERAS_JSON,
        "sparse/0/cameras.txt",
        "sparse/0/images.txt",
        "sparse/0/points3D.txt",
        "transforms.json",
    ]


def write_pngs(
    folder: Path, frames: np.ndarray, names: Sequence[str], text: dict[str, str] | None = None
) -> None:
    """One PNG per frame; ``text``: tEXt metadata chunks written into each."""
    folder.mkdir(parents=True, exist_ok=True)
    info = None
    if text:
        from PIL.PngImagePlugin import PngInfo

        info = PngInfo()
        for key, value in text.items():
            info.add_text(key, value)
    for frame, name in zip(frames, names):
        Image.fromarray(frame).save(folder / f"{name}.png", pnginfo=info)


#: The smallest far / near ratio the depth colour map spans. The map is stretched over the
#: views' own depth percentiles, so without a floor a nearly constant depth (the bundled NAS3R:
#: 98th / 2nd percentile ratio 1.003-1.03) would fill the whole colour map and look structured.
#: 1.5 is below every exact depth of the synthetic test scenes (orbit 4.4-20, walk 1.6-4.4), so
#: real structure is shown as before and a flat map renders (nearly) one colour.
MIN_DEPTH_DISPLAY_RATIO = 1.5


def depth_display_range(depth: torch.Tensor) -> tuple[float, float]:
    """The (near, far) depths at the ends of :func:`depth_to_rgb`'s colour map.

    The 2nd and 98th percentiles of the valid (finite, > 0) depths of all N views, widened
    about their geometric mean to a far / near ratio of at least
    :data:`MIN_DEPTH_DISPLAY_RATIO`; (1, 1.5) when no depth is valid.

    Args:
        depth: (N, 1, H, W) depth.
    """
    d = depth.detach().float().cpu()
    values = d[torch.isfinite(d) & (d > 0)]
    if values.numel() == 0:
        return 1.0, MIN_DEPTH_DISPLAY_RATIO
    near, far = torch.quantile(values, 0.02).item(), torch.quantile(values, 0.98).item()
    if far < near * MIN_DEPTH_DISPLAY_RATIO:
        centre, half = math.sqrt(near * far), math.sqrt(MIN_DEPTH_DISPLAY_RATIO)
        near, far = centre / half, centre * half
    return near, far


def depth_to_rgb(depth: torch.Tensor) -> np.ndarray:
    """``(N, 1, H, W)`` depth → ``(N, H, W, 3)`` uint8 turbo colours of inverse depth.

    One range for all N views (:func:`depth_display_range`: the 2nd-98th percentiles, spanning
    a far / near ratio of at least :data:`MIN_DEPTH_DISPLAY_RATIO`), so the colours compare
    across views and a nearly constant depth stays nearly one colour: near is red, far is
    blue; depth <= 0 (nothing there) is black. Colours are linear in inverse depth.
    """
    from matplotlib import colormaps

    d = depth.detach().float().cpu()[:, 0]
    valid = torch.isfinite(d) & (d > 0)
    inv = torch.where(valid, 1.0 / d.clamp_min(1e-8), torch.zeros_like(d))
    near, far = depth_display_range(depth)
    lo, hi = 1.0 / far, 1.0 / near
    t = ((inv - lo) / max(hi - lo, 1e-12)).clamp(0, 1)
    rgb = colormaps["turbo"](t.numpy())[..., :3]
    rgb[~valid.numpy()] = 0.0
    return (rgb * 255 + 0.5).astype(np.uint8)


def depth_range_text(depth: torch.Tensor) -> str:
    """The colour map's ends in words (for a picture's title or metadata)."""
    near, far = depth_display_range(depth)
    return f"turbo colours linear in 1/depth: red = depth {near:.4g}, blue = depth {far:.4g}"


def write_depth(folder: Path, depth: torch.Tensor, names: Sequence[str]) -> None:
    """``depth/<name>.npy`` (H, W) float32 and ``depth/<name>.png`` (:func:`depth_to_rgb`,
    the colour map's depth range in the PNG's ``rayzer:depth_colours`` text chunk)."""
    folder.mkdir(parents=True, exist_ok=True)
    for d, name in zip(depth, names, strict=True):
        np.save(folder / f"{name}.npy", d[0].detach().float().cpu().numpy())
    write_pngs(
        folder, depth_to_rgb(depth), names, {"rayzer:depth_colours": depth_range_text(depth)}
    )


def write_gaussians(path: Path, gaussians: dict[str, torch.Tensor]) -> Path:
    """The Gaussians of :meth:`rayzer.models.base.RayModel.gaussians` as a 3DGS ``.ply``."""
    from rayzer.render import save_ply

    return save_ply(path, **{k: v.detach().float().cpu() for k, v in gaussians.items()})


def write_points(path: Path, depth: torch.Tensor, cameras: Cameras, images: np.ndarray) -> Path:
    """``points.ply``: the depth maps ``(V, 1, H, W)`` unprojected through ``cameras``, coloured by
    ``images`` ``(V, H, W, 3)`` uint8, with normals (:mod:`rayzer.infer.point_cloud`)."""
    from rayzer.infer.point_cloud import depth_to_points, save_point_cloud

    return save_point_cloud(path, depth_to_points(depth, cameras.c2w, cameras.K, images))


def write_mp4(path: Path, frames: np.ndarray, fps: float) -> None:
    """H.264 / yuv420p MP4 (plays in browsers) with the ffmpeg bundled by imageio-ffmpeg."""
    import imageio_ffmpeg

    _, h, w, _ = frames.shape
    writer = imageio_ffmpeg.write_frames(
        str(path),
        (w, h),
        fps=fps,
        codec="libx264",
        pix_fmt_out="yuv420p",
        quality=8,
        macro_block_size=2,  # yuv420p needs even sizes; ours are multiples of the patch size
        ffmpeg_log_level="error",
    )
    writer.send(None)
    try:
        for frame in frames:
            writer.send(np.ascontiguousarray(frame))
    finally:
        writer.close()


def write_gif(path: Path, frames: np.ndarray, fps: float, workers: int | None = None) -> None:
    """Looping GIF (Pillow), one palette per frame.

    The palettes (Pillow's adaptive quantization, what its GIF writer would do to RGB frames
    itself, so the file is byte-identical) are computed on ``workers`` threads (default
    ``torch.get_num_threads()``): quantizing is most of the time (0.75 s for 120 frames of
    64 x 64 on one core, 0.35 s on two) and Pillow releases the GIL while it runs.
    """
    from concurrent.futures import ThreadPoolExecutor

    def palette(frame: np.ndarray) -> Image.Image:
        return Image.fromarray(frame).convert("P", palette=Image.Palette.ADAPTIVE)

    workers = max(1, torch.get_num_threads() if workers is None else int(workers))
    with ThreadPoolExecutor(workers) as pool:
        imgs = list(pool.map(palette, frames))
    imgs[0].save(
        path,
        save_all=True,
        append_images=imgs[1:],
        duration=max(20, round(1000 / fps)),
        loop=0,
        optimize=False,
    )


def cameras_json(cameras: Cameras, kind: Sequence[str]) -> dict[str, Any]:
    """The cameras of the novel-view frames as JSON (scene-folder keys, no image files)."""
    frames = []
    for i in range(len(cameras)):
        fx, fy, cx, cy = (float(v) for v in cameras.K[i])
        frames.append(
            {
                "frame": i,
                "path": kind[i],
                "width": cameras.width,
                "height": cameras.height,
                "fx": fx,
                "fy": fy,
                "cx": cx,
                "cy": cy,
                "c2w": cameras.c2w[i].double().tolist(),
            }
        )
    return {"convention": "OpenCV c2w, pixel intrinsics (see cameras.json)", "frames": frames}


def set_cube_limits(ax: Any, points: np.ndarray, min_half: float) -> None:
    """Equal-aspect 3-D axes: a cube around the finite ``points`` (N, 3), half side at least
    ``min_half``, with a 20 % margin (matplotlib scales 3-D axes independently otherwise)."""
    points = points[np.isfinite(points).all(1)]
    mid = points.mean(0)
    half = max(float(np.abs(points - mid).max()), min_half) * 1.2
    for axis, centre in zip("xyz", mid):
        getattr(ax, f"set_{axis}lim")(centre - half, centre + half)
    ax.set_box_aspect((1, 1, 1))


def plot_cameras(
    path: Path,
    cameras: Cameras,
    novel: Sequence[Cameras] = (),
    title: str | None = None,
) -> None:
    """Camera-frustum plot (matplotlib 3-D): one pyramid per view coloured by capture order,
    the canonical view in red, novel-view paths as lines. Drawn with the canonical camera's
    "up" (−y) pointing up."""
    # A bare Figure (no pyplot): no global backend state, safe inside a server.
    import matplotlib
    from matplotlib.figure import Figure
    from mpl_toolkits.mplot3d import Axes3D  # noqa: F401  (registers the 3-D projection)
    from mpl_toolkits.mplot3d.art3d import Line3DCollection

    c2w = cameras.c2w.double().numpy()
    centres = c2w[:, :3, 3]
    V = len(cameras)
    spread = np.linalg.norm(centres - centres.mean(0), axis=1).max() if V > 1 else 0.0
    extent = max(spread, 1e-3)
    depth = 0.3 * extent if spread > 1e-6 else 0.1
    fx, fy, cx, cy = cameras.K[0].double().tolist()
    W, H = cameras.width, cameras.height
    corners_px = [(0, 0), (W, 0), (W, H), (0, H)]
    corners_cam = np.array([[(u - cx) / fx, (v - cy) / fy, 1.0] for u, v in corners_px]) * depth

    def view(p: np.ndarray) -> np.ndarray:  # world (x, y, z) -> plot (x, z, -y)
        return np.stack((p[..., 0], p[..., 2], -p[..., 1]), axis=-1)

    fig = Figure(figsize=(6.4, 6.4), dpi=100)
    ax = fig.add_subplot(projection="3d")
    cmap = matplotlib.colormaps["viridis"]
    canonical = cameras.canonical
    # All frustum edges in one collection: one artist instead of 5 per camera (the first plot of
    # a process took 0.28 CPU-s with per-edge lines and tight_layout, 0.11 with this).
    segments, colors, widths = [], [], []
    for i in range(V):
        color = "red" if i == canonical else cmap(i / max(V - 1, 1))
        apex = view(c2w[i, :3, 3])
        pts = view(corners_cam @ c2w[i, :3, :3].T + c2w[i, :3, 3])
        segments += [(apex, p) for p in pts]  # apex to image corners
        segments += [(pts[k], pts[(k + 1) % 4]) for k in range(4)]  # the image rectangle
        colors += [color] * 8
        widths += [1.0] * 4 + [1.5] * 4
    ax.add_collection3d(Line3DCollection(segments, colors=colors, linewidths=widths))
    for cams, style in zip(novel, ("--", ":")):
        p = view(cams.c2w[:, :3, 3].double().numpy())
        ax.plot(p[:, 0], p[:, 1], p[:, 2], style, color="gray", linewidth=1.0)
    allp = view(np.vstack([centres] + [c.c2w[:, :3, 3].double().numpy() for c in novel]))
    set_cube_limits(ax, allp, depth)
    ax.set_xlabel("x")
    ax.set_ylabel("z (forward)")
    ax.set_zlabel("-y (up)")
    ax.set_title(title or f"{V} predicted cameras (red: canonical)")
    # The margins tight_layout finds for this figure, fixed: it draws the figure once more.
    fig.subplots_adjust(left=0.0, right=0.93, bottom=0.03, top=0.95)
    fig.savefig(path)
