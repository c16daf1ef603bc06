"""numpy's and scipy's BLAS thread pools kept at PyTorch's intra-op thread count.

PyTorch's CPU threads are set with ``torch.set_num_threads`` (``--threads``); the BLAS libraries
numpy and scipy load (OpenBLAS in their wheels; MKL or BLIS elsewhere) keep their own pools,
one thread per core by default, whatever torch was told. On a shared machine a run asked to use
one thread would still spread its numpy / scipy work (matrix products of the exports, the
least-squares solve of ``--init-cameras matches``) over every core. :func:`blas_like_torch`
limits those pools with `threadpoolctl <https://github.com/joblib/threadpoolctl>`_ for the
duration of a block and restores them after.

threadpoolctl can only limit libraries that are loaded: a BLAS loaded inside the block (scipy's,
imported lazily) would keep its default, so the modules that will load one are named in
``preload`` and imported first.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator, Sequence


def blas_thread_counts() -> list[int]:
    """The thread counts of the BLAS pools loaded now, sorted, without repeats (e.g. ``[1]``)."""
    from threadpoolctl import threadpool_info

    return sorted({int(p["num_threads"]) for p in threadpool_info() if p["user_api"] == "blas"})


@contextlib.contextmanager
def blas_like_torch(preload: Sequence[str] = ()) -> Iterator[int]:
    """Within the block, every loaded BLAS pool has ``torch.get_num_threads()`` threads (that
    count is yielded); the previous counts are restored after.

    Args:
        preload: modules to import first, whose BLAS the block will use (e.g.
            ``"scipy.optimize"``), so their pools are limited too.
    """
    import torch
    from threadpoolctl import threadpool_limits

    for name in preload:
        importlib.import_module(name)
    threads = torch.get_num_threads()
    limits = threadpool_limits(limits=threads, user_api="blas")
    try:
        yield threads
    finally:
        limits.restore_original_limits()
