import pytest
import torch

from _tiny import TINY_MODEL, tiny_data
from rayzer.config import Config, load_config

#: A model and data small enough for CPU tests (dim 32, 1+1+1 layers, 16×16 images, 2+2 views).
TINY = [
    *TINY_MODEL,
    *tiny_data(16),
    "data.curriculum_steps=4",
    "data.num_workers=0",
    "train.batch_size=4",
    "train.warmup_steps=2",
    "train.lr=3e-3",
    "train.log_every=1",
    "train.image_every=2",
    "train.ckpt_every=0",
]


@pytest.fixture
def tiny_overrides() -> list[str]:
    return list(TINY)


@pytest.fixture
def tiny_config():
    """``tiny_config(*overrides)`` → a tiny :class:`Config` from the tiny-cpu preset."""

    def make(*extra: str) -> Config:
        return load_config("tiny-cpu", [*TINY, *extra])

    return make


@pytest.fixture(autouse=True)
def _seed_and_one_thread(one_thread) -> None:
    """Seed, and one intra-op thread (tests/conftest.py's ``one_thread``): the tiny models gain
    nothing from more, and on a loaded 2-core machine OpenMP spin-waiting made these tests up
    to 7× slower with 2 threads."""
    torch.manual_seed(0)
