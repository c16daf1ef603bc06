"""Arguments and handler of ``rayzer infer`` (registered by :mod:`rayzer.cli`).

Kept free of heavy imports at module level: the CLI parser is built on every ``rayzer`` call.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from rayzer.bundled import CKPT_HELP
from rayzer.utils.logs import command_logging, set_threads

DESCRIPTION = (
    "Predict the cameras of 2-64 unposed photos (or video frames) of a static scene, render the "
    "views back and novel views, and export the cameras for COLMAP, nerfstudio and Gaussian-"
    "splatting trainers. Views are ordered by natural sort of the file names (video: frame "
    "order), made upright (EXIF), converted to RGB, scaled to cover the model input and "
    "centre-cropped. Outputs are written to a temporary folder and moved to --out only when "
    "complete."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", type=Path, help="folder of images (or with an images/ subfolder)")
    src.add_argument("--video", type=Path, help="video file (frames evenly spaced over it)")
    p.add_argument("--ckpt", help=CKPT_HELP)
    p.add_argument("--out", type=Path, help="output folder (default: outputs/infer/<input name>)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument(
        "--size",
        type=int,
        help="short side of the model input in pixels, a multiple of the patch size (default: "
        "the model's training size; the short side of a run trained at [H, W])",
    )
    p.add_argument(
        "--aspect",
        choices=["square", "keep"],
        default="square",
        help="square: centre-crop to SIZE x SIZE (the training distribution of a square-trained "
        "model); keep: keep the first view's aspect ratio (long side <= 2 x SIZE)",
    )
    p.add_argument(
        "--max-views",
        type=int,
        default=24,
        help="use at most N views (2-64), evenly spaced in capture order (default 24)",
    )
    p.add_argument(
        "--skip-bad",
        action="store_true",
        help="skip undecodable images with a warning instead of failing",
    )
    p.add_argument("--path-frames", type=int, default=60, help="novel views along the cameras")
    p.add_argument("--spiral-frames", type=int, default=60, help="novel views on the spiral")
    p.add_argument("--fps", type=float, default=24.0, help="frame rate of the novel-view video")
    p.add_argument(
        "--render-size",
        type=int,
        help="short side of the novel-view video in pixels, even (default: the input size); "
        "models with 3D Gaussians (E-RayZer, NAS3R) only",
    )
    p.add_argument(
        "--init-cameras",
        choices=["model", "matches"],
        default="model",
        help="model: the model's cameras (default); matches: cameras solved from SIFT matches "
        "of the photos at their own resolution and bundle-adjusted (OpenCV; --images only), "
        "before --refine / --fit; views the matches cannot register keep the model's cameras; "
        "--refine then holds the registered views' cameras (and the focal) exactly and moves "
        "only the others (summary.json: refine.held)",
    )
    p.add_argument(
        "--refine",
        type=int,
        default=0,
        metavar="STEPS",
        help="refine the predicted cameras by photometric bundle adjustment on the model's depth "
        "(STEPS iterations, e.g. 150; models with depth only); summary.json gets before/after "
        "figures; after --init-cameras matches only the views the matches did not register "
        "move. The cameras only: the Gaussians are moved along, not fitted; add --fit STEPS "
        "for them (e.g. --refine 150 --fit 100 --fit-size 128)",
    )
    p.add_argument(
        "--fit",
        type=int,
        default=0,
        metavar="STEPS",
        help="fit the model's 3D Gaussians to the input views through the rasterizer (STEPS "
        "Adam steps, e.g. 100; E-RayZer, NAS3R), after --refine; with 3 or more views kept "
        "only if a left-out view's PSNR does not fall; gaussians.ply, renders, depth, points "
        "and the video then come from the fitted scene; summary.json gets before/after figures",
    )
    p.add_argument(
        "--fit-cameras",
        action="store_true",
        help="with --fit: also fit every camera's pose and the shared focal",
    )
    p.add_argument(
        "--fit-size",
        type=int,
        metavar="N",
        help="with --fit: fit the Gaussians to the photos at short side N pixels (same crop; "
        "default: --size), e.g. --size 64 --fit-size 128: the model at its training size, the "
        "fit at 128 px",
    )
    p.add_argument("--threads", type=int, help="CPU threads for PyTorch (default: its own)")
    p.add_argument("--quiet", action="store_true", help="no progress output (errors only)")


def main(args: argparse.Namespace) -> None:
    from contextlib import ExitStack

    from tqdm.contrib.logging import logging_redirect_tqdm

    from rayzer.infer.pipeline import InferenceError, run_inference
    from rayzer.infer.progress import StageBar

    logged = [logging.getLogger("rayzer.infer"), logging.getLogger("rayzer.refine")]
    restore_logging = command_logging(logged[0], args.quiet)
    restore_refine_logging = command_logging(logged[1], args.quiet)
    progress = not args.quiet and sys.stderr.isatty()
    try:
        if args.fit_cameras and not args.fit:
            raise ValueError("--fit-cameras needs --fit STEPS")
        set_threads(args.threads)
        with ExitStack() as bars:  # --refine / --fit: a bar with ETA each, closed on errors too
            refine_bar = fit_bar = None
            if progress:
                refine_bar = bars.enter_context(StageBar("refine"))
                fit_bar = bars.enter_context(StageBar("fit"))
                # log lines printed above the bars, not into them
                bars.enter_context(logging_redirect_tqdm(loggers=logged))
            result = run_inference(
                images=args.images,
                video=args.video,
                ckpt=args.ckpt,
                out=args.out,
                device=args.device,
                size=args.size,
                aspect=args.aspect,
                max_views=args.max_views,
                skip_bad=args.skip_bad,
                path_frames=args.path_frames,
                spiral_frames=args.spiral_frames,
                fps=args.fps,
                overwrite=args.overwrite,
                progress=progress,
                render_size=args.render_size,
                refine=args.refine,
                refine_progress=refine_bar,
                fit=args.fit,
                fit_cameras=args.fit_cameras,
                fit_progress=fit_bar,
                fit_size=args.fit_size,
                init_cameras=args.init_cameras,
            )
    except (FileNotFoundError, ValueError):
        raise
    except (FileExistsError, InferenceError, OSError) as err:  # reported as a clean error
        raise ValueError(str(err)) from err
    finally:
        restore_logging()
        restore_refine_logging()
    s = result.summary
    t = s["timings_s"]
    print(
        f"wrote {result.out}: {s['input']['used']} views at {s['preprocessing']['width']}x"
        f"{s['preprocessing']['height']}, reconstruction PSNR "
        f"{s['reconstruction_psnr_db']['mean']} dB, {sum(s['novel_views']['segments'].values())} "
        f"novel views, {t['total']:.2f} s total "
        f"(cameras {t['predict_cameras']:.2f} s, renders "
        f"{t['render_inputs'] + t['render_novel']:.2f} s), peak memory "
        f"{s['peak_memory_mb']['cpu_rss']} MB"
    )
    if "init_cameras" in s:
        init = s["init_cameras"]
        print(
            f"cameras from matches: {init.get('num_registered', 0)}/{init['views']} views "
            f"registered, {init['pairs_kept']}/{init['pairs']} pairs kept, {init['seconds']} s"
            + (f"; {init['warning']}" if init.get("warning") else "")
        )
    if "refine" in s:
        print(refine_summary_line(s["refine"]))
    if "fit" in s:
        fit, held = s["fit"], s["fit"].get("held_out")
        left_out = "no left-out check (needs 3 views)"
        if held:
            placed = held.get("placed") or {}
            left_out = f"left-out view {held['psnr_before']} -> {held['psnr_after']} dB" + (
                f" (its camera fitted to it; at the placed camera {placed['psnr_before']} -> "
                f"{placed['psnr_after']} dB)"
                if held.get("headline") == "camera fitted"
                else ""
            )
        print(
            f"fit: input views {fit['train_psnr_before']} -> {fit['train_psnr_after']} dB, "
            f"{left_out}, {fit['total_seconds']} s; kept the {fit['scene']} scene"
            + (f" ({fit['stopped'] or fit['rejected']})" if fit["scene"] == "input" else "")
        )


def _db(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def refine_summary_line(report: dict) -> str:
    """One line on what ``--refine`` did, from ``summary.json["refine"]``: the reprojection and
    left-out PSNRs before -> after, iterations, seconds, and which cameras were kept (the
    refined ones, or the input ones and why: rejected by the left-out view, stopped, not run).
    """
    why = report.get("stopped")
    parts = []
    if "reprojection_psnr_before" in report:  # absent when the refinement did not run
        parts.append(
            f"reprojection PSNR {_db(report['reprojection_psnr_before'])} -> "
            f"{_db(report['reprojection_psnr_after'])} dB"
        )
        held_out = report.get("held_out")
        if held_out:
            parts.append(
                f"left-out view {held_out['view']} {_db(held_out['psnr_before'])} -> "
                f"{_db(held_out['psnr_after'])} dB"
            )
        parts.append(f"{report.get('iterations', '?')} iterations")
    if report.get("held"):
        parts.append(f"views {report['held']} held")
    parts.append(f"{report.get('total_seconds', 0.0)} s")
    if report.get("cameras") == "refined":
        kept = "kept the refined cameras"
    elif report.get("rejected"):  # the reason in full is logged as a warning
        kept = "kept the input cameras (rejected by the leave-one-out check)"
    else:
        kept = "kept the input cameras" + (
            f" ({why.removesuffix('; the input cameras are kept')})" if why else ""
        )
    return f"refine: {', '.join(parts)}; {kept}"


SERVE_DESCRIPTION = (
    "A local web demo (Gradio, extra [demo]): upload photos or a video, or pick a built-in "
    "synthetic example; see the predicted cameras, the novel-view video and the renders, and "
    "download a zip of all outputs. Listens on 127.0.0.1 by default."
)


def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ckpt", help=CKPT_HELP)
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: local)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--frames", type=int, default=48, help="novel views per path segment")
    p.add_argument(
        "--max-upload-mb",
        type=float,
        default=50.0,
        help="largest upload accepted per request, in MB (default 50)",
    )
    p.add_argument(
        "--max-refine-steps",
        type=int,
        default=100,  # rayzer.infer.serve.MAX_REFINE_STEPS (not imported: it loads torch)
        help="most camera-refinement iterations one request may ask for (models with depth; "
        "default 100, 0 = refinement off)",
    )


def serve_main(args: argparse.Namespace) -> None:
    from rayzer.infer.serve import serve

    if not 0 < args.port < 65536:
        raise ValueError(f"--port must be in 1..65535, got {args.port}")
    if args.frames < 1:
        raise ValueError(f"--frames must be >= 1, got {args.frames}")
    serve(
        args.ckpt,
        host=args.host,
        port=args.port,
        device=args.device,
        frames=args.frames,
        max_upload_mb=args.max_upload_mb,
        max_refine_steps=args.max_refine_steps,
    )
