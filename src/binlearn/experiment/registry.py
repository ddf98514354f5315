"""Which (model kind, rule name) pairs the runner can build, and how.

Each learner module registers its config dataclasses and a builder::

    register_model_config("mlp", MLPConfig)
    register_rule_config("ste", STEConfig)
    register_learner("mlp", "ste", build_ste_learner)

with ``build(model_config, rule_config, input_shape, num_classes, device) -> Learner``.
``input_shape`` is one sample's shape, ``(channels, height, width)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from binlearn.experiment.config import MODEL_CONFIGS, RULE_CONFIGS, ConfigError, ExperimentConfig
from binlearn.experiment.learner import Learner

__all__ = ["register_learner", "build_learner", "LEARNERS"]

Builder = Callable[[Any, Any, tuple[int, ...], int, torch.device], Learner]
LEARNERS: dict[tuple[str, str], Builder] = {}


def register_learner(kind: str, rule: str, builder: Builder) -> Builder:
    LEARNERS[(kind, rule)] = builder
    return builder


def _key(config: ExperimentConfig) -> tuple[str, str]:
    kind = next(k for k, c in MODEL_CONFIGS.items() if type(config.model) is c)
    name = next(k for k, c in RULE_CONFIGS.items() if type(config.rule) is c)
    return kind, name


def build_learner(
    config: ExperimentConfig, input_shape: tuple[int, ...], num_classes: int, device: torch.device
) -> Learner:
    kind, name = _key(config)
    if (kind, name) not in LEARNERS:
        valid = ", ".join(sorted(r for k, r in LEARNERS if k == kind)) or "none"
        raise ConfigError(f"rule {name!r} cannot train model kind {kind!r}; rules for {kind!r}: {valid}")
    return LEARNERS[(kind, name)](config.model, config.rule, input_shape, num_classes, device)
