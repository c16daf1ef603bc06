"""Which parameters weight decay may shrink: the rule every model's optimiser groups follow."""

from __future__ import annotations

import torch
from torch import nn

#: Parameter-name parts that mark learned tokens and positional embeddings (never decayed).
NO_DECAY_NAME_PARTS = ("token", "tokens", "cam_token", "scene_tokens", "position", "pos_embed")

_NORM_TYPES = (nn.LayerNorm, nn.GroupNorm, nn.RMSNorm, nn.modules.batchnorm._BatchNorm)


def no_decay(name: str, param: torch.Tensor, module: nn.Module) -> bool:
    """True for parameters that weight decay must not shrink.

    Norm gains, biases and other vectors (``ndim < 2``), ``nn.Embedding`` tables, parameters of
    normalisation layers, learned tokens (``cam_token``, ``scene_tokens``) and positional
    embeddings (any name part in :data:`NO_DECAY_NAME_PARTS`). Decay on these pulls scales,
    offsets and identities toward zero instead of regularising a linear map.
    """
    parts = name.split(".")
    return (
        param.ndim < 2
        or isinstance(module, (nn.Embedding, *_NORM_TYPES))
        or any(part in NO_DECAY_NAME_PARTS or part.endswith("_token") for part in parts)
    )


def split_decay_params(model: nn.Module) -> tuple[list[str], list[str]]:
    """Names of the trainable parameters with and without weight decay (each parameter once)."""
    decay, skip = [], []
    seen: set[int] = set()
    for module_name, module in model.named_modules():
        for pname, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            name = f"{module_name}.{pname}" if module_name else pname
            (skip if no_decay(name, param, module) else decay).append(name)
    return decay, skip


def decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups of ``model``: ``"decay"`` (``weight_decay``) and ``"no_decay"`` (0), empty
    groups dropped; every trainable parameter appears once."""
    decay, skip = split_decay_params(model)
    params = dict(model.named_parameters())
    groups = [
        {"params": [params[n] for n in decay], "weight_decay": weight_decay, "group": "decay"},
        {"params": [params[n] for n in skip], "weight_decay": 0.0, "group": "no_decay"},
    ]
    return [g for g in groups if g["params"]]
