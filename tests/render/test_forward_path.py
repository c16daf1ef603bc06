"""The forward-only compositing path (no gradient wanted) against the differentiable path and
the dense reference: the same images, the same blocks composited."""

from __future__ import annotations

import pytest
import torch

from rayzer.render import composite_reference, composite_torch, project_gaussians
from rayzer.render.compositing_forward import _intra_op_threads, composite_forward

TOL = 1e-9  # float64


def _inputs(seed: int = 0, size: int = 16):
    """Deep, nearly opaque lists (early termination, lists longer than a block) and a few
    transparent Gaussians, screen-space inputs of ``composite_torch`` in float64."""
    from rayzer.bench.render import pixel_aligned_scene

    s = pixel_aligned_scene(size, inputs=4, targets=2, scale_px=0.8, dtype=torch.float64, seed=seed)
    W, H = s["width"], s["height"]
    proj = project_gaussians(
        s["means"], s["quats"], s["scales"], s["c2w"], s["K"], W, H, opacities=s["opacities"]
    )
    n_img, N = proj.depths.shape[1], s["means"].shape[1]
    feats = torch.cat((s["colors"][:, None].expand(1, n_img, N, 3), proj.depths[..., None]), -1)
    args = (
        proj.means2d.reshape(n_img, N, 2),
        proj.conics.reshape(n_img, N, 3),
        s["opacities"].expand(n_img, N).contiguous(),
        feats.reshape(n_img, N, 4),
        proj.depths.reshape(n_img, N),
    )
    return args, proj.extents.reshape(n_img, N, 2), W, H


@pytest.mark.parametrize(
    "knobs",
    [
        {},
        {"tile_size": 4, "k_block": 7, "chunk_elements": 1 << 12},  # many blocks and chunks
        {"tile_size": 8, "k_block": 1000, "chunk_elements": 1 << 22},
        {"tile_size": 5, "k_block": 13, "chunk_elements": 9000},  # tiles cut by the border
    ],
)
def test_forward_path_equals_differentiable_path_and_reference(knobs):
    args, extents, W, H = _inputs()
    ref_f, ref_a = composite_reference(*args, args[4] > 0.01, W, H)
    with torch.no_grad(), _intra_op_threads(1):  # one thread: the same chunks and blocks
        stats_fwd: dict[str, int] = {}
        f_fwd, a_fwd = composite_torch(*args, extents, W, H, stats=stats_fwd, **knobs)
    # The differentiable path runs when an input requires a gradient and autograd is on.
    grad_args = tuple(x.clone().requires_grad_(i < 4) for i, x in enumerate(args))
    stats_bwd: dict[str, int] = {}
    f_bwd, a_bwd = composite_torch(*grad_args, extents, W, H, stats=stats_bwd, **knobs)
    assert f_bwd.grad_fn is not None and f_fwd.grad_fn is None
    for out, ref in ((f_fwd, f_bwd), (a_fwd, a_bwd), (f_fwd, ref_f), (a_fwd, ref_a)):
        assert float((out - ref.detach()).abs().max()) < TOL
    # The same work: the same intersections and composited pairs; with the same chunk size
    # (the forward path's default is larger) also the same candidates and blocks.
    same = ("intersections", "pairs")
    assert {k: stats_fwd[k] for k in same} == {k: stats_bwd[k] for k in same}
    if "chunk_elements" in knobs:
        assert stats_fwd == stats_bwd
    assert stats_fwd["pairs"] < stats_fwd["candidates"]
    if knobs.get("k_block", 64) < 100:  # several blocks per list: whole blocks were skipped
        assert stats_fwd["blocks_used"] < stats_fwd["blocks"]
    assert float(ref_a.mean()) > 0.99


