"""Refinement with its honest figures, as ``rayzer infer --refine STEPS`` reports it.

:func:`refine_with_report` refines all the views' cameras (:func:`rayzer.refine.refine_cameras`)
and, separately, computes the leave-one-out figure of one view
(:func:`rayzer.refine.held_out_psnr`), returning the cameras to keep and a JSON-ready dict for
``summary.json``. The leave-one-out figure is the honest one (the reprojection PSNR is the
objective itself), so when it falls the refined cameras are rejected and the input ones kept.
Shapes and conventions as in :mod:`rayzer.refine.bundle`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor

from rayzer.refine.bundle import RefineConfig, RefineResult, refine_cameras
from rayzer.refine.depth import clean_depth
from rayzer.refine.held_out import HeldOutFigure, held_out_psnr

log = logging.getLogger("rayzer.refine")

#: ``progress(done, total, stage)``: the progress of :func:`refine_with_report` as one count over
#: its refinements (``stage`` says which: the cameras, or the leave-one-out check), e.g. for a
#: progress bar; ``done == total`` at the end.
ReportProgress = Callable[[int, int, str], None]
#: The stages ``progress`` names.
REFINE_STAGE = "refining the cameras"
HELD_OUT_STAGE = "leave-one-out check"


def refine_with_report(
    images: Tensor,
    c2w: Tensor,
    K: Tensor,
    depth: Tensor,
    steps: int,
    *,
    held_out: bool = True,
    anchor: int | None = None,
    held: Sequence[int] | None = None,
    progress: ReportProgress | None = None,
    on_reached: Callable[[Tensor, Tensor], None] | None = None,
) -> tuple[Tensor, Tensor, dict[str, Any]]:
    """Refine the cameras of ``images`` (V, 3, H, W) from ``c2w`` (V, 4, 4), pixel ``K`` (V, 4)
    and z-depth ``depth`` (V, h, w) with ``steps`` iterations.

    Returns:
        ``(c2w, K, report)``: the cameras to keep and the report: reprojection PSNR
        before/after, seconds, and, when ``held_out`` and V >= 3, the leave-one-out PSNR of view
        ``(V // 2 + 1) % V`` before/after with its own seconds. ``report["cameras"]`` says
        which cameras are returned: ``"refined"``, or ``"input"`` when the refinement stopped
        (``report["stopped"]`` says why) or when the leave-one-out figure rejects them
        (``report["rejected"]`` says why; a warning is logged too): its PSNR fell, became
        non-finite, or the refined cameras' render no longer covers any of the view. The
        leave-one-out PSNRs are over the pixels both of its renders cover
        (``report["held_out"]["compared"]``); when there is none but the refined render still
        covers some of the view, the figure is None and cannot reject the refinement.

    ``anchor``: the view whose pose is held (the model's canonical view; default the middle
    one, as :func:`~rayzer.refine.refine_cameras`).

    ``held``: views whose cameras stay exactly as given (pose and intrinsics, bit for bit), e.g.
    the views that feature matches registered (:mod:`rayzer.infer.matched_init`): their bundle
    adjustment on real correspondences is better evidence than the photometry on a model's
    depth. Only the other views' poses move; the shared focal scale is held too (it would move
    the held views' intrinsics), and the leave-one-out refinement holds them as well.
    ``report["held"]`` lists them; when every view is held nothing is refined
    (``report["cameras"] == "input"``, ``report["stopped"]`` says so).

    ``progress``: see :data:`ReportProgress` (one refinement of ``steps`` iterations, three
    more for the leave-one-out figure).

    ``on_reached(c2w, K)``: called once with the cameras the refinement itself reached
    (:attr:`~rayzer.refine.RefineResult.reached_c2w`), whether they are kept or not, e.g. to
    score what a rejected or stopped refinement would have given; not called when no refinement
    ran (no usable depth).
    """
    if steps < 1:
        raise ValueError(f"--refine: the number of steps must be >= 1, got {steps}")
    cfg = RefineConfig(steps=steps)
    t0 = time.perf_counter()
    v = images.shape[0]
    held = sorted({int(i) for i in held or []})
    if any(not 0 <= i < v for i in held):  # a negative index would silently hold another view
        raise ValueError(f"held views must be view indices in [0, {v}), got {held}")
    held_part: dict[str, Any] = {"held": held} if held else {}
    if held:
        # one focal scale is shared by all views: refining it would move the held views' K
        cfg = replace(cfg, refine_focal=False)
        if anchor is None or anchor not in held:
            anchor = held[0]  # the held views fix the gauge; no further view need be held

    def not_run(why: str) -> tuple[Tensor, Tensor, dict[str, Any]]:
        """The input cameras kept, with the reason in the report."""
        report = {"steps": steps, **held_part, "stopped": why, "rejected": None}
        report["cameras"] = "input"
        report["total_seconds"] = round(time.perf_counter() - t0, 2)
        return c2w.detach().float().clone(), K.detach().float().clone(), report

    if held and len(held) == v:
        why = "refinement not run: every view's camera is held; the input cameras are kept"
        log.info("refine: %s", why)
        return not_run(why)
    if not (clean_depth(depth) > 0).any():
        # e.g. every pixel nearly transparent: there is nothing to reproject, so the refinement
        # cannot start; the caller's result stands (as when a refinement stops), and is said
        why = "refinement not run: no pixel has a usable depth; the input cameras are kept"
        log.warning("refine: %s", why)
        return not_run(why)
    with_held_out = held_out and v >= 3
    total = steps * (4 if with_held_out else 1)

    def stage(offset: int, name: str) -> dict[str, Any]:
        """``on_step`` for a refinement starting at ``offset`` of the count (none without
        ``progress``, so stand-ins without the argument still fit)."""
        if progress is None:
            return {}
        return {"on_step": lambda done, _n: progress(offset + done, total, name)}

    result = refine_cameras(
        images, c2w, K, depth, config=cfg, anchor=anchor, held=held, **stage(0, REFINE_STAGE)
    )
    if held:  # exactly the input (the update is an exact identity there; this makes it plain)
        result = _with_held(result, c2w, K, held)
    if on_reached is not None and result.reached_c2w is not None:
        on_reached(result.reached_c2w.detach().clone(), result.reached_K.detach().clone())
    report: dict[str, Any] = {"steps": steps, **held_part, **result.summary()}
    report["reprojection_psnr_before"] = report.pop("psnr_before")
    report["reprojection_psnr_after"] = report.pop("psnr_after")
    log.info(
        "refine: reprojection PSNR %.2f -> %.2f dB in %.1f s%s",
        result.psnr_before,
        result.psnr_after,
        result.seconds,
        f" ({result.stopped})" if result.stopped else "",
    )
    keep_c2w, keep_K = result.c2w, result.K
    report["rejected"] = None
    if with_held_out:
        view = (v // 2 + 1) % v
        t1 = time.perf_counter()
        phase: dict[str, Any] = stage(steps, HELD_OUT_STAGE)
        if held:  # (only then: stand-ins without the argument still fit)
            phase["held"] = held
        fig = held_out_psnr(images, c2w, K, depth, view, config=cfg, anchor=anchor, **phase)
        report["held_out"] = {**fig.summary(), "seconds": round(time.perf_counter() - t1, 2)}
        log.info(
            "refine: held-out view %d PSNR %.2f -> %.2f dB", view, fig.psnr_before, fig.psnr_after
        )
        report["rejected"] = _held_out_verdict(fig, result) if result.stopped is None else None
        if report["rejected"] is not None:
            log.warning("refine: %s", report["rejected"])
            keep_c2w, keep_K = (x.detach().float().clone() for x in (c2w, K))
    refined = result.stopped is None and report["rejected"] is None
    report["cameras"] = "refined" if refined else "input"
    report["total_seconds"] = round(time.perf_counter() - t0, 2)
    return keep_c2w, keep_K, report


def _with_held(result: RefineResult, c2w: Tensor, K: Tensor, held: list[int]) -> RefineResult:
    """``result`` with the ``held`` views' cameras (kept and reached) copied from the input."""
    idx = torch.tensor(held, device=result.c2w.device)

    def put(out: Tensor | None, src: Tensor) -> Tensor | None:
        if out is None:
            return None
        out = out.detach().clone()
        out[idx] = src.detach().to(out)[idx]
        return out

    result.c2w, result.K = put(result.c2w, c2w), put(result.K, K)
    result.reached_c2w, result.reached_K = put(result.reached_c2w, c2w), put(result.reached_K, K)
    return result


def _held_out_verdict(fig: HeldOutFigure, result: RefineResult) -> str | None:
    """Why the leave-one-out figure rejects the refined cameras, or None (kept).

    Rejected when its PSNR fell, when it is not finite after refinement though it was before
    (a diverged render), or when the refined cameras' render covers none of the held-out view
    that the starting cameras' render covered (nothing of it is predicted any more). With no
    pixel covered by both renders otherwise, the figure cannot judge: kept, with a warning.
    """
    view = fig.view
    if fig.covered_before > 0 and fig.covered_after == 0:
        return (
            f"with the refined cameras no pixel of the other views reaches view {view} (the "
            f"starting cameras covered {fig.covered_before:.1%} of it): the refined cameras do "
            "not predict a left-out view; the input cameras are kept"
        )
    if math.isfinite(fig.psnr_before) and not math.isfinite(fig.psnr_after):
        return (
            f"the leave-one-out PSNR of view {view} is not finite after refinement "
            f"({fig.psnr_before:.3f} dB before): the input cameras are kept"
        )
    if not (math.isfinite(fig.psnr_before) and math.isfinite(fig.psnr_after)):
        log.warning(
            "refine: no pixel of held-out view %d is covered by both its renders; the "
            "leave-one-out figure cannot judge the refinement",
            view,
        )
        return None
    if fig.psnr_after < fig.psnr_before:
        return (
            f"the leave-one-out PSNR of view {view} fell ({fig.psnr_before:.3f} -> "
            f"{fig.psnr_after:.3f} dB) although the reprojection PSNR rose "
            f"({result.psnr_before:.3f} -> {result.psnr_after:.3f} dB): the refined cameras "
            "fit the views they were fitted to but predict a left-out view worse; the input "
            "cameras are kept"
        )
    return None
