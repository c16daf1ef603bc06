import pytest
import torch

from _tiny import tiny_model_config
from rayzer.models import ModelConfig


@pytest.fixture
def tiny_cfg() -> ModelConfig:
    return tiny_model_config()


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
