"""``rayzer infer`` holds numpy's and scipy's BLAS thread pools at torch's thread count
(``--threads``) while it runs, and restores them after (:mod:`rayzer.utils.threads`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from threadpoolctl import threadpool_limits

from _tiny import orbit_photos
from rayzer.infer.pipeline import run_inference
from rayzer.utils.threads import blas_thread_counts


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


#: Run in a fresh interpreter: in the test process scipy's BLAS is loaded already (by other
#: tests, or the import of rayzer.infer), so a ``preload`` that imported nothing would pass.
_PRELOAD_PROBE = """
import json, sys
import torch
from rayzer.utils.threads import blas_like_torch, blas_thread_counts
loaded_before = "scipy.linalg" in sys.modules
before = blas_thread_counts()
torch.set_num_threads(1)
with blas_like_torch(preload=("scipy.linalg",)) as threads:
    import scipy.linalg
    inside = blas_thread_counts()
    scipy.linalg.solve([[1.0, 0.0], [0.0, 1.0]], [1.0, 1.0])
print(json.dumps([loaded_before, before, threads, inside]))
"""


def test_a_blas_loaded_in_the_block_is_named_to_be_limited_too():
    # every BLAS pool starts at 2 threads (OpenBLAS's default is one per core, capped there)
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "2"}
    run = subprocess.run(
        [sys.executable, "-c", _PRELOAD_PROBE], env=env, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    loaded_before, before, threads, inside = json.loads(run.stdout.strip().splitlines()[-1])
    if before != [2]:
        pytest.skip(f"BLAS pools start at {before} threads here (one core?), not 2")
    assert not loaded_before  # scipy's BLAS is loaded inside the block, by the preload
    assert threads == 1 and inside == [1]  # scipy's pool limited with numpy's
