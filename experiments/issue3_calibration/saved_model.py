"""Load a ``learn.py --save`` file: the RayZer it trained (eval mode) and its training args."""

from __future__ import annotations

import torch

from rayzer.models import ModelConfig, RayZer


def load_saved(path: str) -> tuple[RayZer, dict]:
    saved = torch.load(path)
    model = RayZer(ModelConfig(**saved["cfg"]))
    model.load_state_dict(saved["state"])
    return model.eval(), saved["args"]