def test_forward_path_runs_under_inference_mode_and_for_inputs_without_grad():
    args, extents, W, H = _inputs(seed=1, size=12)
    ref_f, ref_a = composite_reference(*args, args[4] > 0.01, W, H)
    with torch.inference_mode():
        f_inf, a_inf = composite_torch(*args, extents, W, H)
    f_plain, a_plain = composite_torch(*args, extents, W, H)  # nothing requires grad
    assert f_plain.grad_fn is None
    for out, ref in ((f_inf, ref_f), (a_inf, ref_a), (f_plain, ref_f), (a_plain, ref_a)):
        assert float((out - ref).abs().max()) < TOL


def test_forward_path_with_nothing_visible():
    args, extents, W, H = _inputs(seed=2, size=8)
    with torch.no_grad():
        f, a = composite_torch(*args, torch.zeros_like(extents), W, H)
    assert f.shape == (args[0].shape[0], H, W, 4) and a.shape == (args[0].shape[0], H, W, 1)
    assert float(f.abs().max()) == 0.0 and float(a.abs().max()) == 0.0


def test_forward_path_is_taken_exactly_when_no_gradient_is_wanted(monkeypatch):
    """The forward-only path runs under no_grad / inference_mode or when no input requires a
    gradient, and never when autograd is on and any of means, conics, opacities or features
    requires one (then the output must carry a grad_fn)."""
    import rayzer.render.compositing_forward as forward

    calls = []
    real = forward.composite_tiles_forward
    monkeypatch.setattr(
        forward, "composite_tiles_forward", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    args, extents, W, H = _inputs(seed=3, size=8)

    def run(grad_input: int | None, mode) -> bool:
        calls.clear()
        xs = tuple(x.clone().requires_grad_(i == grad_input) for i, x in enumerate(args))
        with mode():
            f, _ = composite_torch(*xs, extents, W, H)
        assert (f.grad_fn is None) == bool(calls)
        return bool(calls)

    assert run(None, torch.enable_grad)  # nothing requires a gradient
    for i in range(4):
        assert run(i, torch.no_grad) and run(i, torch.inference_mode)
        assert not run(i, torch.enable_grad)
    assert run(4, torch.enable_grad)  # depths only sort: no gradient flows to them


@pytest.mark.parametrize("grad", [False, True])
def test_no_images(grad):
    """Zero images (B or V = 0) give empty outputs on both paths, like the dense reference."""
    from rayzer.render import rasterize

    args, extents, W, H = _inputs(seed=4, size=8)
    empty = tuple(x[:0].clone().requires_grad_(grad and i < 4) for i, x in enumerate(args))
    f, a = composite_torch(*empty, extents[:0], W, H)
    assert f.shape == (0, H, W, 4) and a.shape == (0, H, W, 1)
    for B, V in ((1, 0), (0, 2)):
        means = torch.zeros(B, 3, 3, dtype=torch.float64, requires_grad=grad)
        quats = torch.tensor([1.0, 0, 0, 0], dtype=torch.float64).expand(B, 3, 4)
        ones = torch.ones(B, 3, dtype=torch.float64)
        c2w = torch.eye(4, dtype=torch.float64).expand(B, V, 4, 4)
        K = torch.tensor([8.0, 8, 4, 4], dtype=torch.float64).expand(B, V, 4)
        out = rasterize(means, quats, ones[..., None].expand(B, 3, 3), ones / 2,
                        ones[..., None].expand(B, 3, 3), c2w, K, 8, 6, backend="torch")  # fmt: skip
        assert out.rgb.shape == (B, V, 3, 6, 8) and out.depth.shape == (B, V, 1, 6, 8)


@pytest.mark.parametrize("workers", [2, 3, 8])
def test_images_shared_among_threads_give_the_one_thread_result(workers):
    """The forward path's images split among worker threads (each binning and compositing its
    group): the same images bit for bit, the same intersections and composited pairs, under
    inference mode too, and the caller's intra-op thread count is restored."""
    scenes = [_inputs(seed=s, size=12) for s in (5, 6, 7)]  # 3 scenes x 2 views: 6 images
    args = tuple(torch.cat(xs) for xs in zip(*(a for a, _, _, _ in scenes)))
    extents, W, H = torch.cat([e for _, e, _, _ in scenes]), scenes[0][2], scenes[0][3]
    knobs = (W, H, 4, 1 << 12, 7)
    threads = torch.get_num_threads()
    with torch.inference_mode():
        one: dict[str, int] = dict.fromkeys(("intersections", "candidates", "pairs"), 0)
        one |= {"blocks": 0, "blocks_used": 0}
        f1, a1 = composite_forward(*args, extents, *knobs, one, workers=1)
        many = dict.fromkeys(one, 0)
        f2, a2 = composite_forward(*args, extents, *knobs, many, workers=workers)
    assert args[0].shape[0] == 2 * 3 and f1.shape == (6, H, W, 4)
    assert torch.equal(f1, f2) and torch.equal(a1, a2)
    assert (one["intersections"], one["pairs"]) == (many["intersections"], many["pairs"])
    assert one["pairs"] > 0
    assert torch.get_num_threads() == threads


def test_worker_errors_reach_the_caller():
    """An exception in a worker thread is raised in the caller (not lost), and the intra-op
    thread count is restored."""
    args, extents, W, H = _inputs(seed=6, size=8)
    threads = torch.get_num_threads()
    bad = (args[0], args[1][:, :-1], *args[2:])  # one Gaussian fewer in the conics
    with torch.no_grad(), pytest.raises(RuntimeError):
        composite_forward(*bad, extents, W, H, 4, 1 << 12, 7, None, workers=2)
    assert torch.get_num_threads() == threads


def test_concurrent_renders_restore_the_thread_count(monkeypatch):
    """Threaded forward renders at once (as requests of a server would run them), each on a new
    thread with the default workers: all give the one-thread images, and a thread started
    afterwards still gets the process-wide intra-op count. Setting the count is made slow (a
    sleep releases the GIL) so the renders interleave; a caller that restored a count it had
    read while another render held it at 1 would leave 1 behind."""
    import threading
    import time

    real_set = torch.set_num_threads

    def slow_set(n: int) -> None:
        real_set(n)
        time.sleep(0.02)

    args, extents, W, H = _inputs(seed=9, size=12)
    knobs = (W, H, 4, 1 << 12, 7)
    with torch.no_grad():
        ref = composite_forward(*args, extents, *knobs, workers=1)
    threads = torch.get_num_threads()
    results: list = [None] * 4

    def render(i: int) -> None:
        with torch.no_grad():
            results[i] = composite_forward(*args, extents, *knobs)

    def count_in_new_thread() -> int:
        seen: list[int] = []
        fresh = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
        fresh.start()
        fresh.join()
        return seen[0]

    try:
        real_set(2)
        monkeypatch.setattr(torch, "set_num_threads", slow_set)
        callers = [threading.Thread(target=render, args=(i,)) for i in range(4)]
        for t in callers:
            t.start()
        for t in callers:
            t.join()
        assert count_in_new_thread() == 2 and torch.get_num_threads() == 2
    finally:
        real_set(threads)
    for f, a in results:
        assert torch.equal(f, ref[0]) and torch.equal(a, ref[1])


@pytest.mark.parametrize("workers", [1, 2])
def test_stats_start_from_an_empty_dict(workers):
    """``composite_forward`` called directly with ``stats={}`` fills the counts, as
    ``composite_torch`` does (the group sums used to be added to keys that did not exist)."""
    args, extents, W, H = _inputs(seed=4, size=8)
    stats: dict[str, int] = {}
    with torch.no_grad():
        composite_forward(*args, extents, W, H, 4, 1 << 12, 7, stats, workers=workers)
    assert set(stats) == {"intersections", "candidates", "pairs", "blocks", "blocks_used"}
    assert stats["pairs"] > 0
