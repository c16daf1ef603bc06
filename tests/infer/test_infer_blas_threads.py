"""``rayzer infer`` holds numpy's and scipy's BLAS thread pools at torch's thread count
(``--threads``) while it runs, and restores them after (:mod:`rayzer.utils.threads`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from _tiny import orbit_photos
from rayzer.infer.pipeline import run_inference
from rayzer.utils.threads import blas_like_torch, blas_thread_counts


def test_infer_runs_numpys_blas_at_torchs_thread_count(tmp_path: Path, tiny_ckpt: Path):
    photos = orbit_photos(tmp_path / "photos", 32, views=3)
    # every BLAS pool at 2 threads before (the default on a 2-core machine; set so the test
    # does not depend on the core count), torch at 1 (the folder's one_thread fixture)
    with threadpool_limits(limits=2, user_api="blas"):
        assert blas_thread_counts() == [2] and torch.get_num_threads() == 1
        result = run_inference(photos, ckpt=tiny_ckpt, out=tmp_path / "out", path_frames=2,
                               spiral_frames=0)  # fmt: skip
        assert blas_thread_counts() == [2]  # restored
    # counted while the run was writing its outputs
    assert result.summary["blas_threads"] == [1] and result.summary["torch_threads"] == 1


def test_a_blas_loaded_in_the_block_is_named_to_be_limited_too():
    with threadpool_limits(limits=2, user_api="blas"):
        with blas_like_torch(preload=("scipy.linalg",)) as threads:
            import scipy.linalg

            assert threads == torch.get_num_threads() == 1
            assert blas_thread_counts() == [1]
            scipy.linalg.solve(np.eye(3), np.ones(3))
        assert blas_thread_counts() == [2]
