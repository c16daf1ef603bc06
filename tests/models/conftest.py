import pytest
import torch

from _tiny import tiny_model_config
from rayzer.model_config import RayZerConfig


@pytest.fixture
def tiny_cfg() -> RayZerConfig:
    return tiny_model_config()


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
