"""The model registry: name → model class, and :func:`build_model` from a config.

A model is added by one decorated class (``@register_model("name")`` on a
:class:`rayzer.models.base.RayModel` subclass with a ``config_class``): its config then
validates ``model.name=name`` sections (:mod:`rayzer.model_config`), and the trainer,
``rayzer eval`` / ``infer`` and checkpoints find it here. The built-in models register when
:mod:`rayzer.models` is imported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from rayzer.model_config import register_config
from rayzer.models.base import RayModel

M = TypeVar("M", bound=type[RayModel])

_MODELS: dict[str, type[RayModel]] = {}


def register(name: str, cls: type[RayModel]) -> type[RayModel]:
    """Register model class ``cls`` (and its ``config_class``) under ``name``; sets ``cls.name``.

    Raises:
        TypeError: ``cls`` is not a :class:`RayModel` or its config is not a dataclass with a
            ``name`` field. ValueError: another class already holds ``name``.
    """
    if not (isinstance(cls, type) and issubclass(cls, RayModel)):
        raise TypeError(f"register_model({name!r}): {cls!r} is not a RayModel subclass")
    config = getattr(cls, "config_class", None)
    fields = getattr(config, "__dataclass_fields__", {})
    if "name" not in fields:
        raise TypeError(f"model {name!r}: config_class must be a dataclass with a 'name' field")
    known = _MODELS.get(name)
    if known is not None and known.__qualname__ != cls.__qualname__:
        raise ValueError(f"model {name!r} is already registered ({known.__qualname__})")
    register_config(name, config, replace=known is not None)
    cls.name = name
    _MODELS[name] = cls
    return cls


def register_model(name: str) -> Callable[[M], M]:
    """Class decorator: ``@register_model("rayzer") class RayZer(RayModel): ...``."""

    def wrap(cls: M) -> M:
        register(name, cls)
        return cls

    return wrap


def available_models() -> list[str]:
    """Registered model names."""
    return sorted(_MODELS)


def model_class(name: str) -> type[RayModel]:
    """The class registered as ``name``.

    Raises:
        ValueError: no such model (the message lists the registered ones).
    """
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; registered: {', '.join(available_models())}")
    return _MODELS[name]


def build_model(cfg: Any) -> RayModel:
    """Instantiate the model that ``cfg.name`` names, from its typed config ``cfg``."""
    cls = model_class(cfg.name)
    if not isinstance(cfg, cls.config_class):
        raise TypeError(
            f"model {cfg.name!r} takes a {cls.config_class.__name__}, got {type(cfg).__name__}"
        )
    return cls(cfg)
