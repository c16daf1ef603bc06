"""Issue 19's "8 views at 128 px in <= 120 s, held-out >= +3 dB": what the 128 px Gaussian fit
costs and which lever brings it down (docs/benchmarks/splat-fit/README.md, "128 px in 120 s?").

Three sub-commands, all at 1 thread, printing JSON lines (and a Markdown table for ``fit``):

``dump``  runs a model once on a folder of photos at a given input size and saves what the fit
          needs (the scene, the photos at 64 and 128 px, background, near, canonical view) to a
          ``.pt`` file, so every experiment starts from the same prediction:

    python fit128.py dump --ckpt /work/runs/sbs/nas3r --images fox_consec/images --size 128 \
        --out nas3r_128.pt

``profile`` times the parts of single fit steps at the photos' full size (projection, binning,
          compositing forward / backward, the rest of autograd, Adam) with cProfile:

    python fit128.py profile --scene nas3r_128.pt --size 128 --steps 3

``table`` prints the Markdown table of ``fit``'s JSON files (and merges them with ``--out``).

``fit``   runs the fit of all views and the leave-one-out figure (view V // 2 + 1, as
          ``rayzer infer --fit``) with one :class:`~rayzer.refine.splat.SplatFitConfig` variant
          per ``--variant NAME:key=value,...`` and reports CPU seconds of this process (the
          honest figure on a shared machine), wall seconds and the load average:

    python fit128.py fit --scene nas3r_128.pt --size 128 --variant default: \
        --variant coarse:level_share=3/2/1 --out results.json

The scene may be predicted at a smaller size than ``--size`` (e.g. the model's 64 px training
size, 4x fewer Gaussians): the fit renders its Gaussians at ``--size``; the "before" figures are
that scene rendered at ``--size``.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import time
from pathlib import Path

import torch


def _dump(args: argparse.Namespace) -> None:
    from rayzer.data.images import load_image_folder
    from rayzer.infer.model import load_model
    from rayzer.infer.predict import as_images, build_scene, predict_cameras

    model = load_model(args.ckpt, torch.device("cpu"))
    photos = {}
    for s in sorted({64, 128, args.size}):
        views = load_image_folder(args.images, s, model.patch_size, max_views=args.max_views)
        photos[s] = as_images(views, model)
    x = photos[args.size]
    cams = predict_cameras(model, x)
    scene = build_scene(model, x, cams)
    torch.save(
        {
            "scene": scene,
            "photos": photos,
            "background": model.model.cfg.background,
            "near": model.model.cfg.near_plane,
            "canonical": cams.canonical,
            "model": Path(args.ckpt).name,
            "predicted_at": args.size,
            "images": str(args.images),
        },
        args.out,
    )
    print(json.dumps({"dumped": str(args.out), "gaussians": int(scene.means.shape[1])}))


def _load(path: Path):
    return torch.load(path, weights_only=False)


def _number(text: str) -> int | float:
    """``3`` → 3, ``1.5`` / ``1e-3`` → float."""
    return float(text) if "." in text or "e" in text.lower() else int(text)


def _parse_variant(text: str) -> tuple[str, dict]:
    """``name:key=value,key=value``; tuples as ``a/b/c`` (``level_share``'s of any numbers,
    e.g. ``2.5/1/1``; ``levels``' integers); ``none`` for None."""
    name, _, rest = text.partition(":")
    out: dict = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        if value.lower() == "none":
            out[key] = None
        elif "/" in value or key in ("levels", "level_share"):
            cast = int if key == "levels" else _number
            out[key] = tuple(cast(v) for v in value.split("/") if v)
        elif value.lower() in ("true", "false"):
            out[key] = value.lower() == "true"
        else:
            out[key] = _number(value)
    return name, out


def _fit(args: argparse.Namespace) -> None:
    from rayzer.refine.splat import SplatFitConfig, fit_scene, held_out_fit_psnr

    d = _load(args.scene)
    images = d["photos"][args.size]
    scene = d["scene"]
    v = images.shape[0]
    view = (v // 2 + 1) % v
    render = {"background": d["background"], "near": d["near"]}
    # the view whose pose the fits hold: the model's canonical one (as rayzer infer --fit), or
    # the middle one (SplatFitConfig's default; what rayzer infer held before f9f947f)
    anchor = d["canonical"] if args.anchor == "canonical" else v // 2
    rows = []
    for text in args.variant:
        name, kw = _parse_variant(text)
        kw.setdefault("steps", args.steps)
        kw.setdefault("refine_cameras", args.fit_cameras)
        cfg = SplatFitConfig(**kw)
        torch.manual_seed(0)
        load0 = os.getloadavg()
        c0, w0 = time.process_time(), time.perf_counter()
        fit = fit_scene(images, scene, config=cfg, anchor=anchor, **render)
        c1, w1 = time.process_time(), time.perf_counter()
        held = held_out_fit_psnr(images, scene, view, config=cfg, anchor=anchor, **render)
        c2, w2 = time.process_time(), time.perf_counter()
        row = {
            "variant": name,
            "config": {k: (list(x) if isinstance(x, tuple) else x) for k, x in kw.items()},
            "model": d["model"],
            "gaussians": int(scene.means.shape[1]),
            "predicted_at_px": d["predicted_at"],
            "fit_at_px": args.size,
            "views": v,
            "anchor": anchor,
            "train_psnr_before": round(fit.psnr_before, 3),
            "train_psnr_after": round(fit.psnr_after, 3),
            "held_out_view": view,
            "held_out_psnr_before": round(held.psnr_before, 3),
            "held_out_psnr_after": round(held.psnr_after, 3),
            "held_out_gain_db": round(held.psnr_after - held.psnr_before, 3),
            # the headline above: the left-out camera fitted to its image (scene frozen);
            # here at the placed camera (predicted; after: following its neighbour)
            "held_out_placed_before": round(held.placed_before, 3),
            "held_out_placed_after": round(held.placed_after, 3),
            "held_out_camera_steps": held.camera_steps,
            "fit_cpu_s": round(c1 - c0, 1),
            "fit_wall_s": round(w1 - w0, 1),
            "held_out_cpu_s": round(c2 - c1, 1),
            "held_out_wall_s": round(w2 - w1, 1),
            "stopped": fit.stopped,
            "held_out_stopped": held.result.stopped,
            "load_1min_before_after": [round(load0[0], 2), round(os.getloadavg()[0], 2)],
            "threads": torch.get_num_threads(),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.out is not None:
            old = json.loads(args.out.read_text()) if args.out.exists() else []
            args.out.write_text(json.dumps([*old, row], indent=1) + "\n")
    print(_markdown(rows))


def _table(args: argparse.Namespace) -> None:
    """The Markdown table of the rows of ``fit``'s JSON files, in the order given."""
    rows = [r for f in args.json for r in json.loads(f.read_text())]
    if args.out is not None:
        args.out.write_text(json.dumps(rows, indent=1) + "\n")
    print(_markdown(rows))


def _markdown(rows: list[dict]) -> str:
    head = (
        "| variant | model | Gaussians | px | anchor | train PSNR before → after | held-out PSNR before → "
        "after (gain) | fit CPU s | fit wall s | held-out CPU s | load |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    return head + "\n".join(
        f"| {r['variant']} | {r['model']} | {r['gaussians']} | {r['fit_at_px']} | "
        f"{r.get('anchor', '–')} | {r['train_psnr_before']} → {r['train_psnr_after']} | {r['held_out_psnr_before']} → "
        f"{r['held_out_psnr_after']} ({r['held_out_gain_db']:+.2f}) | {r['fit_cpu_s']} | "
        f"{r['fit_wall_s']} | {r['held_out_cpu_s']} | "
        f"{r['load_1min_before_after'][0]}–{r['load_1min_before_after'][1]} |"
        for r in rows
    )


def _profile(args: argparse.Namespace) -> None:
    """A few fit steps at full size under cProfile; prints the cumulative seconds of the parts."""
    from rayzer.refine.splat import SplatFitConfig, fit_scene

    d = _load(args.scene)
    images = d["photos"][args.size]
    _, kw = _parse_variant("p:" + (args.config or ""))
    # levels=() and steps: every step at full size
    cfg = SplatFitConfig(steps=args.steps, levels=(), log_every_s=1e9, **kw)
    fit_scene(images, d["scene"], config=SplatFitConfig(steps=1, levels=()), **_render(d))  # warm
    prof = cProfile.Profile(time.process_time)  # CPU seconds: the machine is shared
    c0 = time.process_time()
    prof.enable()
    res = fit_scene(images, d["scene"], config=cfg, anchor=d["canonical"], **_render(d))
    prof.disable()
    cpu = time.process_time() - c0
    stats = pstats.Stats(prof)
    wanted = {
        "fit_scene": "whole fit (incl. 2 PSNR renders)",
        "render_views": "PSNR renders (no grad)",
        "project_gaussians": "projection",
        "bin_gaussians": "binning",
        "_tile_coefficients": "tile coefficients",
        "_plan": "chunk plan",
        "forward": "compositing forward (autograd.Function)",
        "backward": "compositing backward",
        "run_backward": "autograd backward, all (incl. compositing)",
        "_single_tensor_adam": "Adam",
        "step": "optimizer step (Adam incl.)",
        "sh_to_rgb": "SH colours",
        "guard": "divergence guard",
        "gaussians": "Gaussians from parameters",
    }
    found = {}
    for (file, _line, func), (_cc, _nc, _tt, ct, _callers) in stats.stats.items():
        if func in wanted and ("rayzer" in file or "torch" in file):
            key = f"{func} ({Path(file).name})"
            found[key] = round(found.get(key, 0.0) + ct, 3)
    print(
        json.dumps(
            {
                "scene": str(args.scene),
                "size": args.size,
                "steps": args.steps,
                "gaussians": int(d["scene"].means.shape[1]),
                "cpu_s": round(cpu, 2),
                "per_step_cpu_s": round(cpu / args.steps, 3),
                "load": os.getloadavg()[0],
                "cumulative_s": dict(sorted(found.items(), key=lambda kv: -kv[1])),
                "stopped": res.stopped,
            },
            indent=1,
        )
    )
    stats.sort_stats("tottime").print_stats(args.top)
    if args.callers:
        stats.print_callers(*args.callers)


def _render(d: dict) -> dict:
    return {"background": d["background"], "near": d["near"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("dump")
    a.add_argument("--ckpt", type=Path, required=True)
    a.add_argument("--images", type=Path, required=True)
    a.add_argument("--size", type=int, default=128)
    a.add_argument("--max-views", type=int, default=8)
    a.add_argument("--out", type=Path, required=True)
    b = sub.add_parser("profile")
    b.add_argument("--scene", type=Path, required=True)
    b.add_argument("--size", type=int, default=128)
    b.add_argument("--steps", type=int, default=3)
    b.add_argument("--config", default="", help="SplatFitConfig overrides, key=value,...")
    b.add_argument("--top", type=int, default=25)
    b.add_argument("--callers", nargs="*", help="also print the callers of these functions")
    c = sub.add_parser("fit")
    c.add_argument("--scene", type=Path, required=True)
    c.add_argument("--size", type=int, default=128)
    c.add_argument("--steps", type=int, default=100)
    c.add_argument("--fit-cameras", action="store_true")
    c.add_argument("--anchor", choices=("canonical", "middle"), default="canonical")
    c.add_argument("--variant", action="append", required=True, help="name:key=value,...")
    c.add_argument("--out", type=Path)
    t = sub.add_parser("table")
    t.add_argument("json", type=Path, nargs="+", help="results JSON files of fit")
    t.add_argument("--out", type=Path, help="also write all rows to this JSON file")
    args = p.parse_args()
    torch.set_num_threads(1)
    {"dump": _dump, "profile": _profile, "fit": _fit, "table": _table}[args.cmd](args)


if __name__ == "__main__":
    main()
