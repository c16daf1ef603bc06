import pytest
import torch

from rayzer.models import ModelConfig


@pytest.fixture
def tiny_cfg() -> ModelConfig:
    return ModelConfig(
        dim=32,
        num_heads=2,
        patch_size=8,
        cam_layers=1,
        scene_layers=1,
        dec_layers=1,
        num_scene_tokens=8,
        pos_enc_dim=16,
    )


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
